"""What an emitter gets and gives, and the table of emitters by layer class.

An emitter turns one built layer (a ``CaffeLayer`` of the ``CaffeNet``, with its wiring) into
source: the lines of ``__init__`` that make its attribute (a ``torch.nn`` module, or a
``ParameterDict`` of its params), the lines of ``forward`` that compute its tops, where each
Caffe blob goes in the module's ``state_dict``, and the helper functions it calls. Emitters are
found by the layer's *class* (:func:`emitter_for`), so a fork's class gets its own emitter and
no emitter compares fork names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ...errors import UsageError
from ...layers.base import CaffeLayer


def _same(t: torch.Tensor) -> torch.Tensor:
    return t


@dataclass(frozen=True)
class ParamMap:
    """Caffe blob ``index`` of a layer -> entry ``key`` of the module's ``state_dict``
    (relative to the layer's attribute). ``to_torch`` maps the blob's values to the entry's;
    ``to_caffe`` maps the entry's gradient back to the blob's shape, None for a buffer
    (no gradient)."""

    key: str
    index: int
    to_torch: Callable[[torch.Tensor], torch.Tensor] = _same
    to_caffe: Optional[Callable[[torch.Tensor], torch.Tensor]] = _same


@dataclass
class Emission:
    """One layer's part of the module. ``init``: statements of ``__init__`` (``self.<attr> =
    ...``); ``forward``: statements of ``forward``; ``params``: its blobs' places (in the
    layer's blob order); ``extra``: state entries not from a blob (key -> tensor, e.g. a
    BatchNorm's ``num_batches_tracked``); ``helpers``: the runtime functions it calls."""

    init: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    params: list[ParamMap] = field(default_factory=list)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    helpers: tuple[str, ...] = ()
    #: blobs the layer takes from the caller: more arguments of ``forward`` (MemoryData)
    arguments: tuple[str, ...] = ()
    #: statements of the module's ``reset()`` (state carried between forwards: LSTM, RNN)
    reset: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LayerContext:
    """Where a layer sits in the generated module: ``attr`` its attribute name, ``bottoms`` /
    ``tops`` the Python variables of its blobs, ``bottom_shapes`` the shapes the net was built
    with, ``inputs`` the variables that hold the caller's tensors (never overwritten), ``phase``
    the CaffeNet's."""

    attr: str
    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    bottom_shapes: tuple[tuple[int, ...], ...]
    inputs: frozenset[str]
    phase: str
    #: whether the layer may write over its bottom (Caffe's in-place, nobody else sees it)
    in_place: bool

    @property
    def x(self) -> str:
        return self.bottoms[0]

    @property
    def y(self) -> str:
        return self.tops[0]

    @property
    def self_attr(self) -> str:
        return f"self.{self.attr}"


Emitter = Callable[[CaffeLayer, LayerContext], Emission]

#: layer class -> its emitter (exact classes: a subclass may compute something else)
EMITTERS: dict[type, Emitter] = {}
#: the classes whose subclasses their emitter also writes (they differ in settings only)
_WITH_SUBCLASSES: set[type] = set()


def emits(*classes: type, subclasses: bool = False) -> Callable[[Emitter], Emitter]:
    """Decorator: ``@emits(Convolution)`` makes the function the emitter of those classes
    (with ``subclasses``, of their subclasses too, unless these have their own)."""

    def deco(fn: Emitter) -> Emitter:
        for cls in classes:
            if cls in EMITTERS and EMITTERS[cls] is not fn:
                raise RuntimeError(f"{cls.__qualname__} has two emitters")
            EMITTERS[cls] = fn
            if subclasses:
                _WITH_SUBCLASSES.add(cls)
        return fn

    return deco


def find_emitter(cls: type) -> Emitter | None:
    """The emitter of ``cls``: its own, else that of a base class registered with
    ``subclasses=True``."""
    if cls in EMITTERS:
        return EMITTERS[cls]
    base = next((b for b in cls.__mro__ if b in _WITH_SUBCLASSES), None)
    return EMITTERS[base] if base is not None else None


def emitter_for(layer: CaffeLayer, type_name: str = "") -> Emitter:
    """The emitter of ``layer``'s class; a ``UsageError`` naming the layer otherwise."""
    fn = find_emitter(type(layer))
    if fn is None:
        raise UsageError(f"layer '{layer.name}' ({type_name or type(layer).__name__}, "
                         f"{type(layer).__qualname__}): no code generator for this layer class")
    return fn


def unsupported(layer: CaffeLayer, why: str) -> UsageError:
    """The error for a layer whose settings the generator cannot write as code."""
    return UsageError(f"layer '{layer.name}' ({layer.param.type}): {why}")


def literal(value) -> str:
    """A Python literal for a number, or a list or tuple of them. A float that is a float32
    (Caffe's ``float`` fields) is spelled as float32 prints it (``1e-05``, not
    ``9.999999747378752e-06``): the same float32 wherever torch rounds it to one."""
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return f'float("{value}")'
        single = np.float32(value)
        if float(single) == value:  # a float32 (Caffe's proto floats): its shortest spelling
            return repr(float(str(single)))
        return repr(value)
    if isinstance(value, list):
        return f"[{', '.join(literal(v) for v in value)}]"
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def broadcast(var: str, start: int, ndim: int, rank: int) -> str:
    """``var`` (``ndim`` axes) indexed to line up with axes ``start ..`` of a ``rank``-axis
    tensor: ``b[None, :, None, None]``."""
    if ndim == 0:
        return var
    index = ["None"] * start + [":"] * ndim + ["None"] * (rank - start - ndim)
    if index == [":"] * len(index):
        return var
    return f"{var}[{', '.join(index)}]"


#: layer class -> ``make(layer, bottom_index, shape, generator)``: a valid value for a net
#: input that bottom reads (labels, indices), or None for seeded noise
EXAMPLES: dict[type, Callable] = {}


def example_input(*classes: type) -> Callable[[Callable], Callable]:
    """Decorator: the function makes valid values of the bottoms of ``classes`` that hold
    integers (labels, indices), for checking a generated module on made-up inputs."""

    def deco(fn: Callable) -> Callable:
        for cls in classes:
            EXAMPLES[cls] = fn
        return fn

    return deco


def integers(shape, high: int, generator: torch.Generator) -> torch.Tensor:
    """Seeded whole numbers in ``[0, high)`` as float32 (Caffe's label blobs)."""
    return torch.randint(0, max(1, high), tuple(shape), generator=generator).to(torch.float32)


def torch_momentum(fraction: float) -> float:
    """``nn.BatchNorm``'s ``momentum`` for a Caffe moving-average fraction (its float32 as
    written, ``0.999`` -> ``0.001``). Only the running statistics' update uses it."""
    return float(f"{1.0 - float(str(np.float32(fraction))):.6g}")
