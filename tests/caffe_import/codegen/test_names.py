"""Caffe names as Python identifiers: sanitised, distinct, never a keyword, builtin, name
model.py uses or nn.Module attribute."""
from __future__ import annotations

import pytest

from caffe_import.codegen.names import Namer, identifier


@pytest.mark.parametrize("name, ident", [("conv4_3_norm/mbox", "conv4_3_norm_mbox"),
                                         ("1x1", "_1x1"), ("a.b-c", "a_b_c"), ("", "_")])
def test_identifier(name, ident):
    assert identifier(name) == ident


def test_names_are_distinct_and_stable():
    names = Namer()
    assert names("a/b") == "a_b" and names("a_b") == "a_b_2" and names("a/b") == "a_b"


@pytest.mark.parametrize("name", ["class", "self", "torch", "F", "print", "l"])
def test_reserved_words_are_avoided(name):
    assert Namer()(name) != name


def test_attributes_avoid_module_members():
    names = Namer(attributes=True)
    assert names("forward") != "forward" and names("training") != "training"
