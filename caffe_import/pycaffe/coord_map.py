"""``caffe.coord_map``: crop offsets between net-spec tops (``crop(top_from, top_to)``), the
project's one implementation under pycaffe's module name."""
from __future__ import annotations

try:  # its home in caffe_import (its earlier home was fcn_repro)
    from caffe_import import coordmap as _impl  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the tree's age
    from fcn_repro import coordmap as _impl

crop = _impl.crop
coord_map_from_to = _impl.coord_map_from_to

__all__ = ["crop", "coord_map_from_to"]
