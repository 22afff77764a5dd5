"""Loss layers and Accuracy, with Caffe's normalisation and clamping rules.

The reported loss top is the loss itself: ``loss_weight`` is applied by the net
(``CaffeNet.total_loss``), never here.

Normalisation (``loss_param.normalization``): FULL divides by every position, VALID by the
positions whose label is not ``ignore_label``, BATCH_SIZE by the outer count, NONE by 1 - always
at least 1, so a batch with every position ignored gives 0, not NaN. When ``normalization`` is
unset, the legacy ``normalize: true`` means VALID and ``normalize: false`` means **BATCH_SIZE**
(not NONE); with neither, SoftmaxWithLoss uses VALID and SigmoidCrossEntropyLoss BATCH_SIZE.
Labels are stored as floats and truncated toward zero.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import CaffeFormatError
from ..io import read_mean  # a BlobProto reader: no code runs from the file
from .base import (DTYPE_FLOAT32, CaffeLayer, Shape, canonical_axis, check_arity, f32, legacy_4d,
                   tracing)
from .registry import register
from .softmax import caffe_softmax

FULL, VALID, BATCH_SIZE, NONE = 0, 1, 2, 3
FLT_MIN = 1.1754943508222875e-38


def normalization_mode(loss_param, default: int) -> int:
    """Caffe's normalisation mode from ``normalization``, the legacy ``normalize``, or the
    layer's default."""
    if loss_param.HasField("normalization"):
        return int(loss_param.normalization)
    if loss_param.HasField("normalize"):
        return VALID if loss_param.normalize else BATCH_SIZE
    return default


def normalizer(mode: int, outer: int, inner: int,
               valid: torch.Tensor | int) -> torch.Tensor | float:
    """``max(1, N)`` for the mode's ``N`` (``valid``: count of non-ignored positions)."""
    if mode == FULL:
        return float(max(1, outer * inner))
    if mode == VALID:
        if isinstance(valid, torch.Tensor):
            return valid.to(torch.float32).clamp(min=1.0)
        return float(max(1, valid))
    if mode == BATCH_SIZE:
        return float(max(1, outer))
    return 1.0


