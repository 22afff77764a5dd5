"""Layer parameters of Caffe's forks for the fork-layer tests: ``layer_param`` parses the body of
a ``layer { ... }`` with a fork's schema, ``build`` makes the registered layer from it.

``fork`` is a shipped fork (``"ssd"``, ``"pspnet"``, ``"segnet"``, ``"fast-rcnn"``,
``"deeplab-v1"``, ``"yolov2"``, ...) or None for the default mixture of them all."""
from __future__ import annotations

from typing import Sequence

from google.protobuf import text_format

from caffe_import.layers import registry
from caffe_import.proto.schema import get_schema, schema_of


def layer_param(text: str, fork: str | None = "ssd"):
    """A fork's ``LayerParameter`` from the text inside ``layer { ... }``."""
    msg = get_schema(fork).LayerParameter()
    text_format.Parse(text, msg)
    return msg


def build(text: str, bottom_shapes: Sequence[Sequence[int]], fork: str | None = "ssd",
          phase: str = "test"):
    """The registered layer for a snippet (resolved as the net resolves it), built for bottoms
    of these shapes."""
    param = layer_param(text, fork)
    cls = registry.get(param.type, fork=schema_of(param).fork)
    assert cls is not None, f"no layer registered for {param.type}"
    resolve = getattr(cls, "resolve", None)
    if resolve is not None:
        cls = resolve(param)
    return cls(param, [tuple(s) for s in bottom_shapes], phase)
