"""``caffe.coord_map``: crop offsets between net-spec tops, the project's one implementation
(``caffe_import.coord_map``) with pycaffe's return values and exception types.

pycaffe's ``coord_map_from_to`` returns the tuple ``(axis, a, b)`` with ``a`` and ``b`` numpy
arrays (one entry each, or one per spatial dimension each; pycaffe's lengths follow how
the parameters were written, numpy-broadcast) and raises ``RuntimeError`` for tops with no
common ancestor; its ``crop`` asserts (``AssertionError``) that the scales match and the offset
is a non-negative integer. The exceptions here are the project's :class:`CaffeFormatError`
and those builtin types at once, so either ``except`` catches them.
"""
from __future__ import annotations

import numpy as np

from .. import coord_map as _core
from ..errors import CaffeFormatError
from ..netspec import Top

__all__ = ["crop", "coord_map_from_to", "UnmappedTops", "CropMismatch"]


class UnmappedTops(CaffeFormatError, RuntimeError):
    """No coordinate map joins the two tops (pycaffe raises ``RuntimeError``)."""


class CropMismatch(CaffeFormatError, AssertionError):
    """The tops cannot be aligned by cropping: scales differ, or the offset is negative or
    fractional (pycaffe's ``crop`` fails an ``assert``)."""


def coord_map_from_to(top_from: Top, top_to: Top) -> tuple[int | None, np.ndarray, np.ndarray]:
    """``(axis, a, b)`` with ``x_to = a * x_from + b``, as pycaffe returns it; ``axis`` is
    ``None`` when only pointwise layers join the tops."""
    try:
        m = _core.coord_map_from_to(top_from, top_to)
    except CaffeFormatError as exc:
        raise UnmappedTops(str(exc)) from None
    n = max(len(m.a), len(m.b))  # one entry each, or one per spatial dimension each
    a, b = (np.array([float(x) for x in v] * (n if len(v) == 1 else 1)) for v in (m.a, m.b))
    return m.axis, a, b


def crop(top_from: Top, top_to: Top) -> Top:
    """A Crop layer cutting ``top_from`` to ``top_to``'s extent (``caffe_import.coord_map.crop``)."""
    coord_map_from_to(top_from, top_to)  # unconnected tops: UnmappedTops, as pycaffe's
    try:
        return _core.crop(top_from, top_to)
    except CaffeFormatError as exc:
        raise CropMismatch(str(exc)) from None
