"""Mean files (``.binaryproto``): one ``BlobProto``, as ``compute_image_mean`` writes it.

Caffe stores the legacy 4-D fields ``num=1, channels, height, width``; the array keeps that
shape, ``(1, C, H, W)``, as ``caffe.io.blobproto_to_array`` returns it. A mean written with
``BlobShape`` keeps its dims.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import CaffeFormatError
from . import binary
from .detect import detect
from ..proto.wire import WireError


def read_mean(path: str | os.PathLike) -> np.ndarray:
    """The float32 array of a mean ``.binaryproto``, shaped as the BlobProto says."""
    path = os.fspath(path)
    kind = detect(path)
    if kind in ("hdf5", "prototxt", "caffemodel", "solverstate"):
        raise CaffeFormatError(f"this file is a {kind}, not a mean .binaryproto (BlobProto)",
                               path=path)
    fh, buf = binary.open_mapped(path)
    try:
        try:
            ref = binary._parse_blob(buf, 0, len(buf))
        except WireError as exc:
            raise CaffeFormatError(f"corrupt or truncated binaryproto: {exc}", path=path) from None
        try:
            binary._check_shape(ref)
        except ValueError as exc:
            raise CaffeFormatError(str(exc), path=path) from None
        if ref.count == 0 and not ref.shape:
            raise CaffeFormatError("no blob data found: not a mean .binaryproto", path=path)
        try:
            return binary._materialize(ref, buf, fh)
        except OSError as exc:
            raise CaffeFormatError(f"could not read blob data: {exc}", path=path) from None
    finally:
        buf.close()
        fh.close()
