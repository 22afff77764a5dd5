"""Caffe's numerics where ``torch.nn`` computes something else, as plain-torch functions.

The generated ``model.py`` holds a verbatim copy (``inspect.getsource``) of each function it
calls, so this module imports nothing but ``torch`` and ``math`` (a test checks it), and each
function names every other helper it calls at module level.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool) -> int:
    """Caffe's pooled length: ceil (or floor) of ``(size + 2 pad - kernel) / stride`` plus one,
    then, only where a pad is non-zero, minus the last window if it starts in the padding."""
    num = size + 2 * pad - kernel
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def caffe_pool_pad(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                   pad: tuple[int, int], ceil_mode: bool, value: float) -> torch.Tensor:
    """``x`` padded (or cut) so windows of ``stride`` without padding tile Caffe's output grid:
    ``pad`` before, whatever Caffe's last window reaches after."""
    widths = []
    for i in (1, 0):
        size = x.shape[2 + i]
        out = caffe_pooled_size(size, kernel[i], stride[i], pad[i], ceil_mode)
        widths += [pad[i], (out - 1) * stride[i] + kernel[i] - size - pad[i]]
    return F.pad(x, widths, value=value)


def caffe_max_pool2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                     pad: tuple[int, int], ceil_mode: bool = True) -> torch.Tensor:
    """Caffe's MAX pooling where PyTorch's window grid differs (pad over half the kernel, the
    last window of ``pad: 0`` starting past the input): a window without input is -FLT_MAX."""
    padded = caffe_pool_pad(x, kernel, stride, pad, ceil_mode, float("-inf"))
    y = F.max_pool2d(padded, kernel, stride)
    return y.masked_fill(y == float("-inf"), -3.4028234663852886e38)  # C's -FLT_MAX


def caffe_avg_pool2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                     pad: tuple[int, int], ceil_mode: bool = True) -> torch.Tensor:
    """Caffe's AVE pooling where PyTorch's window grid differs: each window's sum divided by
    its size clipped to the padded input (padding counts, the overhang past it does not)."""
    h, w = x.shape[2], x.shape[3]
    padded = caffe_pool_pad(x, kernel, stride, pad, ceil_mode, 0.0)
    sums = F.avg_pool2d(padded, kernel, stride, 0, divisor_override=1)
    sizes = []
    for i, size in enumerate((h, w)):
        starts = torch.arange(sums.shape[2 + i], device=x.device) * stride[i] - pad[i]
        sizes.append(torch.clamp(starts + kernel[i], max=size + pad[i]) - starts)
    return sums / (sizes[0][:, None] * sizes[1][None, :]).to(x.dtype)


def caffe_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Caffe's sigmoid ``0.5 tanh(0.5 x) + 0.5``, in double (its literals), rounded once."""
    return (0.5 * torch.tanh(0.5 * x.double()) + 0.5).to(x.dtype)


def caffe_elu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Caffe's ELU: ``alpha (exp(x) - 1)`` for x <= 0 (``exp - 1``, not ``expm1``)."""
    return torch.where(x > 0, x, alpha * (torch.exp(torch.clamp(x, max=0)) - 1))


def caffe_bnll(x: torch.Tensor) -> torch.Tensor:
    """Caffe's BNLL ``log(1 + exp(x))``, overflow-safe, the log in double."""
    e = torch.exp(-torch.abs(x))
    return (torch.clamp(x, min=0).double() + torch.log(1.0 + e.double())).to(x.dtype)


def caffe_power(x: torch.Tensor, power: float, scale: float, shift: float) -> torch.Tensor:
    """Caffe's Power ``(shift + scale x) ** power``, step by step, the power in double."""
    if power * scale == 0:
        return torch.full_like(x, 1.0 if power == 0 else shift ** power)
    y = x * scale if scale != 1 else x
    y = y + shift if shift != 0 else y
    return torch.pow(y.double(), power).to(x.dtype) if power != 1 else y


def caffe_exp(x: torch.Tensor, inner: float, outer: float) -> torch.Tensor:
    """Caffe's Exp ``outer * exp(inner x)`` (``inner = ln(base) scale``, ``outer =
    base ** shift``), the exponential in double."""
    y = torch.exp((x * inner).double()).to(x.dtype)
    return y * outer if outer != 1 else y


def caffe_log(x: torch.Tensor, scale: float, shift: float, base_scale: float) -> torch.Tensor:
    """Caffe's Log ``ln(shift + scale x) / ln(base)``, the log in double."""
    y = x * scale if scale != 1 else x
    y = y + shift if shift != 0 else y
    y = torch.log(y.double()).to(x.dtype)
    return y * base_scale if base_scale != 1 else y


