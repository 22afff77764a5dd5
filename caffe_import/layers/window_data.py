"""Caffe's ``WindowData`` layer (window_data_layer.cpp), reading a window file: R-CNN-style
warped windows of images, built when a net reads data (``caffe_import.layers.data_read``).

The window file repeats ``# image_index``, the image path (``root_folder`` + path), its
``channels height width``, the number of windows and per window ``label overlap x1 y1 x2
y2``. A window with ``overlap >= fg_threshold`` is foreground (its label must be > 0), one
with ``overlap < bg_threshold`` background (label 0); others are unused. A window's image is
``image_index``'s entry (the files number them 0, 1, ... in order).

Each batch holds ``batch_size - int(batch_size * fg_fraction)`` background windows, then the
foreground ones, each drawn at random (with replacement) from its set, mirrored at random
when ``mirror`` is set. A window is cut from the colour image (``crop_mode: "warp"``; with
``context_pad`` or ``"square"`` it is first grown, by float32 arithmetic as Caffe's, so that
``context_pad`` pixels of context surround it after warping, and clipped to the image, its
outside becoming zero padding), resized bilinearly (OpenCV) to ``crop_size`` and stored as
``(x - mean) * window_data_param.scale``; the mean file is indexed from its centre
``(mean_width - crop_size) // 2`` (both axes), as Caffe does. Padding stays 0.

``cache_images`` changes no pixel (Caffe decodes its cached file bytes as ``imread`` would):
images are read when a window needs them.

The random draws are the net's data seed's, not Caffe's stream: which windows a batch holds
matches Caffe only where each set has one window; how a given window is warped is exact.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from ..errors import CaffeFormatError
from ..io.datasets import read_image, with_layer
from .base import Shape
from .data_read import Batch, DataReading, ReadingDataLayer, _source

f32 = np.float32


@dataclass(frozen=True)
class Window:
    image: int
    label: int
    overlap: float
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 (inclusive)


def read_window_file(path: str, root: str, fg_threshold: float, bg_threshold: float,
                     *, layer: str) -> tuple[list[tuple[str, int]], list[Window], list[Window]]:
    """``(images as (path, channels), foreground windows, background windows)`` of a window
    file; a malformed file is one ``CaffeFormatError`` naming it and the token."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            tokens = f.read().split()
    except OSError as exc:
        raise CaffeFormatError(f"cannot read the window file: {exc.strerror}", path=path,
                               layer=layer) from None
    if not tokens:
        raise CaffeFormatError("the window file is empty", path=path, layer=layer)
    images, fg, bg, i = [], [], [], 0

    def take(kind: type, what: str) -> Any:
        nonlocal i
        if i >= len(tokens):
            raise CaffeFormatError(f"the window file ends where {what} should be", path=path,
                                   layer=layer)
        try:
            value = kind(tokens[i])
        except ValueError:
            raise CaffeFormatError(f"expected {what}, found '{tokens[i]}' (token {i + 1})",
                                   path=path, layer=layer) from None
        i += 1
        return value

    while i < len(tokens):
        if take(str, "'#'") != "#":
            raise CaffeFormatError(f"expected '#' at token {i}", path=path, layer=layer)
        index = take(int, "an image index")
        image = root + take(str, "an image path")
        channels = take(int, "channels")
        take(int, "height"), take(int, "width")
        images.append((image, channels))
        for _ in range(take(int, "the number of windows")):
            label, overlap = take(int, "a label"), float(f32(take(float, "an overlap")))
            box = tuple(take(int, "a window coordinate") for _ in range(4))
            if overlap >= float(f32(fg_threshold)):
                if label <= 0:
                    raise CaffeFormatError(f"foreground window of image {index} has label "
                                           f"{label} (must be > 0)", path=path, layer=layer)
                fg.append(Window(index, label, overlap, box))  # type: ignore[arg-type]
            elif overlap < float(f32(bg_threshold)):
                bg.append(Window(index, 0, 0.0, box))  # type: ignore[arg-type]
    return images, fg, bg


def _round(value: np.float32) -> int:
    """C's ``round``: halves away from zero."""
    v = float(value)
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


@dataclass
class Warp:
    """Where a window is cut from the image and where its warp lands in the crop."""

    box: tuple[int, int, int, int]
    size: tuple[int, int]  # (width, height) to resize to
    pad: tuple[int, int]  # (pad_h, pad_w)


def plan_warp(box: tuple[int, int, int, int], image_hw: tuple[int, int], crop: int,
              context_pad: int, square: bool, mirror: bool) -> Warp:
    """Caffe's window geometry (float32 as Caffe's ``Dtype``)."""
    x1, y1, x2, y2 = box
    if not (context_pad > 0 or square):
        return Warp(box, (crop, crop), (0, 0))
    context_scale = f32(crop) / f32(crop - 2 * context_pad)
    half_h, half_w = f32((y2 - y1 + 1) / 2.0), f32((x2 - x1 + 1) / 2.0)
    cx, cy = f32(x1) + half_w, f32(y1) + half_h
    if square:
        half_h = half_w = max(half_h, half_w)
    x1, x2 = _round(cx - half_w * context_scale), _round(cx + half_w * context_scale)
    y1, y2 = _round(cy - half_h * context_scale), _round(cy + half_h * context_scale)
    unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
    rows, cols = image_hw
    pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
    pad_x2, pad_y2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
    x1, x2, y1, y2 = x1 + pad_x1, x2 - pad_x2, y1 + pad_y1, y2 - pad_y2
    scale_x, scale_y = f32(crop) / f32(unclipped_w), f32(crop) / f32(unclipped_h)
    width = _round(f32(x2 - x1 + 1) * scale_x)
    height = _round(f32(y2 - y1 + 1) * scale_y)
    pad_x1, pad_x2 = _round(f32(pad_x1) * scale_x), _round(f32(pad_x2) * scale_x)
    pad_h = _round(f32(pad_y1) * scale_y)
    pad_w = pad_x2 if mirror else pad_x1
    height = min(height, crop - pad_h)
    width = min(width, crop - pad_w)
    return Warp((x1, y1, x2, y2), (width, height), (pad_h, pad_w))


