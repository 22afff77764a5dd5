"""Fixtures of the pycaffe tests: tiny nets in a temp folder, the mode reset after each test."""
from __future__ import annotations

import pytest


@pytest.fixture
def tiny(tmp_path):
    from support import pycaffe_nets

    return pycaffe_nets.write(tmp_path / "tiny")


@pytest.fixture(autouse=True)
def _cpu_mode():
    from caffe_import.pycaffe import mode

    yield
    mode.set_mode_cpu()
