"""Run a pycaffe script with ``import caffe`` resolved to ``caffe_import.pycaffe``.

``run_script(path, args)`` behaves as ``python path args...``: the script runs as
``__main__``, ``sys.argv`` is ``[path, *args]``, ``sys.path[0]`` is the script's folder, the
current directory is left alone; ``run_module(name, args)`` as ``python -m name args...``. While it runs, a meta-path finder answers ``caffe``,
``caffe.proto``, ``caffe.proto.caffe_pb2``, ``caffe.io``, ``caffe.net_spec``, ``caffe.coord_map``, ``caffe.pycaffe``, ``caffe._caffe``,
``caffe.classifier``, ``caffe.detector`` (and ``caffe.draw`` when pydot is installed) with this
package's modules, ahead of any real Caffe on the path. Everything is undone afterwards:
the finder is removed and ``caffe*`` entries leave ``sys.modules`` (the previous ones, if any,
come back), so a process that runs a script keeps its own view of ``caffe``.

With a ``schema`` (``caffe-import run --fork NAME``), ``caffe`` and the submodules that read or
write Caffe messages are modules made for that run (:mod:`caffe_import.pycaffe.bound`), bound
to the schema: the script's ``caffe.Net``, ``caffe.proto.caffe_pb2`` and ``caffe.net_spec``
follow the fork, and nothing outside the run changes.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import runpy
import sys
import types
from typing import Callable, Iterator, Mapping, Sequence

from ..errors import UsageError
from ..proto.schema import Schema
from .bound import caffe_modules

_ALIASES = {
    "caffe": "caffe_import.pycaffe",
    "caffe.proto": "caffe_import.proto",
    "caffe.proto.caffe_pb2": "caffe_import.proto.caffe_pb2",
    "caffe.io": "caffe_import.pycaffe.io",
    "caffe.net_spec": "caffe_import.pycaffe.net_spec",
    "caffe.coord_map": "caffe_import.pycaffe.coord_map",
    "caffe.pycaffe": "caffe_import.pycaffe",
    "caffe._caffe": "caffe_import.pycaffe",
    "caffe.classifier": "caffe_import.pycaffe.classifier",
    "caffe.detector": "caffe_import.pycaffe.detector",
    "caffe.draw": "caffe_import.pycaffe.draw",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str | types.ModuleType) -> None:
        self.target = target

    def create_module(self, spec):
        if isinstance(self.target, types.ModuleType):
            return self.target
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:
        pass  # the target module is already executed


class CaffeAliasFinder(importlib.abc.MetaPathFinder):
    """Resolves ``caffe`` and its submodules to this package's modules, or to ``modules``
    (name -> module object) where given."""

    def __init__(self, modules: Mapping[str, types.ModuleType] | None = None) -> None:
        self.modules = dict(modules or {})

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname not in _ALIASES:
            return None
        alias = self.modules.get(fullname, _ALIASES[fullname])
        is_package = fullname in ("caffe", "caffe.proto")
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(alias),
                                              is_package=is_package)


def _is_caffe(name: str) -> bool:
    return name == "caffe" or name.startswith("caffe.")


@contextlib.contextmanager
def caffe_aliased(schema: Schema | None = None) -> Iterator[None]:
    """``import caffe`` means ``caffe_import.pycaffe`` inside the block; with a ``schema``,
    that package bound to the schema (:func:`caffe_import.pycaffe.bound.caffe_modules`)."""
    finder = CaffeAliasFinder(caffe_modules(schema) if schema is not None else None)
    saved = {k: v for k, v in sys.modules.items() if _is_caffe(k)}
    for k in saved:
        del sys.modules[k]
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        for k in [k for k in sys.modules if _is_caffe(k)]:
            del sys.modules[k]
        sys.modules.update(saved)


def run_script(path: str | os.PathLike, args: Sequence[str] = (), *,
               schema: Schema | None = None) -> int:
    """Run ``path`` as ``python path args...`` would, with ``caffe`` aliased (bound to
    ``schema`` when given: the script's nets are read with it); returns the exit status
    (``sys.exit`` codes as Python maps them; an exception propagates)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(21, "is a folder, not a script", path)
    if not os.path.isfile(path):
        raise FileNotFoundError(2, "script not found", path)
    return _run_main(lambda: runpy.run_path(path, run_name="__main__"), [path, *args],
                     os.path.dirname(os.path.abspath(path)), schema)


def run_module(name: str, args: Sequence[str] = (), *, schema: Schema | None = None) -> int:
    """Run module ``name`` as ``python -m name args...`` would (as ``__main__``,
    ``sys.argv[0]`` its file, the current directory first on ``sys.path``), with ``caffe``
    aliased as in :func:`run_script`: ``run_module("unittest", ["discover", "-s", DIR])``
    runs pycaffe's unittest files. Returns the exit status."""
    return _run_main(lambda: _module_main(name), [name, *args], os.getcwd(), schema)


def _module_main(name: str) -> None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a parent package that is missing or not a package
        spec = None
    if spec is None:
        raise UsageError(f"run -m: no module named {name!r}")
    runpy.run_module(name, run_name="__main__", alter_sys=True)


def _run_main(run: Callable[[], object], argv: list[str], path0: str, schema: Schema | None) -> int:
    """``run()`` with ``sys.argv = argv``, ``path0`` first on ``sys.path`` and ``caffe``
    aliased, all undone afterwards; ``sys.exit`` codes mapped to a status as Python does."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = argv
    sys.path.insert(0, path0)
    try:
        with caffe_aliased(schema):
            run()
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return 0
