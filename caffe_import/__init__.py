"""Caffe's file formats, layers, nets and solver in PyTorch, with no Caffe installed.

Public API (see README):

    read_net, read_weights, read_mean, read_solver   file -> current-form objects
    write_weights, write_weights_h5                  weights -> caffemodel / .caffemodel.h5
    CaffeNet                                         NetParameter (+ weights) -> torch.nn.Module
    load                                             converted artefact (.pt) -> CaffeNet
    check_parity                                     CaffeNet vs stored activations (reference.h5)
    CaffeFormatError                                 a bad Caffe file, net or layer (a ValueError)
    UsageError                                       a bad request: unknown name, option, output (a ValueError)

Every subpackage and module (io, layers, net, parity, pycaffe, solver, ...: ``SUBMODULES``)
loads on first attribute access, so ``import caffe_import as ci; ci.io.read_net(...)`` works
without importing ``caffe_import.io`` first, and ``dir(caffe_import)`` lists them all.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from .errors import CaffeFormatError, UsageError
from .version import __version__

_LAZY = {
    "read_net": "caffe_import.io",
    "read_weights": "caffe_import.io",
    "read_mean": "caffe_import.io",
    "read_solver": "caffe_import.io",
    "write_weights": "caffe_import.io",
    "write_weights_h5": "caffe_import.io",
    "CaffeNet": "caffe_import.net",
    "load": "caffe_import.convert",
    "check_parity": "caffe_import.parity",
}
#: the subpackages and modules, loaded on first attribute access (``ci.io.read_net``)
SUBMODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))

__all__ = ["CaffeFormatError", "UsageError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:  # PEP 562: import the heavy parts on first use
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'caffe_import' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names and every submodule, loaded or not (``dir(caffe_import)``)."""
    return sorted({*(n for n in globals() if n.startswith("__")), *__all__, "SUBMODULES", *SUBMODULES})
