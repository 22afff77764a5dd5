"""Skips for what the package's floors lack (caffe_import.compat; .ci/run runs the suite at the
floors too): each names the version the feature needs."""
from __future__ import annotations

import importlib

import pytest

from caffe_import.compat import TORCH_FOR_EXPORT, torch_at_least

#: torch.export (.pt2) and the ONNX exporter built on it
HAS_TORCH_EXPORT = torch_at_least(TORCH_FOR_EXPORT)
needs_torch_export = pytest.mark.skipif(
    not HAS_TORCH_EXPORT, reason=f"torch.export (.pt2, ONNX) needs torch >= {TORCH_FOR_EXPORT}")


def _grpc_tools_imports() -> bool:
    try:
        importlib.import_module("grpc_tools.protoc")
    except ImportError:
        return False
    return True


#: compiling a .proto at run time (--proto FILE.proto): the [proto] extra
needs_grpc_tools = pytest.mark.skipif(not _grpc_tools_imports(),
                                      reason="compiling a .proto needs grpcio-tools ([proto] extra)")
