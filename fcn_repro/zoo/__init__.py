"""The model zoo: every model of the FCN release, and the ILSVRC base nets, by name.

``get(name) -> ModelSpec``, ``names()`` and ``build_net`` (a CaffeNet from a zoo name or a
prototxt, with weights); one module per family (``voc``, ``nyud``, ``siftflow``,
``pascalcontext``, ``ilsvrc``) registers each model beside its spec
(:func:`fcn_repro.zoo.registry.register`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from caffe_import.errors import UsageError
from caffe_import.net import CaffeNet
from caffe_import.proto.schema import Schema, resolve_schema
from fcn_repro.zoo.registry import ALIASES, get, names, register
from fcn_repro.zoo.spec import RELEASE_HOST, ModelSpec, SolverFacts

__all__ = ["get", "names", "register", "build_net", "ModelSpec", "SolverFacts", "RELEASE_HOST",
           "ALIASES"]

def build_net(*, model: str | None = None, net_path: str | os.PathLike | None = None,
              weights: str | os.PathLike | None = None, device: Any = "cpu",
              fork: str | None = None, proto: str | os.PathLike | None = None,
              precision: str = "exact", net_param: Any = None,
              schema: Schema | None = None) -> Any:
    """A test-phase CaffeNet on ``device``: the deploy net of zoo ``model``, or the prototxt
    ``net_path`` (read with the Caffe fork schema ``fork``/``proto``/``schema`` when given), or
    ``net_param``, a net read already (``caffe_import.io.text.parse_net``'s result or a
    NetParameter), with ``weights`` (a caffemodel, binary or HDF5) if given, in
    ``precision`` ("exact" / "fast", see ``caffe_import.precision``)."""
    if sum(x is not None for x in (model, net_path, net_param)) != 1:
        raise UsageError("give exactly one of model (a zoo name), net_path (a prototxt) or "
                         "net_param (a net read already)")
    for path, what in ((weights, "weights file"), (net_path, "net prototxt")):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{what} {path} does not exist")
    param = get(model).deploy_net() if model is not None else (
        net_param if net_param is not None else str(net_path))
    return CaffeNet(param, weights=None if weights is None else str(weights), phase="test", device=device,
                    schema=resolve_schema(schema, fork, proto), precision=precision)
