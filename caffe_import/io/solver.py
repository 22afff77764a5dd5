"""Solver prototxts: :func:`read_solver` (kept in :mod:`.text` with the net reader)."""
from __future__ import annotations

from .text import read_solver

__all__ = ["read_solver"]
