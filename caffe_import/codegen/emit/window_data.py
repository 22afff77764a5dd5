"""WindowData in a net built with ``data=True``: its tops are ``forward``'s arguments (the
module does not read the window file or warp images; the caller feeds batches), the same
module as for the net built without data."""
from __future__ import annotations

from ...layers.window_data import WindowDataLayer
from .base import emits
from .hdf5_data import emit_read_tops

emits(WindowDataLayer)(emit_read_tops)
