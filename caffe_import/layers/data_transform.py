"""Caffe's ``DataTransformer`` (data_transformer.cpp): what ``transform_param`` does to each
image a data layer reads.

Per image (C x H x W pixels, uint8 or float): a crop of ``crop_size`` (centred, at
``(H - crop) // 2``, in phase TEST; at a random offset in TRAIN), mirrored left-right at
random when ``mirror`` is set (in either phase, as Caffe does), then ``(x - mean) * scale``
in float32: the mean is the ``mean_file`` (a ``.binaryproto`` the size of the uncropped
image, indexed at the crop offset) or one ``mean_value`` per channel (one value: every
channel), else ``x * scale``. Encoded Datums are decoded with their own channels, or 3 / 1
with ``force_color`` / ``force_gray``.

Random choices come from a ``numpy.random.Generator`` seeded by the caller (the net's data
seed): runs with one seed are reproducible, but they do not draw Caffe's random stream
(boost's mt19937 through ``caffe_rng_rand``), so TRAIN-phase crops and mirrors are not
Caffe's; everything in TEST without ``mirror`` is bit-exact.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..errors import CaffeFormatError
from ..io import read_mean
from ..io.datasets import datum_image, with_layer


class DataTransformer:
    """``transform_param`` of one layer: ``shape(c, h, w)`` (the top's item shape),
    ``__call__(pixels)`` (C x H x W -> float32), ``datum_pixels(datum)``."""

    def __init__(self, param: Any, phase: str, rng: np.random.Generator, *,
                 layer: str) -> None:
        self.layer, self.phase, self.rng = layer, phase, rng
        self.crop = int(param.crop_size)
        self.scale = np.float32(param.scale)
        self.mirror = bool(param.mirror)
        if param.force_color and param.force_gray:
            raise CaffeFormatError("cannot set both force_color and force_gray", layer=layer)
        self.color = True if param.force_color else (False if param.force_gray else None)
        self.mean_values = np.asarray(list(param.mean_value), np.float32)
        self.mean: np.ndarray | None = None
        if param.HasField("mean_file"):
            if self.mean_values.size:
                raise CaffeFormatError("cannot specify mean_file and mean_value at the same "
                                       "time", layer=layer)
            self.mean = _read_mean(param.mean_file, layer)

    def shape(self, c: int, h: int, w: int) -> tuple[int, int, int]:
        """The item shape an image of C x H x W becomes."""
        return (c, self.crop, self.crop) if self.crop else (c, h, w)

    def datum_pixels(self, datum: Any, *, what: str = "") -> np.ndarray:
        """A Datum's C x H x W pixels (encoded ones decoded as ``force_color``/``gray`` say)."""
        try:
            return datum_image(datum, self.color, what=what)
        except CaffeFormatError as exc:
            raise with_layer(exc, self.layer) from None

    def __call__(self, pixels: np.ndarray, *, what: str = "") -> np.ndarray:
        c, h, w = pixels.shape
        self.check(c, h, w, what)
        h_off = w_off = 0
        ch, cw = h, w
        if self.crop:
            ch = cw = self.crop
            if self.phase == "train":
                h_off = int(self.rng.integers(h - self.crop + 1))
                w_off = int(self.rng.integers(w - self.crop + 1))
            else:
                h_off, w_off = (h - self.crop) // 2, (w - self.crop) // 2
        mirror = self.mirror and bool(self.rng.integers(2))
        x = pixels[:, h_off:h_off + ch, w_off:w_off + cw].astype(np.float32)
        if self.mean is not None:
            x = x - self.mean[:, h_off:h_off + ch, w_off:w_off + cw]
        elif self.mean_values.size:
            values = self.mean_values if self.mean_values.size == c else \
                np.repeat(self.mean_values, c)
            x = x - values[:, None, None]
        x = x * self.scale
        return np.ascontiguousarray(x[:, :, ::-1] if mirror else x)

    def check(self, c: int, h: int, w: int, what: str = "") -> None:
        """Caffe's checks of an image against the crop, the mean file and mean values."""
        where = f"image {what}: " if what else ""
        if self.crop and (h < self.crop or w < self.crop):
            raise CaffeFormatError(f"{where}{h} x {w} is smaller than crop_size {self.crop}",
                                   layer=self.layer)
        if self.mean is not None and self.mean.shape != (c, h, w):
            raise CaffeFormatError(f"{where}{c} x {h} x {w} does not match the mean file's "
                                   f"{' x '.join(map(str, self.mean.shape))}",
                                   layer=self.layer)
        if self.mean_values.size not in (0, 1, c):
            raise CaffeFormatError(f"{self.mean_values.size} mean_value(s) for {c} channels "
                                   f"(give 1 or {c})", layer=self.layer)


def _read_mean(path: str, layer: str) -> np.ndarray:
    """The mean file's C x H x W (Caffe reads ``mean_file`` relative to the working
    folder)."""
    if not os.path.isfile(path):
        raise CaffeFormatError(f"mean_file '{path}' not found (relative to the working folder "
                               f"{os.getcwd()})", layer=layer)
    try:
        mean = read_mean(path)
    except CaffeFormatError as exc:
        raise with_layer(exc, layer) from None
    return mean.reshape(mean.shape[-3:] if mean.ndim >= 3 else (1, *mean.shape))


def stack(items: Sequence[np.ndarray], *, layer: str, names: Sequence[str]) -> np.ndarray:
    """A batch of items; an item whose shape differs from the first's is an error naming it
    (Caffe requires one size per batch unless the layer resizes)."""
    first = items[0].shape
    for item, name in zip(items, names):
        if item.shape != first:
            raise CaffeFormatError(f"{name} gives an item of shape {item.shape}, the batch's "
                                   f"first {names[0]} {first}: images in a batch must have "
                                   f"one size (resize them, or crop)", layer=layer)
    return np.stack(items)
