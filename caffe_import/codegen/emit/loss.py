"""Loss layers (filled below)."""
from __future__ import annotations
