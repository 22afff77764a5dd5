"""The tools (caffe train/test/time) stand on pycaffe's and the core's public API: no module
of caffe_import/tools reads or writes a private attribute (``x._name``) of an object it does
not own (``self``, ``cls`` and ``super()`` are a subclass's own business)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[3] / "caffe_import" / "tools"


def private_reaches(source: str) -> list[str]:
    """``line N: expr`` for each private attribute taken on anything but self/cls/super()."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") \
                or node.attr.startswith("__"):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) \
                and owner.func.id == "super":
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return sorted(found, key=lambda line: int(line.split(":")[0].split()[1]))


def test_the_check_catches_what_it_is_for():
    assert private_reaches("solver.net._prepare()\nx = net._device\n") == \
        ["line 1: solver.net._prepare", "line 2: net._device"]
    assert private_reaches("self._engine.iter\nsuper()._train_net(p)\ncls._x\n") == []


@pytest.mark.parametrize("path", sorted(TOOLS.glob("*.py")), ids=lambda p: p.name)
def test_tools_touch_no_private_attribute_of_another_object(path):
    found = private_reaches(path.read_text())
    assert not found, f"{path.name} reaches into another object:\n" + "\n".join(found)
