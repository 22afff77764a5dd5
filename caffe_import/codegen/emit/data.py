"""Data layers (BVLC's and, through their units' emitters, the forks'): net inputs, so
``forward``'s arguments, as ``Input``'s tops."""
from __future__ import annotations

from ...layers.data import DataInput
from .base import emits
from .input import emit_nothing

emits(DataInput)(emit_nothing)
