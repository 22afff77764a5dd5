"""Matching a stored blob's shape to the shape a layer expects, as Caffe does on load."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import CaffeFormatError


def legacy_shape(shape: Sequence[int]) -> Optional[tuple[int, ...]]:
    """``shape`` right-aligned into Caffe's legacy 4-D ``(num, channels, height, width)``.

    Missing leading axes count as 1; ``None`` for more than 4 axes (no legacy form).
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) > 4:
        return None
    return (1,) * (4 - len(shape)) + shape


def match_blob_shape(array: np.ndarray, expected_shape: Sequence[int], *,
                     layer: Optional[str] = None, path: object = None,
                     index: Optional[int] = None,
                     legacy: Optional[bool] = None) -> np.ndarray:
    """``array`` reshaped to ``expected_shape`` when Caffe would load it there, else an error.

    Caffe's ``Blob::ShapeEquals``: a blob stored with the legacy num/channels/height/width
    fields matches a layer blob of at most 4 axes whose shape, padded on the left with 1s,
    equals (num, channels, height, width); so a V1 InnerProduct weight stored as (1, 1, N, K)
    loads into (N, K) and a bias (1, 1, 1, N) into (N,). A blob stored with ``BlobShape``
    must match exactly.

    ``read_weights`` returns plain arrays and so cannot say which form a 4-D array came
    from: with ``legacy=None`` any 4-D array gets the legacy rule (Caffe is stricter for a
    4-D ``BlobShape``); pass ``legacy=False`` to insist on exact equality.
    """
    expected = tuple(int(d) for d in expected_shape)
    if tuple(array.shape) == expected:
        return array
    if legacy is not False and array.ndim == 4:
        padded = legacy_shape(expected)
        if padded is not None and padded == tuple(array.shape):
            return array.reshape(expected)
    what = f"param blob {index}" if index is not None else "param blob"
    raise CaffeFormatError(f"{what} has shape {tuple(array.shape)} in the file but the layer "
                           f"expects {expected}", path=path, layer=layer)
