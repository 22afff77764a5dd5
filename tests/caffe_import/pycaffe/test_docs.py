"""docs/pycaffe.md: every row of the API table names something that exists and is tested."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from caffe_import import pycaffe as caffe
from caffe_import.pycaffe.blob import Blob
from caffe_import.pycaffe.solver import Solver
from support import ROOT

DOC = ROOT / "docs" / "pycaffe.md"
HERE = Path(__file__).parent
OWNERS = {"caffe": caffe, "Net": caffe.Net, "Blob": Blob, "Solver": Solver}


def _rows() -> list[str]:
    text = DOC.read_text()
    table = text.split("## Supported API", 1)[1].split("## ", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", table, re.M)]


def _resolve(name: str):
    path = name.split("(")[0].split(".")
    obj = OWNERS[path[0]]
    for part in path[1:]:
        if isinstance(obj, type) and part in getattr(obj, "__annotations__", {}):
            return obj, part  # an instance attribute the class declares
        if not hasattr(obj, part) and hasattr(obj, "__path__"):  # a submodule
            importlib.import_module(f"{obj.__name__}.{part}")
        obj = getattr(obj, part)
    return obj, path[-1]


def test_table_is_complete():
    rows = _rows()
    assert len(rows) > 60
    for required in ("Net.forward", "Net.backward", "Blob.diff", "Solver.step", "caffe.Layer"):
        assert any(r.startswith(required) for r in rows)


@pytest.mark.parametrize("row", _rows())
def test_row_exists_and_is_tested(row):
    obj, attr = _resolve(row)
    assert obj is not None
    tests = "".join(p.read_text() for p in HERE.glob("test_*.py") if p.name != "test_docs.py")
    tests += (ROOT / "tests" / "support" / "pycaffe_nets.py").read_text()
    assert re.search(rf"\b{re.escape(attr)}\b", tests), f"{row}: no test uses {attr!r}"
