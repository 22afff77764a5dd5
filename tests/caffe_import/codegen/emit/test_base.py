"""The emitter table: every layer class the registry can build (all types, all forks, the
forks' own variants of BVLC types; Python layers aside) has an emitter, found by class; the
literal and broadcast spellings."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_import.codegen.emit import EMITTERS, emitter_for
from caffe_import.codegen.emit.base import broadcast, literal, torch_momentum
from caffe_import.errors import UsageError
from caffe_import.layers import registry
from caffe_import.layers.base import CaffeLayer
from caffe_import.layers.python_layer import PythonLayer
from caffe_import.proto.catalogue import BVLC, FORKS


def buildable_classes() -> set[type]:
    """Each class of the package ``registry.get`` can hand the net, under every schema's fork,
    choosers opened up to their candidates (classes other tests register are not ours)."""
    found: set[type] = set()
    for type_name in registry.known_types():
        for fork in (None, BVLC, *FORKS):
            cls = registry.get(type_name, fork=fork)
            if cls is None:
                continue
            found.update(cls.candidates if registry.is_chooser(cls) else [cls])
    return {c for c in found if c.__module__.startswith("caffe_import.")}


def test_every_buildable_layer_class_has_an_emitter():
    classes = buildable_classes()
    assert len(classes) > 60
    missing = sorted(c.__qualname__ for c in classes
                     if c not in EMITTERS and not issubclass(c, PythonLayer))
    assert not missing, f"no emitter for {missing}"


def test_an_emitter_is_found_by_the_exact_class():
    class Custom(CaffeLayer):
        pass

    layer = Custom.__new__(Custom)
    layer.name = "mine"
    with pytest.raises(UsageError, match="layer 'mine'.*no code generator"):
        emitter_for(layer, "Custom")


@pytest.mark.parametrize("value, text", [
    (1e-5, "1e-05"), (0.1, "0.1"), (float("inf"), 'float("inf")'), (3, "3"), (True, "True"),
    ((2, 3), "(2, 3)"), ((4,), "(4,)"), ([1.5, 2], "[1.5, 2]")])
def test_literal(value, text):
    if isinstance(value, float) and value == 1e-5:
        value = float(np.float32(value))  # as Caffe's float fields hold it
    assert literal(value) == text


def test_broadcast_lines_an_operand_up_with_its_axes():
    assert broadcast("b", 1, 1, 4) == "b[None, :, None, None]"
    assert broadcast("b", 0, 2, 2) == "b"
    assert broadcast("s", 0, 0, 4) == "s"


def test_torch_momentum_reads_the_fraction_as_written():
    assert torch_momentum(float(np.float32(0.999))) == 0.001