class WindowDataLayer(ReadingDataLayer):
    """Caffe's ``WindowData`` layer (see the module docstring)."""

    param_field = "window_data_param"

    def __init__(self, param: Any, bottom_shapes: Sequence[Shape], phase: str = "test", *,
                 reading: DataReading = DataReading()) -> None:
        super().__init__(param, bottom_shapes, phase, reading=reading)
        p, t = self.p, param.transform_param
        source = _source(p, self.name)
        self.images, self.fg, self.bg = read_window_file(
            source, p.root_folder, p.fg_threshold, p.bg_threshold, layer=self.name)
        self.crop = int(t.crop_size)
        if self.crop <= 0:
            raise CaffeFormatError("WindowData needs transform_param.crop_size > 0",
                                   layer=self.name)
        if not self.fg or not self.bg:
            raise CaffeFormatError(f"{source} has {len(self.fg)} foreground and "
                                   f"{len(self.bg)} background windows (thresholds "
                                   f"{p.fg_threshold:g} / {p.bg_threshold:g}); both are "
                                   f"needed", layer=self.name)
        self._check_images(source)
        channels = self.images[-1][1]
        self.item_shape = (channels, self.crop, self.crop)
        self.mean = self.transformer.mean
        self.mean_values = self.transformer.mean_values
        if self.mean is not None and (self.mean.shape[0] < channels or min(
                self.mean.shape[1:]) < self.crop + (self.mean.shape[2] - self.crop) // 2):
            raise CaffeFormatError(f"the mean file ({' x '.join(map(str, self.mean.shape))}) "
                                   f"is too small for {channels} x {self.crop} x {self.crop} "
                                   f"windows", layer=self.name)
        if self.mean_values.size not in (0, 1, channels):
            raise CaffeFormatError(f"{self.mean_values.size} mean_value(s) for {channels} "
                                   f"channels (give 1 or {channels})", layer=self.name)

    def _check_images(self, source: str) -> None:
        used = {w.image for w in self.fg + self.bg}
        bad = [i for i in used if not 0 <= i < len(self.images)]
        if bad:
            raise CaffeFormatError(f"{source}: windows of image index {bad[0]}, but the file "
                                   f"lists {len(self.images)} images (numbered from 0 in "
                                   f"order)", layer=self.name)
        missing = [self.images[i][0] for i in sorted(used)
                   if not os.path.isfile(self.images[i][0])]
        if missing:
            raise CaffeFormatError(f"{len(missing)} images that {source} lists do not exist, "
                                   f"e.g. '{missing[0]}'", layer=self.name)
        wrong = [path for path, c in self.images if c != 3]
        if wrong:
            raise CaffeFormatError(f"{source} gives {wrong[0]} other than 3 channels; "
                                   f"WindowData reads colour images", layer=self.name)

    def make_batch(self) -> Batch:
        num_fg = int(f32(self.batch_size) * f32(self.p.fg_fraction))
        data = np.zeros((self.batch_size, *self.item_shape), np.float32)
        labels = np.zeros(self.batch_size, np.float32)
        item = 0
        for pool, count in ((self.bg, self.batch_size - num_fg), (self.fg, num_fg)):
            for _ in range(count):
                window = pool[int(self.rng.integers(1 << 32)) % len(pool)]
                mirror = bool(self.transformer.mirror and self.rng.integers(1 << 32) % 2)
                self._warp_into(data[item], window, mirror)
                labels[item] = window.label
                item += 1
        return data, labels

    def _warp_into(self, out: np.ndarray, window: Window, mirror: bool) -> None:
        path = self.images[window.image][0]
        try:
            img = read_image(path, is_color=True)
        except CaffeFormatError as exc:
            raise with_layer(exc, self.name) from None
        warp = plan_warp(window.box, img.shape[:2], self.crop, int(self.p.context_pad),
                         self.p.crop_mode == "square", mirror)
        x1, y1, x2, y2 = warp.box
        if x1 < 0 or y1 < 0 or x2 >= img.shape[1] or y2 >= img.shape[0] or x2 < x1 or y2 < y1:
            raise CaffeFormatError(f"window {window.box} lies outside {path} "
                                   f"({img.shape[1]} x {img.shape[0]})", layer=self.name)
        patch = cv2.resize(img[y1:y2 + 1, x1:x2 + 1], warp.size,
                           interpolation=cv2.INTER_LINEAR).reshape(
            warp.size[1], warp.size[0], -1)
        if mirror:
            patch = patch[:, ::-1]
        pixels = patch.transpose(2, 0, 1).astype(np.float32)
        (pad_h, pad_w), (c, rows, cols) = warp.pad, pixels.shape
        if self.mean is not None:
            off = (self.mean.shape[2] - self.crop) // 2
            pixels = pixels - self.mean[:c, off + pad_h:off + pad_h + rows,
                                        off + pad_w:off + pad_w + cols]
        elif self.mean_values.size:
            values = np.broadcast_to(self.mean_values, (c,)).astype(np.float32)
            pixels = pixels - values[:, None, None]
        out[:, pad_h:pad_h + rows, pad_w:pad_w + cols] = pixels * f32(self.p.scale)

