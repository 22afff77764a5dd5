"""The PASCAL VOC colour palette, and label maps written as palette PNGs / colour overlays.

The VOC ground truth is stored as 8-bit palette PNGs whose pixel values are class indices;
the palette gives class ``i`` the colour whose R, G, B bits are taken, most significant first,
from bits 0, 1, 2 (then 3, 4, 5, ...) of ``i``. Index 255 (void) is drawn in cream
(224, 224, 192), as in the VOC devkit.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from caffe_import.io.atomic import atomic_open

VOID_COLOR = (224, 224, 192)


def voc_palette(n: int = 256) -> np.ndarray:
    """``(n, 3)`` uint8 colours of the VOC palette (entry 255 is the void colour)."""
    out = np.zeros((n, 3), dtype=np.uint8)
    for index in range(n):
        rgb = [0, 0, 0]
        bits = index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
        out[index] = rgb
    if n > 255:
        out[255] = VOID_COLOR
    return out


_PALETTE = voc_palette(256)


def colorize(label: np.ndarray) -> np.ndarray:
    """``H x W`` class indices (0..255) -> ``H x W x 3`` uint8 RGB in VOC colours."""
    label = np.asarray(label)
    return _PALETTE[np.clip(label, 0, 255).astype(np.uint8)]


def label_image(label: np.ndarray) -> Image.Image:
    """A palette (mode ``P``) PIL image of a label map, as the VOC ground truth is stored."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"a label map is H x W, got shape {label.shape}")
    im = Image.fromarray(np.clip(label, 0, 255).astype(np.uint8), mode="P")
    im.putpalette(_PALETTE.reshape(-1).tolist())
    return im


def overlay(rgb: np.ndarray, label: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the VOC colours of ``label`` over an ``H x W x 3`` uint8 RGB image; void pixels
    (255) keep the image as is."""
    rgb = np.asarray(rgb, dtype=np.float32)
    colours = colorize(label).astype(np.float32)
    mix = (1.0 - alpha) * rgb + alpha * colours
    keep = np.asarray(label) == 255
    mix[keep] = rgb[keep]
    return np.clip(np.rint(mix), 0, 255).astype(np.uint8)


def save_image_atomic(image: Image.Image, path: str | os.PathLike, format: str = "PNG") -> Path:
    """Write a PIL image through a temp file in the target folder + ``os.replace``."""
    path = Path(path)
    with atomic_open(path) as fh:
        image.save(fh, format=format)
    return path


def save_label_png(label: np.ndarray, path: str | os.PathLike) -> Path:
    """Save a label map as a VOC palette PNG (atomically)."""
    return save_image_atomic(label_image(label), path)


def save_overlay_png(rgb: np.ndarray, label: np.ndarray, path: str | os.PathLike,
                     alpha: float = 0.5) -> Path:
    """Save the colour overlay of a label map on its image (atomically)."""
    return save_image_atomic(Image.fromarray(overlay(rgb, label, alpha)), path)