def caffe_lrn_within(x: torch.Tensor, size: int, alpha: float, beta: float) -> torch.Tensor:
    """Caffe's WITHIN_CHANNEL LRN: ``x (1 + alpha/n^2 sum_{n x n} x^2) ** -beta``; Caffe
    ignores ``k`` here."""
    mean = F.avg_pool2d(x * x, size, stride=1, padding=(size - 1) // 2, count_include_pad=True)
    return x * torch.pow(1.0 + alpha * mean, -beta)


def caffe_mvn(x: torch.Tensor, across_channels: bool, normalize_variance: bool,
              eps: float) -> torch.Tensor:
    """Caffe's MVN: subtract the mean per (n, c) (per n across channels); with
    ``normalize_variance`` divide by ``std + eps`` (eps on the deviation, not the variance)."""
    flat = x.reshape(x.shape[0] if across_channels else x.shape[0] * x.shape[1], -1)
    inv = 1.0 / flat.shape[1] if flat.shape[1] else math.nan
    centred = flat - flat.sum(dim=1, keepdim=True) * inv
    if normalize_variance:
        std = torch.sqrt((centred * centred).sum(dim=1, keepdim=True) * inv)
        centred = centred / (std + eps)
    return centred.reshape(x.shape)


def caffe_normalizer(normalization: str, outer: int, inner: int,
                     valid: torch.Tensor) -> torch.Tensor:
    """Caffe's loss normaliser, at least 1: ``full`` every position, ``valid`` the positions
    not ignored, ``batch_size`` the outer count, ``none`` 1."""
    counts = {"full": outer * inner, "batch_size": outer, "none": 1}
    if normalization == "valid":
        return valid.sum().to(torch.float32).clamp(min=1.0)
    return torch.tensor(float(max(1, counts[normalization])))


def caffe_labels(label: torch.Tensor, ignore_label: int | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Caffe's float labels truncated toward zero, and the mask of the counted positions
    (ignored ones read class 0)."""
    index = label.detach().trunc().long()
    valid = index != ignore_label if ignore_label is not None else torch.ones_like(index).bool()
    return torch.where(valid, index, torch.zeros_like(index)), valid


def caffe_softmax_loss(x: torch.Tensor, label: torch.Tensor, axis: int = 1,
                       ignore_label: int | None = None, normalization: str = "valid"
                       ) -> torch.Tensor:
    """Caffe's SoftmaxWithLoss: ``-log(max(p_label, FLT_MIN))`` from the rounded softmax over
    the counted positions, normalised; its gradient is Caffe's ``(p - onehot) / norm``."""
    outer, classes = math.prod(x.shape[:axis]), x.shape[axis]
    inner = math.prod(x.shape[axis + 1:])
    scores = x.reshape(outer, classes, inner)
    index, valid = caffe_labels(label.reshape(outer, 1, inner), ignore_label)
    e = torch.exp(scores - scores.amax(dim=1, keepdim=True))
    prob = e / e.sum(dim=1, keepdim=True)
    picked = prob.detach().gather(1, index).clamp(min=1.1754943508222875e-38)
    value = torch.where(valid, -torch.log(picked), torch.zeros_like(picked)).sum()
    nll = -F.log_softmax(scores, dim=1).gather(1, index)
    surrogate = torch.where(valid, nll, torch.zeros_like(nll)).sum()
    loss = surrogate + (value - surrogate).detach()
    return loss / caffe_normalizer(normalization, outer, inner, valid)


def caffe_sigmoid_cross_entropy_loss(x: torch.Tensor, target: torch.Tensor,
                                     ignore_label: int | None = None,
                                     normalization: str = "batch_size") -> torch.Tensor:
    """Caffe's SigmoidCrossEntropyLoss: ``max(x, 0) - x t + log(1 + exp(-|x|))`` summed over
    the counted elements, normalised (default: by the batch size); no gradient to ``t``."""
    t = target.detach().reshape(x.shape)
    positive = (x >= 0).to(x.dtype)
    terms = torch.log(1 + torch.exp(x - 2 * x * positive)) - x * (t - positive)
    _, valid = caffe_labels(t, ignore_label)
    terms = torch.where(valid, terms, torch.zeros_like(terms))
    outer = x.shape[0] if x.dim() else 1
    return terms.sum() / caffe_normalizer(normalization, outer, x.numel() // max(outer, 1),
                                          valid)


def caffe_euclidean_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Caffe's EuclideanLoss: ``sum((a - b)^2) / N / 2``, ``N`` the batch size."""
    diff = a - b.reshape(a.shape)
    return (diff * diff).sum() / a.shape[0] / 2


def caffe_accuracy(x: torch.Tensor, label: torch.Tensor, top_k: int = 1, axis: int = 1,
                   ignore_label: int | None = None) -> torch.Tensor:
    """Caffe's Accuracy: the fraction of counted positions whose class has fewer than
    ``top_k`` classes scoring at least as high (ties count against it); 0 when none count."""
    x = x.detach()
    outer, classes = math.prod(x.shape[:axis]), x.shape[axis]
    scores = x.reshape(outer, classes, -1)
    index, valid = caffe_labels(label.reshape(outer, 1, -1), ignore_label)
    correct = ((scores >= scores.gather(1, index)).sum(dim=1, keepdim=True) <= top_k) & valid
    count = valid.sum()
    return torch.where(count > 0, correct.sum().to(x.dtype) / count.clamp(min=1).to(x.dtype),
                       torch.zeros((), dtype=x.dtype, device=x.device))


def caffe_multinomial_logistic_loss(prob: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Caffe's MultinomialLogisticLoss: ``-sum log(max(p_label, 1e-20)) / N``; gradient
    ``-1 / max(p, 1e-20)`` at the label."""
    num = prob.shape[0]
    index, _ = caffe_labels(label.reshape(num, 1), None)
    picked = prob.reshape(num, -1).gather(1, index)
    kept = picked.detach().clamp(min=1e-20)
    surrogate = -(picked / kept).sum()
    return (surrogate + (-torch.log(kept).sum() - surrogate).detach()) / num


def caffe_hinge_loss(x: torch.Tensor, label: torch.Tensor, norm: int = 1) -> torch.Tensor:
    """Caffe's HingeLoss: ``max(0, 1 + t)`` with the label's score negated, summed (L1) or
    squared and summed (L2), over ``N``."""
    num = x.shape[0]
    flat = x.reshape(num, -1)
    index, _ = caffe_labels(label.reshape(num, 1), None)
    margin = torch.clamp(1 + flat * torch.ones_like(flat).scatter(1, index, -1.0), min=0)
    return (margin.sum() if norm == 1 else (margin * margin).sum()) / num
