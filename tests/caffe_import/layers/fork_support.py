"""Layer parameters of the Caffe forks for the fork-layer tests: one helper, ``layer_param``,
parses a ``layer { ... }`` prototxt snippet with a fork's schema, and ``build`` makes the layer."""
from __future__ import annotations

import importlib
import sys

from google.protobuf import text_format

from caffe_import.layers import registry

_SCRATCH = "/work/scratch/layers_pb2"  # development only, until the fork schemas land


def _pb2(fork: str):
    if _SCRATCH not in sys.path:
        sys.path.insert(0, f"{_SCRATCH}/{fork}")
    else:
        sys.path.insert(0, f"{_SCRATCH}/{fork}")
    return importlib.import_module(f"caffe_{fork}_pb2")


def layer_param(text: str, fork: str = "ssd"):
    """A fork's ``LayerParameter`` from the text inside ``layer { ... }``."""
    msg = _pb2(fork).LayerParameter()
    text_format.Parse(text, msg)
    return msg


def build(text: str, bottom_shapes, fork: str = "ssd", phase: str = "test"):
    """The registered layer for a snippet, built for bottoms of these shapes."""
    param = layer_param(text, fork)
    cls = registry.get(param.type)
    assert cls is not None, f"no layer registered for {param.type}"
    resolve = getattr(cls, "resolve", None)
    if resolve is not None:
        cls = resolve(param)
    return cls(param, [tuple(s) for s in bottom_shapes], phase)
