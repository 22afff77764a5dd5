"""pycaffe is built only on the core's public API.

``caffe_import.pycaffe`` is a client of the core (``CaffeNet``, ``Solver``, the layers, io):
it may use what the core offers everyone, never its private attributes. The check reads the
sources: it collects every private name (``_name``, not dunder) the core defines - methods,
class attributes, attributes assigned on ``self``, submodule/buffer names given to
``nn.Module``, ``nn.Module``'s own private attributes, module-level private names - and fails
when a pycaffe module

* reads or writes ``x._name`` (or ``getattr(x, "_name")``) for such a name on anything but
  ``self``/``cls`` (pycaffe's own objects use private names the core does not, so a hit is
  never pycaffe's own business);
* does so on ``self`` in a class that subclasses a core class (overriding or swapping the
  core's private machinery, as swapping ``Solver._rule`` once did);
* imports a private name from a core module.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from torch import nn

PACKAGE = Path(__file__).resolve().parents[3] / "caffe_import"
PYCAFFE = PACKAGE / "pycaffe"
_REGISTERING = {"register_buffer", "register_parameter", "add_module", "register_module"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def _defined_privates(tree: ast.AST) -> set[str]:
    """Private attribute names a module's classes define or assign on ``self``/``cls``, and
    its module-level private names."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                elif isinstance(item, ast.Assign):
                    names.update(t.id for t in item.targets if isinstance(t, ast.Name))
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                and _is_self(node.value):
            names.add(node.attr)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in _REGISTERING and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names.add(node.args[0].value)
    for item in getattr(tree, "body", []):
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(item.name)
        elif isinstance(item, ast.Assign):
            names.update(t.id for t in item.targets if isinstance(t, ast.Name))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.add(item.target.id)
    return {n for n in names if _private(n)}


def core_private_names() -> set[str]:
    """Every private name the core (caffe_import outside pycaffe) defines, plus the private
    attributes every core ``nn.Module`` (a CaffeNet, a layer) inherits from torch."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if PYCAFFE not in path.parents:
            names |= _defined_privates(ast.parse(path.read_text(), str(path)))
    names |= {n for n in (*vars(nn.Module()), *dir(nn.Module)) if _private(n)}
    return names


def _module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_source(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_core(module: str) -> bool:
    return (module == "caffe_import" or module.startswith("caffe_import.")) and not (
        module == "caffe_import.pycaffe" or module.startswith("caffe_import.pycaffe."))


class _Checker(ast.NodeVisitor):
    """Collects the offending lines of one pycaffe module (see the module doc)."""

    def __init__(self, source: str, module: str, is_package: bool, core: set[str]) -> None:
        self.tree = ast.parse(source)
        self.module, self.is_package, self.core = module, is_package, core
        self.core_names: set[str] = set()  # names this module imported from the core
        self.core_classes: list[bool] = []  # per enclosing class: subclasses a core class
        self.found: list[str] = []

    def run(self) -> list[str]:
        self.visit(self.tree)
        return self.found

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = _import_source(node, self.module, self.is_package)
        if _is_core(source):
            for alias in node.names:
                self.core_names.add(alias.asname or alias.name)
                if _private(alias.name):
                    self.found.append(f"line {node.lineno}: imports {alias.name} from {source}")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        core_base = any(isinstance(b, ast.Name) and b.id in self.core_names
                        or isinstance(b, ast.Attribute) and isinstance(b.value, ast.Name)
                        and b.value.id in self.core_names for b in node.bases)
        self.core_classes.append(core_base)
        self.generic_visit(node)
        self.core_classes.pop()

    def visit_Call(self, node: ast.Call) -> None:
        """``getattr(x, "_name")`` and its kin reach as far as ``x._name`` does."""
        if isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "hasattr",
                                                                "delattr") \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                and isinstance(node.args[1].value, str) and node.args[1].value in self.core:
            self.found.append(f"line {node.lineno}: {ast.unparse(node)}")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _private(node.attr):
            on_self = _is_self(node.value)
            of_core_module = isinstance(node.value, ast.Name) and node.value.id in self.core_names
            subclass = bool(self.core_classes) and self.core_classes[-1]
            if (of_core_module or (node.attr in self.core and (not on_self or subclass))):
                self.found.append(f"line {node.lineno}: {ast.unparse(node)}")
        self.generic_visit(node)


def check(source: str, module: str = "caffe_import.pycaffe.example", is_package: bool = False,
          core: set[str] | None = None) -> list[str]:
    return _Checker(source, module, is_package,
                    core_private_names() if core is None else core).run()


@pytest.fixture(scope="module")
def core() -> set[str]:
    return core_private_names()


def test_the_check_catches_what_it_is_for(core):
    """The reaches pycaffe once made into the core, each caught."""
    assert {"_steps", "_learnable", "_rule", "_parameters", "_blob_views"} <= core
    caught = check("net._steps\nstep.module._parameters['0']\nself._net._learnable\n",
                   core=core)
    assert len(caught) == 3, caught
    swap = "from ..solver import Solver\nclass E(Solver):\n    def f(self):\n" \
           "        self._rule = None\n"
    assert len(check(swap, core=core)) == 1
    assert check("from ..layers.python_layer import _PYTHON_LAYERS\n", core=core)
    assert check("from .. import solver\nsolver._RULES\n", core=core)
    assert check("getattr(net, '_learnable')\n", core=core)
    # pycaffe's own objects and names are its business
    own = "from .blob import Blob\nclass N:\n    def f(self, blob):\n" \
          "        self._steps = 1\n        return blob._diff_memory\n"
    assert check(own, core=core) == []


@pytest.mark.parametrize("path", sorted(PYCAFFE.rglob("*.py")), ids=lambda p: p.name)
def test_pycaffe_touches_no_private_attribute_of_the_core(path, core):
    found = check(path.read_text(), _module_of(path), path.name == "__init__.py", core)
    assert not found, f"{path.relative_to(PACKAGE.parent)} reaches into the core:\n" + \
        "\n".join(found)
