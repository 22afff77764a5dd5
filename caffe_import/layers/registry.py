"""Caffe layer type name (and fork) -> layer class.

Every family module under ``caffe_import/layers`` registers its classes with ``@register``, and
every fork unit's ``layers.py`` (``caffe_import/forks/<unit>/layers.py``) registers the fork's
with ``@register(type, fork=NAME)``; the registry imports all of them on first use
(auto-discovery), so adding a layer touches exactly one file.

Lookup (:func:`get`) takes the fork the net's schema names:

* a shipped fork (``"segnet"``): the fork's own class for the type, else the class of a fork
  its catalogue entry says it shares layers with (``uses``: SegNet for cuDNN 5 has SegNet's),
  else BVLC's (registered with no fork; the add-on ports without a schema register there too);
* ``"bvlc"``: BVLC's only;
* anything else (None: the default mixture of every fork, or a user's own ``proto=`` schema):
  BVLC's class where there is one; else the forks' class for the type, and where forks
  implement one type differently (PSPNet's and SegNet's ``BN``; SegNet's and the YOLO ports'
  ``Upsample``) a chooser whose ``resolve(param, blob_count)`` asks each candidate's
  ``claim(param)`` (see :class:`~caffe_import.layers.base.CaffeLayer`) and builds the
  strongest; on a tie the weights decide where the candidates hold different numbers of
  blobs (a class's ``param_blobs``: SegNet's BN 2, PSPNet's 4; the net asks for the count
  only then), else the first in the default order (:func:`choose`).

A fork may also give a BVLC type its own rule (the YOLO ports' ``Pooling``): it is built only
with that fork named, or, when no fork is named, for a net whose shapes fit BVLC's layers
nowhere and that fork's everywhere (:func:`variant_forks`, ``caffe_import.net.build``).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
from typing import Callable, Iterable, Optional, Sequence, TypeVar

from .. import forks as fork_units
from ..proto.catalogue import BVLC, FORKS, canonical_fork
from .base import CaffeLayer

#: BVLC's layers (and the add-on ports that need no schema): type name -> class
_REGISTRY: dict[str, type[CaffeLayer]] = {}
#: fork name -> type name -> the class that fork registered
_FORK_REGISTRY: dict[str, dict[str, type[CaffeLayer]]] = {}
_CHOOSERS: dict[str, type[CaffeLayer]] = {}
_LOADED = False
T = TypeVar("T", bound=type)


def register(*type_names: str, fork: Optional[str] = None) -> Callable[[T], T]:
    """Class decorator: ``@register("Convolution")`` maps a Caffe ``type`` string to a class;
    ``@register("BN", fork="segnet")`` maps it for one shipped fork's schema only."""
    if fork is not None:
        fork = canonical_fork(fork)
        if fork not in FORKS:
            raise ValueError(f"register(fork=...) names a shipped fork, not {fork!r}")
    table = _REGISTRY if fork is None else _FORK_REGISTRY.setdefault(fork, {})

    def deco(cls: T) -> T:
        for name in type_names:
            if name in table and table[name] is not cls:
                raise RuntimeError(f"layer type {name!r} registered twice"
                                   f"{f' for fork {fork}' if fork else ''} "
                                   f"({table[name].__qualname__}, {cls.__qualname__})")
            table[name] = cls
        cls.type_names = tuple(type_names)  # type: ignore[attr-defined]
        return cls

    return deco


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    package = __name__.rpartition(".")[0]
    for info in pkgutil.iter_modules([os.path.dirname(__file__)]):
        if info.name not in ("registry", "base"):
            importlib.import_module(f"{package}.{info.name}")
    for info in pkgutil.iter_modules(fork_units.__path__):
        unit = f"{fork_units.__name__}.{info.name}"
        if info.ispkg and importlib.util.find_spec(f"{unit}.layers") is not None:
            importlib.import_module(f"{unit}.layers")
    _LOADED = True


BlobCount = Callable[[str], Optional[int]]


