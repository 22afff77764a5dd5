"""Coordinate maps between blobs, and the Crop layer that aligns two of them.

Each spatial layer maps a bottom coordinate to a top coordinate affinely,
``x_top = a * x_bottom + b``, where ``x`` is the centre of a receptive field (the algebra of
pycaffe's ``coord_map``; our own code). With ``k_e = dilation * (kernel - 1) + 1``:

==========================  ==========================  ===========================
layer                       a                           b
==========================  ==========================  ===========================
Convolution, Pooling,       ``1 / stride``              ``(pad - (k_e - 1) / 2) / stride``
Im2col
Deconvolution               ``stride``                  ``(k_e - 1) / 2 - pad``
Crop                        ``1``                       ``-offset`` (axis ``crop axis - 1``)
pointwise (ReLU, Eltwise,   ``1``                       ``0`` (any axis)
Dropout, Scale, LRN, ...)
==========================  ==========================  ===========================

Anything else (Concat, InnerProduct, Input, Python, ...) has no defined map and ends a walk.
The map's axis is the first spatial axis's *channel* axis (1 for convolutions, ``crop axis -
1`` for Crop) so the two line up; pointwise layers fit any axis.

Differences from pycaffe, all stricter: arithmetic is exact (``fractions.Fraction``), so
"integral offset" means integral; when two paths reach a blob with different maps it is an
error rather than whichever path the set iteration met last; per-dimension kernels
(``kernel_h``/``kernel_w``) are supported with one map per spatial dimension; an all-pointwise
path (no spatial layer at all) gives a Crop at Caffe's default axis 2 with offset 0.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from .errors import CaffeFormatError
from .layers.conv import ConvGeometry
from .layers.pooling import PoolGeometry
from .netspec import L, Top
from .proto import caffe_pb2

__all__ = ["CoordMap", "UndefinedMap", "coord_map", "compose", "inverse",
           "coord_map_from_to", "crop", "crop_offsets", "POINTWISE_TYPES"]

POINTWISE_TYPES = frozenset({
    "AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN", "Exp",
    "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH", "Threshold",
})
_SPATIAL_TYPES = frozenset({"Convolution", "Im2col", "Deconvolution", "Pooling"})


class UndefinedMap(Exception):
    """The layer has no affine coordinate map (a walk stops at it)."""


@dataclass(frozen=True)
class CoordMap:
    """``x_top = a * x_bottom + b`` per spatial dimension, from channel axis ``axis``.

    ``a`` and ``b`` are tuples of one entry (the same for every spatial dimension) or one per
    spatial dimension. ``axis`` ``None`` means "fits any axis" (pointwise layers).
    """

    axis: int | None
    a: tuple[Fraction, ...]
    b: tuple[Fraction, ...]

    @staticmethod
    def identity() -> "CoordMap":
        return CoordMap(None, (Fraction(1),), (Fraction(0),))


def _broadcast(x: Sequence[Fraction], y: Sequence[Fraction], what: str) -> tuple[tuple, tuple]:
    if len(x) == len(y):
        return tuple(x), tuple(y)
    if len(x) == 1:
        return tuple(x) * len(y), tuple(y)
    if len(y) == 1:
        return tuple(x), tuple(y) * len(x)
    raise UndefinedMap(f"{what}: {len(x)} vs {len(y)} spatial dimensions")


def _squeeze(v: tuple[Fraction, ...]) -> tuple[Fraction, ...]:
    return v[:1] if len(set(v)) == 1 else v


def compose(outer: CoordMap, inner: CoordMap) -> CoordMap:
    """``outer`` applied after ``inner``: ``(a1 a2, a1 b2 + b1)``. Axes must agree (None fits)."""
    if outer.axis is not None and inner.axis is not None and outer.axis != inner.axis:
        raise CaffeFormatError(f"coordinate maps on different axes ({inner.axis} then {outer.axis})")
    axis = outer.axis if outer.axis is not None else inner.axis
    n = max(len(outer.a), len(inner.a), len(outer.b), len(inner.b))
    def full(v: tuple[Fraction, ...]) -> tuple[Fraction, ...]:
        return v * n if len(v) == 1 else v
    a1, b1, a2, b2 = full(outer.a), full(outer.b), full(inner.a), full(inner.b)
    if not len(a1) == len(b1) == len(a2) == len(b2) == n:
        raise CaffeFormatError("coordinate maps over different numbers of spatial dimensions")
    a = tuple(x * y for x, y in zip(a1, a2))
    b = tuple(x * y + z for x, y, z in zip(a1, b2, b1))
    return CoordMap(axis, _squeeze(a), _squeeze(b))


def inverse(m: CoordMap) -> CoordMap:
    """``x_bottom = x_top / a - b / a``."""
    a = tuple(1 / x for x in m.a)
    a_full, b_full = _broadcast(a, m.b, "inverse")
    return CoordMap(m.axis, _squeeze(a), _squeeze(tuple(-y * x for x, y in zip(a_full, b_full))))


def _conv_geometry(layer: caffe_pb2.LayerParameter) -> tuple[int, ConvGeometry]:
    """``convolution_param``'s axis and geometry, parsed by the layer's own parser. A net spec
    has no shapes, so the number of spatial axes is what the fields say: 2 for the ``_h``/``_w``
    form, else the longest repeated field (1 when each is given once: the map is then the same
    for every spatial axis)."""
    p = layer.convolution_param
    if any(p.HasField(f"{f}_{hw}") for f in ("kernel", "stride", "pad") for hw in "hw"):
        n = 2
    else:
        n = max(len(p.kernel_size), len(p.stride), len(p.pad), len(p.dilation), 1)
    return int(p.axis), ConvGeometry(p, n, layer.name)


def _spatial_map(layer: caffe_pb2.LayerParameter) -> CoordMap:
    """Convolution, Im2col, Deconvolution and Pooling (see the table above)."""
    if layer.type == "Pooling":
        g = PoolGeometry(layer.pooling_param, layer.name)
        if g.global_pooling:
            raise UndefinedMap("global pooling")
        axis, k, s, pad, d = 1, g.kernel, g.stride, g.pad, (1, 1)
    else:
        axis, g = _conv_geometry(layer)
        k, s, pad, d = g.kernel, g.stride, g.pad, g.dilation
    ke = [Fraction(di * (ki - 1) + 1) for di, ki in zip(d, k)]
    if layer.type == "Deconvolution":
        a = tuple(Fraction(si) for si in s)
        b = tuple((kei - 1) / 2 - pi for kei, pi in zip(ke, pad))
    else:
        a = tuple(Fraction(1, si) for si in s)
        b = tuple((pi - (kei - 1) / 2) / si for kei, pi, si in zip(ke, pad, s))
    return CoordMap(axis, _squeeze(a), _squeeze(b))


def coord_map(layer: caffe_pb2.LayerParameter) -> CoordMap:
    """The bottom -> top map of one layer (its first bottom for Crop). Raises UndefinedMap."""
    t = layer.type
    if t in POINTWISE_TYPES:
        return CoordMap.identity()
    if t in _SPATIAL_TYPES:
        return _spatial_map(layer)
    if t == "Crop":
        p = layer.crop_param
        off = tuple(Fraction(-o) for o in p.offset) or (Fraction(0),)
        return CoordMap(p.axis - 1, (Fraction(1),), _squeeze(off))
    raise UndefinedMap(t)


def _walk(start: Top) -> dict[Top, CoordMap]:
    """Every blob reachable backwards from ``start`` with its map *to* ``start``."""
    maps: dict[Top, CoordMap] = {start: CoordMap.identity()}
    queue: deque[Top] = deque([start])
    while queue:
        top = queue.popleft()
        fn = top.fn
        try:
            m = coord_map(fn.param_with_type())
        except UndefinedMap:
            continue
        bottoms = fn.inputs[:1] if fn.type_name == "Crop" else fn.inputs
        for bottom in bottoms:
            here = compose(maps[top], m)
            seen = maps.get(bottom)
            if seen is not None:
                if (seen.a, seen.b) != (here.a, here.b) or (
                        None not in (seen.axis, here.axis) and seen.axis != here.axis):
                    raise CaffeFormatError(
                        f"coordinate maps disagree at {_label(bottom)}: two paths to "
                        f"{_label(start)} give {_fmt(seen)} and {_fmt(here)}")
                continue
            maps[bottom] = here
            queue.append(bottom)
    return maps


def _label(top: Top) -> str:
    return top.hint or f"<{top.fn.type_name} top {top.index}>"


def _fmt(m: CoordMap) -> str:
    return f"(axis {m.axis}, a={', '.join(map(str, m.a))}, b={', '.join(map(str, m.b))})"


def coord_map_from_to(top_from: Top, top_to: Top) -> CoordMap:
    """The map with ``x_to = a * x_from + b``, through the nearest common ancestor blob."""
    from_maps = _walk(top_from)
    # walk back from top_to until a blob reached from top_from turns up
    to_maps: dict[Top, CoordMap] = {top_to: CoordMap.identity()}
    queue: deque[Top] = deque([top_to])
    while queue:
        top = queue.popleft()
        if top in from_maps:
            return compose(to_maps[top], inverse(from_maps[top]))
        fn = top.fn
        try:
            m = coord_map(fn.param_with_type())
        except UndefinedMap:
            continue
        for bottom in (fn.inputs[:1] if fn.type_name == "Crop" else fn.inputs):
            if bottom not in to_maps:
                to_maps[bottom] = compose(to_maps[top], m)
                queue.append(bottom)
    raise CaffeFormatError(
        f"crop({_label(top_from)}, {_label(top_to)}): the two blobs share no ancestor reachable "
        "through layers with a coordinate map")


def crop_offsets(top_from: Top, top_to: Top) -> tuple[int, tuple[int, ...]]:
    """``(axis, offsets)`` of the Crop that aligns ``top_from`` to ``top_to``."""
    m = coord_map_from_to(top_from, top_to)
    where = f"crop({_label(top_from)}, {_label(top_to)})"
    if any(a != 1 for a in m.a):
        raise CaffeFormatError(
            f"{where}: the blobs are at different scales (x_to = {', '.join(map(str, m.a))} * x_from "
            "+ b); crop only aligns blobs of the same stride")
    for b in m.b:
        if b > 0:
            raise CaffeFormatError(
                f"{where}: {_label(top_from)} would need padding, not cropping (offset {-b} < 0)")
        if b.denominator != 1:
            raise CaffeFormatError(f"{where}: the offset {-b} is not an integer")
    axis = 2 if m.axis is None else m.axis + 1
    return axis, tuple(int(-b) for b in m.b)


def crop(top_from: Top, top_to: Top) -> Top:
    """A Crop layer cutting ``top_from`` to ``top_to``'s extent with the computed offset."""
    axis, offsets = crop_offsets(top_from, top_to)
    return L.Crop(top_from, top_to, crop_param=dict(axis=axis, offset=list(offsets)))
