"""The model zoo: every model of the FCN release, and the ILSVRC base nets, by name.

``get(name) -> ModelSpec`` and ``names()``; one module per family (``voc``, ``nyud``,
``siftflow``, ``pascalcontext``, ``ilsvrc``) lists its ``MODELS``.
"""
from __future__ import annotations

import difflib
from collections import OrderedDict

from caffe_import.errors import CaffeFormatError
from fcn_repro.zoo.spec import RELEASE_HOST, ModelSpec, SolverFacts

__all__ = ["get", "names", "ModelSpec", "SolverFacts", "RELEASE_HOST", "ALIASES"]

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
        raise CaffeFormatError(f"no model {name!r} in the zoo{hint} (known: {', '.join(_REGISTRY)})") from None