def choose(candidates: Sequence[type[CaffeLayer]], param,
           blob_count: BlobCount | None = None) -> type[CaffeLayer]:
    """Of the classes several forks register for one type, the one to build for ``param``:
    the highest ``claim(param)`` (the layer's fields); among equal claims, the one whose
    ``param_blobs`` is the number of blobs the weights hold for the layer
    (``blob_count(layer name)``, asked only then: SegNet's BN has 2, PSPNet's 4); else the
    first in the default order."""
    claims = [c.claim(param) for c in candidates]
    tied = [c for c, k in zip(candidates, claims) if k == max(claims)]
    if blob_count is not None and len({getattr(c, "param_blobs", None) for c in tied}) > 1:
        count = blob_count(param.name)
        fits = [c for c in tied if count is not None and getattr(c, "param_blobs", None) == count]
        if fits:
            return fits[0]
    return tied[0]


def is_chooser(cls: type | None) -> bool:
    """Whether ``cls`` is a chooser (:func:`get` under the default mixture, for a type
    several forks implement): its ``resolve(param, blob_count=...)`` picks the class."""
    return cls is not None and cls in _CHOOSERS.values()


def _chooser(type_name: str, candidates: list[type[CaffeLayer]]) -> type[CaffeLayer]:
    """A class standing for a type several forks implement: ``resolve(param, blob_count)``
    is :func:`choose`'s pick among the candidates."""
    cls = _CHOOSERS.get(type_name)
    if cls is None or list(getattr(cls, "candidates")) != candidates:
        def resolve(_cls, param, blob_count: BlobCount | None = None) -> type[CaffeLayer]:
            return choose(candidates, param, blob_count)

        names = ", ".join(c.__qualname__ for c in candidates)
        cls = type(f"{type_name}Chooser", (CaffeLayer,), {
            "__doc__": f"``type: \"{type_name}\"``, which several Caffe forks implement "
                       f"differently ({names}): the layer's fields decide (their ``claim``), "
                       "then the number of blobs its weights hold.",
            "resolve": classmethod(resolve), "candidates": tuple(candidates),
            "type_names": (type_name,), "__module__": __name__})
        _CHOOSERS[type_name] = cls
    return cls


def _mixture(type_name: str) -> type[CaffeLayer] | None:
    if type_name in _REGISTRY:
        return _REGISTRY[type_name]
    candidates: list[type[CaffeLayer]] = []
    for fork in FORKS:
        cls = _FORK_REGISTRY.get(fork, {}).get(type_name)
        if cls is not None and cls not in candidates:
            candidates.append(cls)
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    return _chooser(type_name, candidates)


def get(type_name: str, fork: Optional[str] = None) -> type[CaffeLayer] | None:
    """The class for a Caffe layer type under a schema's fork (``schema.fork``: a shipped
    fork's name, ``"bvlc"``, or None for the default mixture), or None when nothing implements
    it. See the module docstring for the order."""
    _load_all()
    if fork == BVLC:
        return _REGISTRY.get(type_name)
    entry = FORKS.get(fork) if fork is not None else None
    if entry is None:
        return _mixture(type_name)
    for owner in (entry.name, *entry.uses):
        cls = _FORK_REGISTRY.get(owner, {}).get(type_name)
        if cls is not None:
            return cls
    return _REGISTRY.get(type_name)


def variant_forks(type_names: Iterable[str]) -> list[str]:
    """The shipped forks, in the default order, that register their own class for one of
    ``type_names`` where BVLC has one too (the YOLO ports' ``Pooling``): the classes a net
    whose shapes do not fit BVLC's may need."""
    _load_all()
    wanted = set(type_names) & set(_REGISTRY)
    return [fork for fork in FORKS if wanted & set(_FORK_REGISTRY.get(fork, {}))]


def variant(type_name: str, fork: str) -> type[CaffeLayer] | None:
    """``fork``'s own class for a type BVLC also implements, else None."""
    _load_all()
    if type_name not in _REGISTRY:
        return None
    return _FORK_REGISTRY.get(fork, {}).get(type_name)


def known_types() -> list[str]:
    """Every layer type some class is registered for (BVLC's and the forks')."""
    _load_all()
    return sorted(set(_REGISTRY).union(*_FORK_REGISTRY.values()))
