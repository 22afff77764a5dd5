"""The model zoo: every model of the FCN release, and the ILSVRC base nets, by name.

``get(name) -> ModelSpec``, ``names()`` and ``build_net`` (a CaffeNet from a zoo name or a
prototxt, with weights); one module per family (``voc``, ``nyud``,
``siftflow``, ``pascalcontext``, ``ilsvrc``) lists its ``MODELS``.
"""
from __future__ import annotations

import difflib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from caffe_import.errors import UsageError
from caffe_import.proto.schema import Schema, resolve_schema
from fcn_repro.zoo.spec import RELEASE_HOST, ModelSpec, SolverFacts

__all__ = ["get", "names", "build_net", "ModelSpec", "SolverFacts", "RELEASE_HOST", "ALIASES"]

_FAMILIES = ("voc", "nyud", "siftflow", "pascalcontext", "ilsvrc")

#: short names accepted by ``get`` for the base nets
ALIASES = {"vgg16": "ilsvrc-vgg16", "caffenet": "ilsvrc-caffenet", "alexnet": "ilsvrc-caffenet"}

_REGISTRY: "OrderedDict[str, ModelSpec]" = OrderedDict()


def _load() -> None:
    if _REGISTRY:
        return
    import importlib

    for family in _FAMILIES:
        module = importlib.import_module(f"{__name__}.{family}")
        for spec in module.MODELS:
            if spec.name in _REGISTRY:
                raise RuntimeError(f"model {spec.name!r} registered twice")
            _REGISTRY[spec.name] = spec


def names(family: str | None = None) -> list[str]:
    """Registered model names in release order (optionally of one family)."""
    _load()
    return [n for n, s in _REGISTRY.items() if family is None or s.family == family]


def get(name: str) -> ModelSpec:
    """The model called ``name`` (``voc-fcn8s``, ``nyud-fcn32s-color-hha``, ``vgg16``, ...)."""
    _load()
    key = ALIASES.get(name, name)
    try:
        return _REGISTRY[key]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY) + list(ALIASES), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"no model {name!r} in the zoo{hint} (known: {', '.join(_REGISTRY)})") from None


def build_net(*, model: str | None = None, net: str | os.PathLike | None = None,
              weights: str | os.PathLike | None = None, device: Any = "cpu",
              fork: str | None = None, proto: str | os.PathLike | None = None,
              precision: str = "exact", net_param: Any = None,
              schema: Schema | None = None) -> Any:
    """A test-phase CaffeNet on ``device``: the deploy net of zoo ``model``, or the prototxt
    ``net`` (read with the Caffe fork schema ``fork``/``proto``/``schema`` when given), or
    ``net_param``, a net read already (``caffe_import.io.text.parse_net``'s result or a
    NetParameter), with ``weights`` (a caffemodel, binary or HDF5) if given, in
    ``precision`` ("exact" / "fast", see ``caffe_import.precision``)."""
    from caffe_import.net import CaffeNet
    if sum(x is not None for x in (model, net, net_param)) != 1:
        raise UsageError("give exactly one of model (a zoo name) or net (a prototxt)")
    for path, what in ((weights, "weights file"), (net, "net prototxt")):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{what} {path} does not exist")
    param = get(model).deploy_net() if model is not None else (
        net_param if net_param is not None else str(net))
    return CaffeNet(param, weights=None if weights is None else str(weights), phase="test", device=device,
                    schema=resolve_schema(schema, fork, proto), precision=precision)
