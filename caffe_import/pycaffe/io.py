"""``caffe.io``: array/proto converters, the input ``Transformer`` and image helpers.

Same behaviour as pycaffe's ``io.py`` except where it leaned on scikit-image (not a dependency
here):

* ``load_image`` decodes with Pillow and scales to [0, 1] as ``skimage.img_as_float`` does
  (8-bit: / 255; 16-bit: / 65535); with ``color=False`` a colour image becomes gray as
  skimage's ``rgb2gray`` makes it (``0.2125 R + 0.7154 G + 0.0721 B`` on the [0, 1] values, in
  float64; not Pillow's "L", whose ITU-R 601-2 weights differ by up to 0.09);
* ``resize_image`` calls ``scipy.ndimage.zoom`` as skimage's ``resize`` does inside
  (``grid_mode=True``, zeros beyond the border, output clipped), so it gives pycaffe's values.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from ..proto import caffe_pb2

# ---- proto / datum / ndarray conversion ------------------------------------------------


def blobproto_to_array(blob, return_diff: bool = False) -> np.ndarray:
    """A ``BlobProto`` as an array (its diff with ``return_diff``); legacy 4-D shape when the
    proto uses num/channels/height/width."""
    data = np.array(blob.diff if return_diff else blob.data)
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return data.reshape(blob.num, blob.channels, blob.height, blob.width)
    return data.reshape(blob.shape.dim)


def array_to_blobproto(arr: np.ndarray, diff: np.ndarray | None = None) -> caffe_pb2.BlobProto:
    """An array (and optionally its diff) as a ``BlobProto`` with a ``shape``."""
    arr = np.asarray(arr)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        blob.diff.extend(np.asarray(diff).astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist: Iterable[np.ndarray]) -> bytes:
    """Arrays as a serialized ``BlobProtoVector``."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend([array_to_blobproto(a) for a in arraylist])
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(data: bytes) -> list[np.ndarray]:
    """A serialized ``BlobProtoVector`` as a list of arrays."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(data)
    return [blobproto_to_array(b) for b in vec.blobs]


def array_to_datum(arr: np.ndarray, label: int | None = None) -> caffe_pb2.Datum:
    """A C x H x W array as a ``Datum``: uint8 as bytes in ``data``, else ``float_data``."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError("Incorrect array shape.")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum) -> np.ndarray:
    """A ``Datum``'s pixels as C x H x W (uint8 from ``data``, else float from
    ``float_data``); the label stays in ``datum.label``."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy()
    return np.array(datum.float_data).astype(float).reshape(shape)


# ---- pre-processing --------------------------------------------------------------------


class Transformer:
    """Formats images for a net's inputs: ``inputs`` maps input names to blob shapes
    (``{name: net.blobs[name].data.shape}``). ``preprocess`` converts to float32, resizes to
    the input's H x W, then transposes, swaps channels, scales raw, subtracts the mean and
    scales the input, in that order; ``deprocess`` undoes them."""

    def __init__(self, inputs: Mapping[str, Sequence[int]]) -> None:
        self.inputs = dict(inputs)
        self.transpose: dict[str, Sequence[int]] = {}
        self.channel_swap: dict[str, Sequence[int]] = {}
        self.raw_scale: dict[str, float] = {}
        self.mean: dict[str, np.ndarray] = {}
        self.input_scale: dict[str, float] = {}

    def _check_input(self, in_: str) -> None:
        if in_ not in self.inputs:
            raise ValueError(f"{in_} is not one of the net inputs: {self.inputs}")

    def preprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        self._check_input(in_)
        caffe_in = np.asarray(data).astype(np.float32, copy=False)
        in_dims = tuple(self.inputs[in_][2:])
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if in_ in self.transpose:
            caffe_in = caffe_in.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            caffe_in = caffe_in[list(self.channel_swap[in_]), :, :]
        if in_ in self.raw_scale:
            caffe_in *= self.raw_scale[in_]
        if in_ in self.mean:
            caffe_in -= self.mean[in_]
        if in_ in self.input_scale:
            caffe_in *= self.input_scale[in_]
        return caffe_in

    def deprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        self._check_input(in_)
        decaf_in = np.array(data, copy=True).squeeze()
        if in_ in self.input_scale:
            decaf_in /= self.input_scale[in_]
        if in_ in self.mean:
            decaf_in += self.mean[in_]
        if in_ in self.raw_scale:
            decaf_in /= self.raw_scale[in_]
        if in_ in self.channel_swap:
            decaf_in = decaf_in[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            decaf_in = decaf_in.transpose(np.argsort(self.transpose[in_]))
        return decaf_in

    def set_transpose(self, in_: str, order: Sequence[int]) -> None:
        """Dimension order, e.g. (2, 0, 1) for H x W x C images into C x H x W."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError("Transpose order needs to have the same number of dimensions "
                             "as the input.")
        self.transpose[in_] = order

    def set_channel_swap(self, in_: str, order: Sequence[int]) -> None:
        """Channel order after transposing, e.g. (2, 1, 0) for RGB to BGR."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError("Channel swap needs to have the same number of dimensions as "
                             "the input channels.")
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_: str, scale: float) -> None:
        """Scale applied before the mean (e.g. 255 for models trained on [0, 255])."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean: np.ndarray) -> None:
        """Per-channel (1-D) or elementwise (C x H x W, resized to the input if needed)."""
        self._check_input(in_)
        mean = np.asarray(mean)
        ms = mean.shape
        if mean.ndim == 1:
            if ms[0] != self.inputs[in_][1]:
                raise ValueError("Mean channels incompatible with input.")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if len(ms) == 2:
                ms = (1,) + ms
            if len(ms) != 3:
                raise ValueError("Mean shape invalid")
            if ms != tuple(self.inputs[in_][1:]):
                in_shape = tuple(self.inputs[in_][1:])
                m_min, m_max = mean.min(), mean.max()
                normal = (mean - m_min) / (m_max - m_min)
                mean = resize_image(normal.transpose((1, 2, 0)), in_shape[1:]
                                    ).transpose((2, 0, 1)) * (m_max - m_min) + m_min
        self.mean[in_] = mean

    def set_input_scale(self, in_: str, scale: float) -> None:
        """Scale applied after the mean."""
        self._check_input(in_)
        self.input_scale[in_] = scale


