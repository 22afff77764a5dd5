"""``caffe.coord_map``: crop offsets between net-spec tops (``crop(top_from, top_to)``), the
project's one implementation (``caffe_import.coord_map``) under pycaffe's module name."""
from __future__ import annotations

from ..coord_map import coord_map_from_to, crop

__all__ = ["crop", "coord_map_from_to"]