def _labels(label: torch.Tensor, ignore: int | None, classes: int | None,
            layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer labels (truncated toward zero) and the mask of positions that count; a counted
    label outside ``[0, classes)`` raises (Caffe only checks this in debug builds)."""
    index = label.detach().trunc().long()
    valid = index != ignore if ignore is not None else torch.ones_like(index, dtype=torch.bool)
    if classes is not None and index.device.type != "meta" and not tracing() and index.numel():
        bad = valid & ((index < 0) | (index >= classes))
        if index.device.type == "cuda":  # a device-side assert: no host sync per forward
            torch._assert_async(~bad.any(), f"layer '{layer}': a label is outside [0, {classes})")
        elif bool(bad.any()):
            value = index[bad].flatten()[0].item()
            raise CaffeFormatError(f"label {value} is outside [0, {classes}) and is not the "
                                   f"ignore_label", layer=layer)
    return torch.where(valid, index, torch.zeros_like(index)), valid


class _Loss(CaffeLayer):
    #: float32 even under precision='fast': sums over many positions; labels are exact
    dtype_policy = DTYPE_FLOAT32

    def _check_arity(self, param, bottom_shapes, tops: tuple[int, ...]) -> None:
        if len(bottom_shapes) != 2 or len(param.top) not in tops:
            raise CaffeFormatError(f"{param.type} takes 2 bottoms and {' or '.join(map(str, tops))}"
                                   f" top(s), got {len(bottom_shapes)} and {len(param.top)}",
                                   layer=param.name)



def _check_label_count(scores: Shape, label: Shape, axis: int, layer: str) -> None:
    """Caffe's rule for classification layers: one label per position outside the class axis."""
    outer, inner = math.prod(scores[:axis]), math.prod(scores[axis + 1:])
    if math.prod(label) != outer * inner:
        raise CaffeFormatError(f"label of shape {label} must have {outer * inner} entries "
                               f"(scores {scores}, class axis {axis})", layer=layer)

@register("SoftmaxWithLoss")
class SoftmaxWithLoss(_Loss):
    """``-log(max(p_label, FLT_MIN))`` summed over counted positions and normalised.

    Differs from ``F.cross_entropy``: each term is capped at ``-ln(FLT_MIN) = 87.34`` and is
    taken from the rounded softmax; the default ignores nothing and divides by the VALID count.
    The gradient is Caffe's ``(p - onehot) / normalizer`` (no cap). The optional second top is
    the softmax; as in Caffe no gradient flows back through it.
    """

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        self._check_arity(param, bottom_shapes, (1, 2))
        lp = param.loss_param
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = normalization_mode(lp, VALID)
        self.axis = canonical_axis(int(param.softmax_param.axis), len(self.bottom_shapes[0]),
                                   param.name)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        x, label = (tuple(s) for s in bottom_shapes)
        _check_label_count(x, label, self.axis, self.name)
        return [()] + ([x] if len(self.param.top) == 2 else [])

    def forward(self, x: torch.Tensor, label: torch.Tensor):
        self.top_shapes([tuple(x.shape), tuple(label.shape)])
        outer, classes = math.prod(x.shape[:self.axis]), x.shape[self.axis]
        inner = math.prod(x.shape[self.axis + 1:])
        scores = x.reshape(outer, classes, inner)
        index, valid = _labels(label.reshape(outer, 1, inner), self.ignore_label, classes,
                               self.name)
        prob = caffe_softmax(scores, 1)
        picked = prob.detach().gather(1, index).clamp(min=FLT_MIN)
        value = torch.where(valid, -torch.log(picked), torch.zeros_like(picked)).sum()
        # the gradient Caffe back-propagates, (p - onehot), from log_softmax; the value above
        nll = -F.log_softmax(scores, dim=1).gather(1, index)
        surrogate = torch.where(valid, nll, torch.zeros_like(nll)).sum()
        loss = surrogate + (value - surrogate).detach()
        loss = loss / normalizer(self.mode, outer, inner, valid.sum())
        if len(self.param.top) == 2:
            return loss, prob.detach().reshape(x.shape)
        return (loss,)


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLoss(_Loss):
    """``sum(max(x, 0) - x t + log(1 + exp(-|x|)))`` over counted elements (``int(t)`` not the
    ``ignore_label``), divided by the batch size by default (``F.binary_cross_entropy_with_logits``
    with ``'mean'`` divides by every element). No gradient reaches the targets."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        self._check_arity(param, bottom_shapes, (1,))
        lp = param.loss_param
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = normalization_mode(lp, BATCH_SIZE)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        x, t = (tuple(s) for s in bottom_shapes)
        if math.prod(x) != math.prod(t):
            raise CaffeFormatError(f"scores {x} and targets {t} must have the same count",
                                   layer=self.name)
        return [()]

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(x.shape), tuple(target.shape)])
        t = target.detach().reshape(x.shape)
        positive = (x >= 0).to(x.dtype)
        terms = torch.log(1 + torch.exp(x - 2 * x * positive)) - x * (t - positive)
        if self.ignore_label is not None:
            valid = t.trunc().long() != self.ignore_label
            terms = torch.where(valid, terms, torch.zeros_like(terms))
            count = valid.sum()
        else:
            count = x.numel()
        outer = x.shape[0] if x.dim() else 1
        inner = x.numel() // max(outer, 1)
        return (terms.sum() / normalizer(self.mode, outer, inner, count),)


@register("EuclideanLoss")
class EuclideanLoss(_Loss):
    """``sum((a - b)^2) / N / 2`` with ``N = shape[0]`` (two divisions, as Caffe); both bottoms
    receive gradients."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        self._check_arity(param, bottom_shapes, (1,))
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        a, b = (tuple(s) for s in bottom_shapes)
        if not a or not b or math.prod(a[1:]) != math.prod(b[1:]):
            raise CaffeFormatError(f"inputs {a} and {b} must have the same count per item",
                                   layer=self.name)
        return [()]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(a.shape), tuple(b.shape)])
        diff = a - b.reshape(a.shape)
        return ((diff * diff).sum() / a.shape[0] / 2,)


