"""Fixtures of the pycaffe tests: tiny nets in a temp folder, the mode reset after each test."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def tiny(tmp_path):
    import tiny_nets

    return tiny_nets.write(tmp_path / "tiny")


@pytest.fixture(autouse=True)
def _cpu_mode():
    from caffe_import.pycaffe import mode

    yield
    mode.set_mode_cpu()
