"""Net surgery from the FCN release: weight transplant, bilinear upsampling, score expansion.

``transplant`` moves weights by layer name from a trained net (a classifier, or the previous
stage of the 32s -> 16s -> 8s chain) into a new net: same shape -> copied; same element count,
different shape -> "coerced" by copying in flat C order (InnerProduct fc6/fc7 become the
equivalent convolutions); only in the old net -> dropped; only in the new net -> left as
initialised. The release did this with numpy's ``.flat`` assignment, which silently repeats or
truncates when the counts differ; here that is an error.

Nets are ``CaffeNet`` objects (``.params``: layer -> list of parameters), or plain weight
mappings (``read_weights`` style: layer -> list of arrays); the old side may also be a path to a
caffemodel / .caffemodel.h5.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping, MutableMapping, Sequence

import numpy as np
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.io import read_weights
from caffe_import.layers.fillers import bilinear_kernel

__all__ = ["transplant", "upsampling_weights", "init_upsampling", "expand_score"]


def _param_table(net_or_weights: Any) -> Mapping[str, Sequence[Any]]:
    if isinstance(net_or_weights, (str, os.PathLike)):
        return read_weights(net_or_weights)
    params = getattr(net_or_weights, "params", None)
    if params is not None and not isinstance(net_or_weights, Mapping):
        return params
    if isinstance(net_or_weights, Mapping):
        return net_or_weights
    raise TypeError(f"expected a CaffeNet, a weights mapping or a path, got {type(net_or_weights).__name__}")


def _as_numpy(blob: Any) -> np.ndarray:
    if isinstance(blob, torch.Tensor):
        return blob.detach().cpu().numpy()
    return np.asarray(blob)


def _shape(blob: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in blob.shape)


def _assign(table: MutableMapping[str, Any] | Mapping[str, Sequence[Any]], layer: str, index: int,
            values: np.ndarray) -> None:
    """Write ``values`` (already the target's shape) into blob ``index`` of ``layer``."""
    target = table[layer][index]
    if isinstance(target, torch.Tensor):
        with torch.no_grad():
            target.copy_(torch.from_numpy(np.ascontiguousarray(values)).to(target.device, target.dtype))
    elif isinstance(target, np.ndarray) and target.flags.writeable:
        target[...] = values
    else:
        table[layer][index] = np.array(values, dtype=np.float32)  # type: ignore[index]


def transplant(new_net: Any, old: Any, suffix: str = "",
               log: Callable[[str], Any] | None = print) -> list[str]:
    """Copy ``old``'s params into ``new_net`` by layer name; returns the log lines.

    For each layer of ``old`` in order: ``"dropping <name>"`` if ``new_net`` has no layer
    ``<name><suffix>``; per blob ``"copying <name> <i>"`` (``"copying <name> -> <new> <i>"``
    with a suffix), ``"coercing <name> <i> from <old shape> to <new shape>"`` when only the
    shapes differ, ``"dropping <name> <i>"`` for blobs the new layer lacks. Raises
    ``CaffeFormatError`` when element counts differ (numpy would silently repeat/truncate).
    """
    new_table = _param_table(new_net)
    old_table = _param_table(old)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if log is not None:
            log(line)

    for name, blobs in old_table.items():
        target = name + suffix
        if target not in new_table:
            say(f"dropping {name}")
            continue
        new_blobs = new_table[target]
        for i, blob in enumerate(blobs):
            if i >= len(new_blobs):
                say(f"dropping {name} {i}")
                break
            src = _as_numpy(blob)
            dst_shape = _shape(new_blobs[i])
            if src.size != int(np.prod(dst_shape, dtype=np.int64)):
                raise CaffeFormatError(
                    f"cannot transplant blob {i}: {src.size} elements {tuple(src.shape)} into "
                    f"{int(np.prod(dst_shape, dtype=np.int64))} elements {dst_shape}", layer=name)
            if tuple(src.shape) != dst_shape:
                say(f"coercing {name} {i} from {tuple(src.shape)} to {dst_shape}")
            elif suffix:
                say(f"copying {name} -> {target} {i}")
            else:
                say(f"copying {name} {i}")
            _assign(new_table, target, i, np.ascontiguousarray(src).reshape(dst_shape))
    return lines


def upsampling_weights(channels: int, size: int, per_channel: bool = False) -> torch.Tensor:
    """Deconvolution weights that bilinearly upsample each channel separately (the release's
    ``interp``): Caffe's bilinear kernel (:func:`caffe_import.layers.fillers.bilinear_kernel`,
    the same numbers as the release's ``upsample_filt``) on the channel diagonal.

    Shape ``(channels, channels, size, size)`` (Caffe's deconvolution layout, input channels
    first) with zeros off the diagonal; with ``per_channel`` (a grouped deconvolution,
    ``group == channels``) shape ``(channels, 1, size, size)``.
    """
    if size < 1:
        raise ValueError(f"kernel size must be >= 1, got {size}")
    k = bilinear_kernel(size)
    if per_channel:
        return k.expand(channels, 1, size, size).clone()
    w = torch.zeros(channels, channels, size, size)
    idx = torch.arange(channels)
    w[idx, idx] = k
    return w


def init_upsampling(net: Any, layers: Iterable[str] | None = None,
                    log: Callable[[str], Any] | None = None) -> list[str]:
    """Set deconvolution weights to bilinear interpolation (the release's ``interp``).

    ``layers`` defaults to every ``Deconvolution`` layer of ``net`` (a CaffeNet). A weight of
    shape ``(m, k, h, w)`` needs ``m == k`` (or ``k == 1``, grouped) and ``h == w``; other
    entries than the channel diagonal are zeroed. Returns the names initialised; ``log`` gets one
    sentence per layer (the release's ``interp`` prints nothing).
    """
    table = _param_table(net)
    if layers is None:
        names = getattr(net, "layer_names", None)
        types = getattr(net, "layer_types", None)
        if names is None or types is None:
            raise TypeError("init_upsampling needs a CaffeNet or an explicit list of layers")
        layers = [n for n, t in zip(names, types) if t == "Deconvolution" and n in table]
    done = []
    for name in layers:
        if name not in table or not len(table[name]):
            raise CaffeFormatError("no such layer with params to initialise", layer=name)
        shape = _shape(table[name][0])
        if len(shape) != 4:
            raise CaffeFormatError(f"expected a 4-D deconvolution weight, got {shape}", layer=name)
        m, k, h, w = shape
        if m != k and k != 1:
            raise CaffeFormatError(f"bilinear init needs input == output channels or 1 output per "
                                   f"group, weight is {shape}", layer=name)
        if h != w:
            raise CaffeFormatError(f"bilinear init needs square kernels, got {h}x{w}", layer=name)
        kernel = upsampling_weights(m, h, per_channel=(k == 1 and m != 1))
        _assign(table, name, 0, kernel.numpy())
        done.append(name)
        if log is not None:
            log(f"{name}: deconvolution initialised with bilinear upsampling weights")
    return done


def expand_score(new_net: Any, new_layer: str, old: Any, layer: str) -> None:
    """Copy a score layer with k classes into one with k' >= k: the first k outputs are the old.

    The other outputs keep their initialisation (new classes). Weight ``(k, c, ...)`` ->
    rows ``[:k]`` of ``(k', c, ...)``; bias ``(k,)`` -> ``[:k]``.
    """
    new_table, old_table = _param_table(new_net), _param_table(old)
    if layer not in old_table:
        raise CaffeFormatError("no such layer in the source net", layer=layer)
    if new_layer not in new_table:
        raise CaffeFormatError("no such layer in the target net", layer=new_layer)
    for i, blob in enumerate(old_table[layer][:2]):
        src = _as_numpy(blob)
        dst = new_table[new_layer][i]
        dst_np = _as_numpy(dst).copy()
        k = src.shape[0] if i == 0 else src.size
        flat_dst = dst_np.reshape(dst_np.shape[0], -1) if i == 0 else dst_np.reshape(-1)
        flat_src = src.reshape(src.shape[0], -1) if i == 0 else src.reshape(-1)
        if k > flat_dst.shape[0] or (i == 0 and flat_src.shape[1] != flat_dst.shape[1]):
            raise CaffeFormatError(f"cannot expand blob {i} {tuple(src.shape)} into {tuple(dst_np.shape)}",
                                   layer=new_layer)
        flat_dst[:k] = flat_src
        _assign(new_table, new_layer, i, flat_dst.reshape(dst_np.shape))
