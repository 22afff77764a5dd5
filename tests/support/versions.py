"""Skips for what the package's floors lack (caffe_import.compat; .ci/run runs the suite at the
floors too): each names the version the feature needs."""
from __future__ import annotations

import importlib
from typing import Callable, TypeVar

import pytest

from caffe_import.compat import TORCH_FOR_EXPORT, torch_at_least

T = TypeVar("T")

#: torch.export (.pt2) and the ONNX exporter built on it
HAS_TORCH_EXPORT = torch_at_least(TORCH_FOR_EXPORT)
#: skipped on an older torch, and marked ``torch_export``: .ci/run reruns ``-m torch_export``
#: with torch TORCH_FOR_EXPORT and the [onnx] extra's floors
TORCH_EXPORT_MARKS = (
    pytest.mark.skipif(not HAS_TORCH_EXPORT,
                       reason=f"torch.export (.pt2, ONNX) needs torch >= {TORCH_FOR_EXPORT}"),
    pytest.mark.torch_export,
)


def needs_torch_export(test: Callable[..., T]) -> Callable[..., T]:
    """A test of torch.export or ONNX export: :data:`TORCH_EXPORT_MARKS`."""
    for mark in TORCH_EXPORT_MARKS:
        test = mark(test)
    return test


def _grpc_tools_imports() -> bool:
    try:
        importlib.import_module("grpc_tools.protoc")
    except ImportError:
        return False
    return True


#: compiling a .proto at run time (--proto FILE.proto): the [proto] extra
needs_grpc_tools = pytest.mark.skipif(not _grpc_tools_imports(),
                                      reason="compiling a .proto needs grpcio-tools ([proto] extra)")