# ---- image IO ----------------------------------------------------------------------------


_RGB2GRAY = np.array([0.2125, 0.7154, 0.0721])  # skimage.color.rgb2gray


def load_image(filename: str, color: bool = True) -> np.ndarray:
    """An image as float32 in [0, 1]: H x W x 3 (RGB) or H x W x 1 with ``color=False``."""
    from PIL import Image

    with Image.open(filename) as im:
        if im.mode not in ("RGB", "RGBA", "L", "I;16", "I"):
            im = im.convert("RGB")
        arr = np.asarray(im)
    if arr.dtype == np.uint8:
        img = arr.astype(np.float64) / 255.0
    elif arr.dtype in (np.uint16, np.int32) or str(arr.dtype).startswith(">u2"):
        img = arr.astype(np.float64) / 65535.0
    else:
        img = arr.astype(np.float64)
    if not color and img.ndim == 3:
        img = img[..., :3] @ _RGB2GRAY
    img = img.astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img


def resize_image(im: np.ndarray, new_dims: Sequence[int], interp_order: int = 1) -> np.ndarray:
    """Resize H x W x K to ``new_dims`` (H', W') with spline interpolation of
    ``interp_order`` (1: linear), as pycaffe does.

    1 or 3 channels: pycaffe scales the image to [0, 1] and calls skimage's ``resize``
    (``mode='constant'``), which is ``scipy.ndimage.zoom`` with ``grid_mode=True`` (pixel areas
    aligned) and zeros beyond the border (``'grid-constant'``), clipped to [0, 1]; that is done
    here directly. A constant image stays constant. Other channel counts: ``zoom`` as pycaffe
    calls it.
    """
    from scipy.ndimage import zoom

    im = np.asarray(im)
    new_dims = (int(new_dims[0]), int(new_dims[1]))
    if im.shape[-1] not in (1, 3):
        scale = tuple(np.array(new_dims, dtype=float) / np.array(im.shape[:2]))
        return zoom(im, scale + (1,), order=interp_order).astype(np.float32)
    im_min, im_max = im.min(), im.max()
    if not im_max > im_min:
        ret = np.empty((new_dims[0], new_dims[1], im.shape[-1]), dtype=np.float32)
        ret.fill(im_min)
        return ret
    im_std = (im.astype(np.float64) - im_min) / (im_max - im_min)
    factors = (new_dims[0] / im.shape[0], new_dims[1] / im.shape[1], 1.0)
    resized = zoom(im_std, factors, order=interp_order, mode="grid-constant", cval=0.0,
                   grid_mode=True)
    np.clip(resized, 0.0, 1.0, out=resized)
    return (resized * (im_max - im_min) + im_min).astype(np.float32)


def oversample(images: Sequence[np.ndarray], crop_dims: Sequence[int]) -> np.ndarray:
    """The four corner crops, the center crop and their mirrors: 10 per image
    (N x H x W x K in, 10N x h x w x K out)."""
    im_shape = np.array(images[0].shape)
    crop_dims = np.array(crop_dims)
    im_center = im_shape[:2] / 2.0
    h_indices = (0, im_shape[0] - crop_dims[0])
    w_indices = (0, im_shape[1] - crop_dims[1])
    crops_ix = np.empty((5, 4), dtype=int)
    curr = 0
    for i in h_indices:
        for j in w_indices:
            crops_ix[curr] = (i, j, i + crop_dims[0], j + crop_dims[1])
            curr += 1
    crops_ix[4] = np.tile(im_center, (1, 2)) + np.concatenate([-crop_dims / 2.0,
                                                                crop_dims / 2.0])
    crops_ix = np.tile(crops_ix, (2, 1))
    crops = np.empty((10 * len(images), crop_dims[0], crop_dims[1], im_shape[-1]),
                     dtype=np.float32)
    ix = 0
    for im in images:
        for crop in crops_ix:
            crops[ix] = im[crop[0]:crop[2], crop[1]:crop[3], :]
            ix += 1
        crops[ix - 5:ix] = crops[ix - 5:ix, :, ::-1, :]
    return crops


__all__ = ["blobproto_to_array", "array_to_blobproto", "arraylist_to_blobprotovector_str",
           "blobprotovector_str_to_arraylist", "array_to_datum", "datum_to_array",
           "Transformer", "load_image", "resize_image", "oversample"]
