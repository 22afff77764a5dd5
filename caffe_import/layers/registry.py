"""Caffe layer type name -> layer class.

Every family module under ``caffe_import/layers`` registers its classes with ``@register``;
``caffe_import.layers`` imports all of them on first use (auto-discovery), so adding a layer
touches exactly one file.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, TypeVar

from .base import CaffeLayer

_REGISTRY: dict[str, type[CaffeLayer]] = {}
_LOADED = False
T = TypeVar("T", bound=type)


def register(*type_names: str) -> Callable[[T], T]:
    """Class decorator: ``@register("Convolution")`` maps a Caffe ``type`` string to a class."""

    def deco(cls: T) -> T:
        for name in type_names:
            if name in _REGISTRY and _REGISTRY[name] is not cls:
                raise RuntimeError(f"layer type {name!r} registered twice "
                                   f"({_REGISTRY[name].__qualname__}, {cls.__qualname__})")
            _REGISTRY[name] = cls
        cls.type_names = tuple(type_names)  # type: ignore[attr-defined]
        return cls

    return deco


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    from caffe_import import layers as pkg
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in ("registry", "base"):
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    _LOADED = True


def get(type_name: str) -> type[CaffeLayer] | None:
    """The class for a Caffe layer type, or None when no module implements it."""
    _load_all()
    return _REGISTRY.get(type_name)


def known_types() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)
