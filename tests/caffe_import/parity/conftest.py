"""Fixtures of the parity tests: one CaffeNet per reference case, shared within a module."""
from __future__ import annotations

import pytest

from caffe_import.net import CaffeNet
from support import case_meta
from support.parity_cases import files


@pytest.fixture(scope="module")
def nets():
    """One CaffeNet per case, built on first use and shared by the module's tests."""
    cache: dict[str, object] = {}

    def get(case: str):
        if case not in cache:
            net, weights, _ = files(case)
            cache[case] = CaffeNet(str(net), str(weights), phase=case_meta(case)["phase"].lower())
        return cache[case]

    return get