@register("Accuracy")
class Accuracy(CaffeLayer):
    """Fraction of counted positions whose true class is within the ``top_k`` scores.

    Caffe counts every class scoring **at least** as high as the true class (itself included),
    so ties count against the prediction - unlike ``torch.topk``. Positions labelled
    ``accuracy_param.ignore_label`` are skipped; 0 when nothing counts. The optional second top
    holds per-class accuracy (0 for classes never seen). No gradient.
    """
    #: float32 even under precision='fast': labels are exact integers; score ties count
    dtype_policy = DTYPE_FLOAT32

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(bottom_shapes) != 2 or len(param.top) not in (1, 2):
            raise CaffeFormatError(f"Accuracy takes 2 bottoms and 1 or 2 tops, got "
                                   f"{len(bottom_shapes)} and {len(param.top)}", layer=param.name)
        p = param.accuracy_param
        self.top_k = int(p.top_k)
        self.ignore_label = int(p.ignore_label) if p.HasField("ignore_label") else None
        self.axis = canonical_axis(int(p.axis), len(self.bottom_shapes[0]), param.name)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        x, label = (tuple(s) for s in bottom_shapes)
        _check_label_count(x, label, self.axis, self.name)
        if not 1 <= self.top_k <= x[self.axis]:
            raise CaffeFormatError(f"top_k {self.top_k} must be in [1, {x[self.axis]}] (the "
                                   "number of classes)", layer=self.name)
        return [()] + ([(x[self.axis],)] if len(self.param.top) == 2 else [])

    def forward(self, x: torch.Tensor, label: torch.Tensor):
        self.top_shapes([tuple(x.shape), tuple(label.shape)])
        x = x.detach()
        outer, classes = math.prod(x.shape[:self.axis]), x.shape[self.axis]
        scores = x.reshape(outer, classes, -1)
        index, valid = _labels(label.reshape(outer, 1, -1), self.ignore_label, classes,
                               self.name)
        true_score = scores.gather(1, index)
        correct = ((scores >= true_score).sum(dim=1, keepdim=True) <= self.top_k) & valid
        count = valid.sum()
        acc = torch.where(count > 0, correct.sum().to(x.dtype) / count.clamp(min=1).to(x.dtype),
                          torch.zeros((), dtype=x.dtype, device=x.device))
        if len(self.param.top) == 1:
            return (acc,)
        flat = index[valid]
        seen = torch.bincount(flat, minlength=classes)[:classes].to(x.dtype)
        hits = torch.bincount(index[correct], minlength=classes)[:classes].to(x.dtype)
        per_class = torch.where(seen > 0, hits / seen.clamp(min=1), torch.zeros_like(seen))
        return acc, per_class


LOG_THRESHOLD = 1e-20  # Caffe's kLOG_THRESHOLD


@register("MultinomialLogisticLoss")
class MultinomialLogisticLoss(_Loss):
    """``-sum_i log(max(p[i, label_i], 1e-20)) / N`` over probabilities (not scores), one label
    per item (``N = shape[0]``, each item flattened). The gradient is Caffe's
    ``-1 / max(p, 1e-20)`` at the label, also where the threshold applies."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        self._check_arity(param, bottom_shapes, (1,))
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        x, label = (tuple(s) for s in bottom_shapes)
        if not x or math.prod(label) != x[0]:
            raise CaffeFormatError(f"label of shape {label} must hold one label per item of "
                                   f"the probabilities {x}", layer=self.name)
        return [()]

    def forward(self, prob: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(prob.shape), tuple(label.shape)])
        num = prob.shape[0]
        flat = prob.reshape(num, -1)
        index, _ = _labels(label.reshape(num, 1), None, flat.shape[1], self.name)
        picked = flat.gather(1, index)
        kept = picked.detach().clamp(min=LOG_THRESHOLD)
        value = -torch.log(kept).sum()
        surrogate = -(picked / kept).sum()  # d/dp = -1 / max(p, threshold), as Caffe
        return ((surrogate + (value - surrogate).detach()) / num,)


@register("HingeLoss")
class HingeLoss(_Loss):
    """One-vs-all hinge loss: ``t = x`` with the label's entry negated, ``max(0, 1 + t)``,
    then its sum (``norm: L1``, default) or sum of squares (``L2``), divided by ``N``."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        self._check_arity(param, bottom_shapes, (1,))
        self.norm = int(param.hinge_loss_param.norm)
        if self.norm not in (1, 2):
            raise CaffeFormatError(f"unknown hinge norm {self.norm}", layer=param.name)
        self.top_shapes(self.bottom_shapes)

    top_shapes = MultinomialLogisticLoss.top_shapes

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(x.shape), tuple(label.shape)])
        num = x.shape[0]
        flat = x.reshape(num, -1)
        index, _ = _labels(label.reshape(num, 1), None, flat.shape[1], self.name)
        sign = torch.ones_like(flat).scatter(1, index, -1.0)
        margin = torch.clamp(1 + flat * sign, min=0)
        total = margin.sum() if self.norm == 1 else (margin * margin).sum()
        return (total / num,)


