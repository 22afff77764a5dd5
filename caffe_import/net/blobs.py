"""``CaffeNet.blobs``: blob name -> tensor, with errors that say why a blob has no tensor."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Mapping

import torch

from ..layers.base import Shape


class BlobTensors(OrderedDict):
    """``CaffeNet.blobs``: blob name -> its tensor after the last forward (inputs before).

    The net knows every blob and its shape from construction (``net.blob_shapes``); asking for
    one that has no tensor yet says so instead of a bare ``KeyError``. The values are plain
    tensors, so ``.diff`` there is ``torch.Tensor.diff`` (finite differences), not Caffe's
    gradient: use ``net.blob_grads()``, or ``caffe_import.pycaffe.Net`` for pycaffe's
    ``Blob`` objects with ``.data`` and ``.diff``.
    """

    def __init__(self, shapes: Mapping[str, Shape], *args: Any,
                 freed: Iterable[str] = ()) -> None:
        super().__init__(*args)
        self._shapes = shapes
        self.freed: set[str] = set(freed)  # dropped after their last reader (inference)

    def __missing__(self, name: str) -> torch.Tensor:
        if name in self.freed:
            raise KeyError(f"blob {name!r} was released after its last reader to save memory; "
                           f"ask for it (forward(outputs=[...])) or build the net with "
                           f"keep_blobs=True")
        if name in self._shapes:
            raise KeyError(f"blob {name!r} (shape {self._shapes[name]}) has no data yet: "
                           f"forward() computes it; net.blob_shapes lists every blob now")
        known = ", ".join(self._shapes) or "none"
        raise KeyError(f"this net has no blob named {name!r} (its blobs: {known})")

    def __reduce__(self):
        return (OrderedDict, (list(self.items()),))
