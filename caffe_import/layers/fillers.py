"""Caffe's weight fillers (``FillerParameter``), applied in place to a tensor.

Caffe's filler defaults are ``type: "constant"``, ``value: 0``, ``min: 0``, ``max: 1``,
``mean: 0``, ``std: 1``, ``sparse: -1``, ``variance_norm: FAN_IN``. Fan sizes follow Caffe, not
PyTorch's ``nn.init``: ``fan_in = count / shape[0]`` and ``fan_out = count / shape[1]`` (the
count itself for a 1-axis blob). Random numbers come from torch's generator, so values are
distributed as Caffe's but are not Caffe's draws.
"""
from __future__ import annotations

import math

import torch

from ..errors import CaffeFormatError

# FillerParameter.VarianceNorm
FAN_IN, FAN_OUT, AVERAGE = 0, 1, 2


def _fans(tensor: torch.Tensor, kind: str, layer: str | None) -> tuple[int, int]:
    count = tensor.numel()
    if count == 0 or tensor.dim() == 0:
        raise CaffeFormatError(f"filler '{kind}' needs a blob with at least one axis and one "
                               f"element, got shape {tuple(tensor.shape)}", layer=layer)
    fan_in = count // tensor.shape[0]
    fan_out = count // tensor.shape[1] if tensor.dim() > 1 else count
    return fan_in, fan_out


def _fan(tensor: torch.Tensor, filler, layer: str | None) -> float:
    fan_in, fan_out = _fans(tensor, filler.type, layer)
    norm = int(filler.variance_norm)
    if norm == AVERAGE:
        return (fan_in + fan_out) / 2.0
    if norm == FAN_OUT:
        return float(fan_out)
    return float(fan_in)


def _no_sparse(filler, layer: str | None) -> None:
    if filler.HasField("sparse") and filler.sparse != -1:
        raise CaffeFormatError(f"filler '{filler.type}' does not support sparse "
                               f"(got sparse: {filler.sparse})", layer=layer)


def bilinear_kernel(size: int, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """The ``size x size`` bilinear upsampling kernel of Caffe's ``bilinear`` filler:
    ``f = ceil(size / 2)``, ``c = (size - 1) / (2 f)``,
    ``w(y, x) = (1 - |x/f - c|)(1 - |y/f - c|)``."""
    f = math.ceil(size / 2.0)
    c = (size - 1) / (2.0 * f)
    r = torch.arange(size, dtype=torch.float64, device=device)
    line = 1 - (r / f - c).abs()
    return (line[:, None] * line[None, :]).to(dtype)


def fill(tensor: torch.Tensor, filler, layer: str | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place as Caffe's ``GetFiller(filler)->Fill(blob)`` would.

    Types: ``constant``, ``uniform``, ``gaussian`` (``sparse >= 0`` keeps each weight with
    probability ``sparse / shape[0]``), ``positive_unitball`` (each ``shape[0]`` slice is
    uniform and sums to 1), ``xavier`` (U(-a, a), ``a = sqrt(3 / n)``), ``msra``
    (N(0, sqrt(2 / n))), ``bilinear`` (4-D square kernels, every (in, out) slice the same).
    An unknown type raises ``CaffeFormatError``.
    """
    kind = filler.type or "constant"
    with torch.no_grad():
        if kind == "constant":
            tensor.fill_(filler.value)
        elif kind == "uniform":
            tensor.uniform_(filler.min, filler.max)
        elif kind == "gaussian":
            tensor.normal_(filler.mean, filler.std)
            sparse = int(filler.sparse)
            if sparse < -1:
                raise CaffeFormatError(f"gaussian filler sparse must be >= -1, got {sparse}",
                                       layer=layer)
            if sparse >= 0:
                if tensor.dim() < 1:
                    raise CaffeFormatError("sparse gaussian filler needs a blob with an axis",
                                           layer=layer)
                p = min(1.0, sparse / tensor.shape[0])
                tensor.mul_(torch.bernoulli(torch.full_like(tensor, p)))
        elif kind == "positive_unitball":
            _no_sparse(filler, layer)
            _fans(tensor, kind, layer)
            tensor.uniform_(0, 1)
            rows = tensor.view(tensor.shape[0], -1)
            rows.div_(rows.sum(dim=1, keepdim=True))
        elif kind == "xavier":
            _no_sparse(filler, layer)
            a = math.sqrt(3.0 / _fan(tensor, filler, layer))
            tensor.uniform_(-a, a)
        elif kind == "msra":
            _no_sparse(filler, layer)
            tensor.normal_(0.0, math.sqrt(2.0 / _fan(tensor, filler, layer)))
        elif kind == "bilinear":
            _no_sparse(filler, layer)
            if tensor.dim() != 4 or tensor.shape[2] != tensor.shape[3]:
                raise CaffeFormatError("bilinear filler needs a 4-D blob with a square kernel, "
                                       f"got shape {tuple(tensor.shape)}", layer=layer)
            kernel = bilinear_kernel(tensor.shape[3], tensor.dtype, tensor.device)
            tensor.copy_(kernel.expand_as(tensor))
        else:
            raise CaffeFormatError(f"unknown filler type '{kind}' (Caffe knows constant, "
                                   "gaussian, positive_unitball, uniform, xavier, msra, "
                                   "bilinear)", layer=layer)
    return tensor


def fill_or_constant(tensor: torch.Tensor, param, field: str, default: float,
                     layer: str | None = None) -> torch.Tensor:
    """Fill from ``param.<field>`` when set, else with the constant Caffe uses for that layer
    (an absent ``weight_filler`` is constant 0; Scale's absent ``filler`` is constant 1)."""
    if param.HasField(field):
        return fill(tensor, getattr(param, field), layer)
    with torch.no_grad():
        return tensor.fill_(default)