@register("InfogainLoss")
class InfogainLoss(_Loss):
    """``-sum_l H[label, l] log(max(p_l, 1e-20))`` per counted position, ``p = softmax`` along
    ``infogain_loss_param.axis``, normalised like SoftmaxWithLoss (``normalization``, default
    VALID; Caffe rejects the legacy ``normalize``). ``H`` (C x C) is the third bottom or the
    BlobProto file ``infogain_loss_param.source``, read when the layer is built. Optional second
    top: the probabilities (no gradient through it). No gradient reaches ``H``."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(bottom_shapes) not in (2, 3) or len(param.top) not in (1, 2):
            raise CaffeFormatError(f"InfogainLoss takes 2 or 3 bottoms and 1 or 2 tops, got "
                                   f"{len(bottom_shapes)} and {len(param.top)}", layer=param.name)
        lp = param.loss_param
        if lp.HasField("normalize"):
            raise CaffeFormatError("normalize is deprecated for InfogainLoss: use "
                                   "normalization", layer=param.name)
        self.mode = int(lp.normalization)
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        ip = param.infogain_loss_param
        self.axis = canonical_axis(int(ip.axis), len(self.bottom_shapes[0]), param.name)
        classes = self.bottom_shapes[0][self.axis]
        if len(bottom_shapes) == 2:
            if not ip.source:
                raise CaffeFormatError("the infogain matrix needs a third bottom or "
                                       "infogain_loss_param.source", layer=param.name)
            matrix = torch.from_numpy(read_mean(ip.source).copy())
            if matrix.numel() != classes * classes:
                raise CaffeFormatError(f"infogain matrix {ip.source} has {matrix.numel()} "
                                       f"entries, expected {classes}x{classes}", layer=param.name)
            self.register_buffer("infogain", matrix.reshape(classes, classes), persistent=False)
        else:
            self.infogain = None
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        x, label = tuple(bottom_shapes[0]), tuple(bottom_shapes[1])
        outer, inner = math.prod(x[:self.axis]), math.prod(x[self.axis + 1:])
        if math.prod(label) != outer * inner:
            raise CaffeFormatError(f"label of shape {label} must have {outer * inner} entries "
                                   f"(scores {x}, class axis {self.axis})", layer=self.name)
        if len(bottom_shapes) == 3 and math.prod(bottom_shapes[2]) != x[self.axis] ** 2:
            raise CaffeFormatError(f"infogain matrix of shape {tuple(bottom_shapes[2])} must "
                                   f"have {x[self.axis]}x{x[self.axis]} entries", layer=self.name)
        return [()] + ([x] if len(self.param.top) == 2 else [])

    def forward(self, x: torch.Tensor, label: torch.Tensor, *matrix: torch.Tensor):
        self.top_shapes([tuple(x.shape), tuple(label.shape), *[tuple(m.shape) for m in matrix]])
        outer, classes = math.prod(x.shape[:self.axis]), x.shape[self.axis]
        inner = math.prod(x.shape[self.axis + 1:])
        h = (matrix[0] if matrix else self.infogain).detach().reshape(classes, classes)
        h = h.to(device=x.device, dtype=x.dtype)
        scores = x.reshape(outer, classes, inner)
        index, valid = _labels(label.reshape(outer, inner), self.ignore_label, classes,
                               self.name)
        weights = h[index].transpose(1, 2)  # (outer, classes, inner): H[label, l]
        weights = torch.where(valid.unsqueeze(1), weights, torch.zeros_like(weights))
        prob = caffe_softmax(scores, 1)
        value = -(weights * torch.log(prob.detach().clamp(min=LOG_THRESHOLD))).sum()
        surrogate = -(weights * F.log_softmax(scores, dim=1)).sum()
        loss = surrogate + (value - surrogate).detach()
        loss = loss / normalizer(self.mode, outer, inner, valid.sum())
        if len(self.param.top) == 2:
            return loss, prob.detach().reshape(x.shape)
        return (loss,)


class _ContrastiveFn(torch.autograd.Function):
    """ContrastiveLoss's forward and Caffe's own backward (``ContrastiveLossLayer``):
    ``a``, ``b`` (N, C), ``similar`` (N,) bool."""

    @staticmethod
    def forward(ctx, a, b, similar, margin: float, legacy: bool):
        diff = a - b
        dist_sq = (diff * diff).sum(dim=1)
        if legacy:
            dissimilar = torch.clamp(margin - dist_sq, min=0)
        else:
            gap = torch.clamp(margin - torch.sqrt(dist_sq), min=0)
            dissimilar = gap * gap
        loss = torch.where(similar, dist_sq, dissimilar).sum() / a.shape[0] / 2
        ctx.save_for_backward(diff, dist_sq, similar)
        ctx.margin, ctx.legacy = margin, legacy
        return loss

    @staticmethod
    def backward(ctx, g):
        diff, dist_sq, similar = ctx.saved_tensors
        alpha = g / diff.shape[0]
        if ctx.legacy:
            mdist, beta = ctx.margin - dist_sq, -alpha.expand_as(dist_sq)
        else:
            dist = torch.sqrt(dist_sq)
            mdist = ctx.margin - dist
            beta = -alpha * mdist / (dist + 1e-4)
        zero = torch.zeros_like(beta)
        scale = torch.where(similar, alpha.expand_as(beta), torch.where(mdist > 0, beta, zero))
        grad = scale.unsqueeze(1) * diff
        return grad, -grad, None, None, None


@register("ContrastiveLoss")
class ContrastiveLoss(_Loss):
    """Bottoms ``a``, ``b`` (N, C[, 1, 1]) and ``y`` (N[, 1, 1, 1]): similar pairs (``y``
    truncated toward zero is non-zero) add ``d^2 = ||a - b||^2``, dissimilar ones
    ``max(margin - d, 0)^2``, or with ``legacy_version: true`` ``max(margin - d^2, 0)``; the
    sum is divided by N and by 2. The backward is Caffe's, which divides by ``d + 1e-4``
    (not the derivative's ``d``); ``y`` gets no gradient. ``margin`` defaults to 1."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 3, 1, "a, b, y")
        p = param.contrastive_loss_param
        self.margin, self.legacy = f32(p.margin), bool(p.legacy_version)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        a, b, y = (legacy_4d(s, self.name, what) for s, what in zip(bottom_shapes, "aby"))
        if a[1] != b[1] or a[2:] != (1, 1) or b[2:] != (1, 1) or y[1:] != (1, 1, 1):
            raise CaffeFormatError(f"ContrastiveLoss takes a and b of shape (N, C, 1, 1) with "
                                   f"the same C and y of (N, 1, 1, 1), got "
                                   f"{[tuple(s) for s in bottom_shapes]}", layer=self.name)
        if a[0] != b[0] or y[0] < a[0]:
            raise CaffeFormatError(f"a, b and y must have the same N, got {a[0]}, {b[0]} and "
                                   f"{y[0]}", layer=self.name)
        return [()]

    def forward(self, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor):
        self.top_shapes([tuple(a.shape), tuple(b.shape), tuple(y.shape)])
        n = a.shape[0]
        similar = y.detach().reshape(-1)[:n].trunc() != 0
        return (_ContrastiveFn.apply(a.reshape(n, -1), b.reshape(n, -1), similar, self.margin,
                                     self.legacy),)
