"""The release's preprocessing, as plain functions on arrays.

What the release's Python data layers do to every image (``voc_layers.py`` and siblings):
cast to float32, flip RGB -> BGR, subtract a per-dataset mean given in BGR order, move channels
first (HWC -> CHW). The mean is subtracted in place from the float32 image with numpy's rules,
so its dtype matters: ``voc_layers.py`` (VOC, SBD) and ``infer.py`` hold it as
``np.array(mean)``, float64, and ``in_ -= mean`` computes in float64 and rounds once into
float32; the SIFT Flow, PASCAL-Context and NYUDv2 layers hold float32 means. The constants below
carry the release's dtype, and a mean given as a tuple of Python floats is float64, as there. No resizing, no cropping, no scaling to [0, 1] (unlike torchvision): the
nets were trained on 0..255 BGR values with the mean removed, one full-size image per batch.

Labels keep their integer values; void is 255. Labels stored with 0 = void and 1..K = classes
(SIFT Flow, NYUDv2) are shifted down by one *in uint8*, so 0 wraps around to 255.
"""
from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike
from PIL import Image

# BGR means, exactly as the release's layers give them: values and dtype.
VOC_MEAN_BGR = np.array((104.00698793, 116.66876762, 122.67891434))  # float64 (voc_layers.py)
VOC_MEAN_BGR.flags.writeable = False
PASCALCONTEXT_MEAN_BGR = np.array((104.007, 116.669, 122.679), dtype=np.float32)
SIFTFLOW_MEAN_BGR = np.array((114.578, 115.294, 108.353), dtype=np.float32)
NYUD_COLOR_MEAN_BGR = np.array((116.190, 97.203, 92.318), dtype=np.float32)
NYUD_HHA_MEAN = np.array((132.431, 94.076, 118.477), dtype=np.float32)  # file order (not flipped)
for _mean in (PASCALCONTEXT_MEAN_BGR, SIFTFLOW_MEAN_BGR, NYUD_COLOR_MEAN_BGR, NYUD_HHA_MEAN):
    _mean.flags.writeable = False
NYUD_LOG_DEPTH_MEAN = 7.844
VOID = 255


def rgb_array(image: Image.Image) -> np.ndarray:
    """``H x W x 3`` uint8 RGB of a PIL image. Grayscale / palette / RGBA inputs are converted
    to RGB first (the release assumes 3-channel JPEGs and would fail on others)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def _subtract_mean(arr: np.ndarray, mean: ArrayLike) -> np.ndarray:
    """``arr -= mean`` in place on a float32 image, as the release does: a float64 mean makes
    numpy subtract in float64 and round once into float32 (rounding the mean to float32 first
    differs by one ulp for about one pixel value in three with VOC's mean)."""
    arr -= np.asarray(mean)
    return arr


def caffe_rgb(rgb: np.ndarray, mean_bgr: ArrayLike) -> np.ndarray:
    """float32, RGB -> BGR, minus the BGR mean (in its own dtype), HWC -> CHW (C-contiguous)."""
    arr = np.array(rgb, dtype=np.float32)  # a copy: the mean is subtracted in place
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {arr.shape}")
    arr = _subtract_mean(arr[:, :, ::-1], mean_bgr)
    return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)


def caffe_unflipped(arr: np.ndarray, mean: ArrayLike) -> np.ndarray:
    """float32, minus a per-channel mean in the file's own channel order, HWC -> CHW (HHA)."""
    arr = np.array(arr, dtype=np.float32)
    channels = np.asarray(mean).size
    if arr.ndim != 3 or arr.shape[2] != channels:
        raise ValueError(f"expected an H x W x {channels} image, got shape {arr.shape}")
    arr = _subtract_mean(arr, mean)
    return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)


def caffe_log_depth(depth: np.ndarray, mean: float = NYUD_LOG_DEPTH_MEAN) -> np.ndarray:
    """NYUDv2 depth: ``log(d) - 7.844`` as float32, one channel (``1 x H x W``).

    As in the release, a zero depth gives ``-inf`` (no special case); the warning numpy would
    print for it is silenced."""
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"expected an H x W depth map, got shape {d.shape}")
    with np.errstate(divide="ignore"):
        d = np.log(d) - np.float32(mean)
    return np.ascontiguousarray(d[np.newaxis], dtype=np.float32)


def shift_labels(label: np.ndarray) -> np.ndarray:
    """Classes 1..K -> 0..K-1 and void 0 -> 255: ``label.astype(uint8) - 1`` with uint8
    wrap-around, as the release does for SIFT Flow and NYUDv2."""
    lab = np.asarray(label).astype(np.uint8)
    return lab - np.uint8(1)


def label_tensor(label: np.ndarray) -> torch.Tensor:
    """``H x W`` int64 tensor of a label map."""
    return torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))


def image_tensor(arr: np.ndarray) -> torch.Tensor:
    """``C x H x W`` float32 tensor of a preprocessed image."""
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def preprocess_rgb(image: Image.Image | np.ndarray, mean_bgr: ArrayLike = VOC_MEAN_BGR) -> torch.Tensor:
    """A PIL image or ``H x W x 3`` uint8 RGB array -> the net's input tensor ``3 x H x W``."""
    rgb = rgb_array(image) if isinstance(image, Image.Image) else np.asarray(image)
    return image_tensor(caffe_rgb(rgb, mean_bgr))
