"""Layer parameters of Caffe's forks for the fork-layer tests: ``layer_param`` parses the body of
a ``layer { ... }`` with a fork's schema, ``build`` makes the registered layer from it.

``fork`` is a shipped fork (``"ssd"``, ``"pspnet"``, ``"segnet"``, ``"fast-rcnn"``), None for the
default mixture, or ``"ports"``: the fields of ports whose schemas the package does not ship
(``tests/fixtures/layer_ports/ports.proto``), loaded as a user's own schema is."""
from __future__ import annotations

from typing import Sequence

from google.protobuf import text_format

from caffe_import.layers import registry
from caffe_import.proto.schema import get_schema

from . import ROOT

PORTS = ROOT / "tests" / "fixtures" / "layer_ports" / "ports.pb"


def schema(fork: str | None):
    return get_schema(proto=PORTS) if fork == "ports" else get_schema(fork)


def layer_param(text: str, fork: str | None = "ssd"):
    """A fork's ``LayerParameter`` from the text inside ``layer { ... }``."""
    msg = schema(fork).LayerParameter()
    text_format.Parse(text, msg)
    return msg


def build(text: str, bottom_shapes: Sequence[Sequence[int]], fork: str | None = "ssd",
          phase: str = "test"):
    """The registered layer for a snippet (resolved as the net resolves it), built for bottoms
    of these shapes."""
    param = layer_param(text, fork)
    cls = registry.get(param.type)
    assert cls is not None, f"no layer registered for {param.type}"
    resolve = getattr(cls, "resolve", None)
    if resolve is not None:
        cls = resolve(param)
    return cls(param, [tuple(s) for s in bottom_shapes], phase)
