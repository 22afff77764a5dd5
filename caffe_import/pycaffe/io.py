"""``caffe.io``: array/proto converters, the input ``Transformer`` and image helpers.

Same behaviour as pycaffe's ``io.py``; the image helpers call scikit-image as it does
(``load_image``: ``skimage.io.imread`` and ``img_as_float``; ``resize_image``:
``skimage.transform.resize``), so they give what pycaffe gives with the same scikit-image.
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


def load_image(filename: str, color: bool = True) -> np.ndarray:
    """An image as float32 in [0, 1]: H x W x 3 (RGB) or H x W x 1 with ``color=False``.

    pycaffe's own steps: scikit-image's ``imread`` (``as_gray=not color``: ``rgb2gray``, after
    ``rgba2rgb`` for RGBA), ``img_as_float`` (8-bit / 255, 16-bit / 65535), a gray image tiled
    to 3 channels for ``color``, alpha dropped. (BVLC master passes ``as_grey``, a keyword
    scikit-image removed in 0.16, so there its ``load_image`` fails with a TypeError on any
    current scikit-image; this is the call it meant, under today's name.)
    """
    import skimage  # lazy: scikit-image's io and colour modules take half a second to load
    import skimage.io  # lazy: as above

    img = skimage.img_as_float(skimage.io.imread(filename, as_gray=not color)).astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img


def resize_image(im: np.ndarray, new_dims: Sequence[int], interp_order: int = 1) -> np.ndarray:
    """Resize H x W x K to ``new_dims`` (H', W') with spline interpolation of
    ``interp_order`` (1: linear), exactly as pycaffe does, with the scikit-image installed.

    1 or 3 channels: the image is scaled to [0, 1] by its min and max, resized by
    ``skimage.transform.resize(..., order=interp_order, mode='constant')`` and scaled back
    (scikit-image >= 0.15 smooths with a Gaussian before downscaling, as it then does under
    pycaffe); a constant image stays constant. Other channel counts: ``scipy.ndimage.zoom``.
    The result is float32.
    """
    from scipy.ndimage import zoom  # lazy: scipy.ndimage is only needed for resizing
    from skimage.transform import resize  # lazy: scikit-image loads in half a second

    im = np.asarray(im)
    if im.shape[-1] == 1 or im.shape[-1] == 3:
        im_min, im_max = im.min(), im.max()
        if not im_max > im_min:  # a constant image: no division by zero
            ret = np.empty((new_dims[0], new_dims[1], im.shape[-1]), dtype=np.float32)
            ret.fill(im_min)
            return ret
        im_std = (im - im_min) / (im_max - im_min)
        resized_std = resize(im_std, new_dims, order=interp_order, mode="constant")
        resized_im = resized_std * (im_max - im_min) + im_min
    else:
        scale = tuple(np.array(new_dims, dtype=float) / np.array(im.shape[:2]))
        resized_im = zoom(im, scale + (1,), order=interp_order)
    return resized_im.astype(np.float32)


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
