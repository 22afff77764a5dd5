"""Caffe's file formats, layers, nets and solver in PyTorch, with no Caffe installed.

Public API (see README):

    read_net, read_weights, read_mean, read_solver   file -> current-form objects
    write_weights, write_weights_h5                  weights -> caffemodel / .caffemodel.h5
    CaffeNet                                         NetParameter (+ weights) -> torch.nn.Module
    load                                             converted artefact (.pt) -> CaffeNet
    check_parity                                     CaffeNet vs stored activations (reference.h5)
    CaffeFormatError                                 a bad Caffe file, net or layer (a ValueError)
    UsageError                                       a bad request: unknown name, option, output (a ValueError)
"""
from __future__ import annotations

import importlib
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

__all__ = ["CaffeFormatError", "UsageError", *_LAZY]


def __getattr__(name: str) -> Any:  # PEP 562: import the heavy parts on first use
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'caffe_import' has no attribute {name!r}")
