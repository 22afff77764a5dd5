"""The zoo's registry: each family module registers its models beside their specs
(``register(ModelSpec(...))``); lookups import the families on first use, in release order.
"""
from __future__ import annotations

import difflib
import importlib
from collections import OrderedDict

from caffe_import.errors import UsageError
from fcn_repro.zoo.spec import ModelSpec

__all__ = ["register", "get", "names", "ALIASES", "FAMILIES"]

#: the family modules under ``fcn_repro.zoo``, in the release's order (what ``names()`` follows)
FAMILIES = ("voc", "nyud", "siftflow", "pascalcontext", "ilsvrc")

#: short names accepted by ``get`` for the base nets
ALIASES = {"vgg16": "ilsvrc-vgg16", "caffenet": "ilsvrc-caffenet", "alexnet": "ilsvrc-caffenet"}

_REGISTRY: "OrderedDict[str, ModelSpec]" = OrderedDict()
_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the zoo under ``spec.name`` (a name registered twice is a bug)."""
    if spec.name in _REGISTRY:
        raise RuntimeError(f"model {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load() -> None:
    """Import every family module once, so each has registered its models."""
    global _loaded
    if not _loaded:
        _loaded = True
        for family in FAMILIES:
            importlib.import_module(f"fcn_repro.zoo.{family}")


def names(family: str | None = None) -> list[str]:
    """Registered model names in release order (optionally of one family): by family as
    :data:`FAMILIES` lists them, then as each module registers them (whichever family module
    happened to be imported first)."""
    _load()
    ordered = sorted(_REGISTRY.values(), key=lambda s: FAMILIES.index(s.family))
    return [s.name for s in ordered if family is None or s.family == family]


def get(name: str) -> ModelSpec:
    """The model called ``name`` (``voc-fcn8s``, ``nyud-fcn32s-color-hha``, ``vgg16``, ...)."""
    _load()
    key = ALIASES.get(name, name)
    try:
        return _REGISTRY[key]
    except KeyError:
        known = names()
        close = difflib.get_close_matches(name, known + list(ALIASES), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"no model {name!r} in the zoo{hint} (known: {', '.join(known)})") from None
