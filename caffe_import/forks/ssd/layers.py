"""SSD's layers (weiliu89/caffe, branch ``ssd``): Normalize, Permute, PriorBox, DetectionOutput;
its AnnotatedData and VideoData become net inputs (``caffe_import.layers.data``).

Read from the fork's CPU code (``src/caffe/layers/*_layer.cpp``, ``src/caffe/util/bbox_util.cpp``):

* **Normalize** (``norm_param``): L2 norm over channels per position, or over the whole item with
  ``across_spatial`` (the default); ``norm = sqrt(sum x^2 + eps)`` (eps *inside* the root, unlike
  ``F.normalize``), then a learned scale (one value with ``channel_shared``, the default, else
  one per channel). The fork's backward is reproduced as written: with a per-channel scale it
  multiplies the normalised gradient by the scale *after* the projection, which is not the true
  gradient of its forward (it is when the scale is shared).
* **Permute** (``permute_param.order``): axes not named keep their order after the named ones.
* **PriorBox** (``prior_box_param``): the fork's box order per cell (min size; then
  ``sqrt(min * max)``; then each aspect ratio other than 1, flipped ones right after theirs).
  ``min_size``/``max_size`` are truncated to integers first, as the fork stores them in ``int``.
* **DetectionOutput** (``detection_output_param``): decode (CORNER, CENTER_SIZE, CORNER_SIZE;
  variance in the target or applied here), per-class greedy NMS over the ``top_k`` best scores
  above ``confidence_threshold`` (ties: lower prior index first, the fork's ``stable_sort``;
  overlap ``<= threshold`` keeps; ``eta < 1`` shrinks the threshold after each kept box while it
  is above 0.5), then ``keep_top_k`` per image by score. Output ``[1, 1, N, 7]`` rows
  ``[image, label, score, xmin, ymin, xmax, ymax]`` ordered by image, then label ascending,
  then score descending. With no detection in the whole batch the fork outputs one row per
  image, ``[i, -1, -1, -1, -1, -1, -1]``; so does this layer. Where ``keep_top_k`` cuts
  between equal scores the fork's ``std::sort`` order is unspecified; here the lower label, then
  the better NMS rank, wins.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ...errors import CaffeFormatError
from ...layers.base import (DTYPE_FLOAT32, FLT_MAX, CaffeLayer, Shape, check_arity,
                            check_channels, f32)
from ...layers.data import DataInput, DataKind
from ...layers.fillers import fill_or_constant
from ...layers.registry import register

CORNER, CENTER_SIZE, CORNER_SIZE = 1, 2, 3



# ----------------------------------------------------------------------------- Normalize
class _NormalizeFn(torch.autograd.Function):
    """Forward and the fork's own backward (``NormalizeLayer::Backward_cpu``)."""

    @staticmethod
    def forward(ctx, x, scale, across: bool, eps: float):
        sq = x * x
        if across:
            norm = torch.sqrt(sq.sum(dim=(1, 2), keepdim=True) + eps)
            # the fork multiplies by float(1.0 / norm)
            y0 = x * (1.0 / norm.double()).to(x.dtype)
        else:
            norm = torch.sqrt(sq.sum(dim=1, keepdim=True) + eps)
            y0 = x / norm
        y = y0 * scale.reshape(1, -1, 1)
        ctx.save_for_backward(x, scale, norm, y)
        ctx.across = across
        return y

    @staticmethod
    def backward(ctx, g):
        x, scale, norm, y = ctx.saved_tensors
        s = scale.reshape(1, -1, 1)
        gx = gs = None
        if ctx.needs_input_grad[1]:
            if scale.numel() == 1:
                gs = ((y * g).sum() / scale.reshape(())).reshape(scale.shape)
            else:
                gs = (y * g).sum(dim=(0, 2)) / scale
        if ctx.needs_input_grad[0]:
            if ctx.across:
                a = (x * g).sum(dim=(1, 2), keepdim=True)
                d = g - x * (a / norm / norm)
                d = d * (1.0 / norm.double()).to(x.dtype)
            else:
                d = x * (x * g).sum(dim=1, keepdim=True)
                d = (g - d / (norm * norm)) / norm
            gx = d * s
        return gx, gs, None, None


@register("Normalize", fork="ssd")
class Normalize(CaffeLayer):
    """SSD's L2 normalisation with a learned scale (blob 0: ``()`` shared, else ``(C,)``)."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, 1)
        shape = self.bottom_shapes[0]
        if len(shape) < 2:
            raise CaffeFormatError(f"Normalize needs a bottom with at least 2 axes, got {shape}",
                                   layer=param.name)
        p = param.norm_param
        self.across_spatial = bool(p.across_spatial)
        self.channel_shared = bool(p.channel_shared)
        self.eps = f32(p.eps)
        self.channels = shape[1]
        self.add_blob(() if self.channel_shared else (self.channels,))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``scale_filler``, constant 1 when absent (the fork's default)."""
        fill_or_constant(self.blobs[0].data, self.param.norm_param, "scale_filler", 1.0,
                         self.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        check_channels(shape, self.channels, self.name)
        return [shape]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        y = _NormalizeFn.apply(flat, self.blobs[0].reshape(-1), self.across_spatial, self.eps)
        return (y.reshape(x.shape),)


# ----------------------------------------------------------------------------- Permute
@register("Permute", fork="ssd")
class Permute(CaffeLayer):
    """Axes reordered by ``permute_param.order``; the axes it omits follow in their order."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, 1)
        n = len(self.bottom_shapes[0])
        order: list[int] = []
        for o in param.permute_param.order:
            o = int(o)
            if o >= n:
                raise CaffeFormatError(f"order {o} is not an axis of a {n}-axis bottom",
                                       layer=param.name)
            if o in order:
                raise CaffeFormatError(f"order {o} is given twice", layer=param.name)
            order.append(o)
        self.order = tuple(order + [i for i in range(n) if i not in order])

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if len(shape) != len(self.order):
            raise CaffeFormatError(f"bottom {shape} has {len(shape)} axes, the layer was built "
                                   f"for {len(self.order)}", layer=self.name)
        return [tuple(shape[i] for i in self.order)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (x.permute(self.order).contiguous(),)


# ----------------------------------------------------------------------------- PriorBox
def _pair(p, base: str, layer: str, single: str | None = None) -> tuple[float, float] | None:
    """``<single>`` (default ``<base>``) or ``<base>_h`` + ``<base>_w`` (the fork forbids
    both); None when unset."""
    single = single or base
    if p.HasField(f"{base}_h") or p.HasField(f"{base}_w"):
        if p.HasField(single):
            raise CaffeFormatError(f"give either {base} or {base}_h/{base}_w, not both",
                                   layer=layer)
        pair = (float(getattr(p, f"{base}_h")), float(getattr(p, f"{base}_w")))
    elif p.HasField(single):
        pair = (float(getattr(p, single)),) * 2
    else:
        return None
    if min(pair) <= 0:
        raise CaffeFormatError(f"{base} must be positive, got {pair}", layer=layer)
    return pair


@register("PriorBox", fork="ssd")
class PriorBox(CaffeLayer):
    """Default boxes ``[1, 2, H * W * num_priors * 4]``: corners (normalised by the image size)
    then variances. Depends only on shapes, so it is computed once per shape and cached."""
    #: float32 even under precision='fast': box coordinates
    dtype_policy = DTYPE_FLOAT32

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 2, 1)
        p, name = param.prior_box_param, param.name
        if not len(p.min_size):
            raise CaffeFormatError("prior_box_param needs min_size", layer=name)
        self.min_sizes = [float(v) for v in p.min_size]
        self.max_sizes = [float(v) for v in p.max_size]
        if any(v <= 0 for v in self.min_sizes):
            raise CaffeFormatError(f"min_size must be positive, got {self.min_sizes}", layer=name)
        if self.max_sizes and len(self.max_sizes) != len(self.min_sizes):
            raise CaffeFormatError("give one max_size per min_size", layer=name)
        if any(mx <= mn for mn, mx in zip(self.min_sizes, self.max_sizes)):
            raise CaffeFormatError("max_size must be greater than min_size", layer=name)
        ratios = [1.0]
        for ar in p.aspect_ratio:
            ar = f32(ar)
            if not ar > 0:  # the fork takes sqrt(ar) and 1 / ar unchecked
                raise CaffeFormatError(f"aspect_ratio must be positive, got {ar}", layer=name)
            if not any(abs(ar - r) < 1e-6 for r in ratios):
                ratios.append(ar)
                if p.flip:
                    ratios.append(f32(1.0 / ar))
        self.ratios = ratios
        self.num_priors = len(ratios) * len(self.min_sizes) + len(self.max_sizes)
        variance = [f32(v) for v in p.variance] or [0.1]
        if len(variance) not in (1, 4) or min(variance) <= 0:
            raise CaffeFormatError(f"variance must be 1 or 4 positive values, got {variance}",
                                   layer=name)
        self.variance = variance
        self.clip = bool(p.clip)
        self.img = _pair(p, "img", name, "img_size")
        self.step = _pair(p, "step", name)
        self.offset = f32(p.offset)
        self._cache: dict[tuple, torch.Tensor] = {}

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        feat, image = (tuple(s) for s in bottom_shapes[:2])
        if len(feat) != 4 or len(image) != 4:
            raise CaffeFormatError(f"PriorBox needs a 4-D feature map and a 4-D image, got "
                                   f"{feat} and {image}", layer=self.name)
        return [(1, 2, feat[2] * feat[3] * self.num_priors * 4)]

    def _sizes(self) -> list[tuple[float, float]]:
        """Box (width, height) per prior of a cell, in the fork's order, float32-rounded."""
        out = []
        for s, mn in enumerate(self.min_sizes):
            m = int(mn)  # the fork keeps min_size/max_size in an int
            out.append((float(m), float(m)))
            if self.max_sizes:
                side = f32(math.sqrt(m * int(self.max_sizes[s])))
                out.append((side, side))
            for ar in self.ratios:
                if abs(ar - 1.0) < 1e-6:
                    continue
                r = math.sqrt(ar)
                out.append((f32(m * r), f32(m / r)))
        return out

    def _priors(self, h: int, w: int, img_h: int, img_w: int) -> np.ndarray:
        if self.img is not None:
            img_h, img_w = int(self.img[0]), int(self.img[1])
        if self.step is not None:
            step_h, step_w = np.float32(self.step[0]), np.float32(self.step[1])
        else:
            step_h, step_w = np.float32(img_h) / np.float32(h), np.float32(img_w) / np.float32(w)
        off = np.float32(self.offset)
        cy = ((np.arange(h, dtype=np.float32) + off) * step_h).astype(np.float64)
        cx = ((np.arange(w, dtype=np.float32) + off) * step_w).astype(np.float64)
        sizes = np.array(self._sizes(), dtype=np.float64)  # (P, 2): width, height
        cx, cy = cx[None, :, None], cy[:, None, None]
        bw, bh = sizes[None, None, :, 0], sizes[None, None, :, 1]
        boxes = np.stack(np.broadcast_arrays((cx - bw / 2.0) / img_w, (cy - bh / 2.0) / img_h,
                                             (cx + bw / 2.0) / img_w, (cy + bh / 2.0) / img_h),
                         axis=-1).astype(np.float32).reshape(-1)
        if self.clip:
            boxes = np.minimum(np.maximum(boxes, 0.0), 1.0)
        var = np.resize(np.array(self.variance, dtype=np.float32), boxes.shape)
        return np.stack([boxes, var])[None]

    def forward(self, feat: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor]:
        key = (*feat.shape[2:], *image.shape[2:], feat.device)
        out = self._cache.get(key)
        if out is None:
            if feat.dim() != 4 or image.dim() < 4:
                raise CaffeFormatError(f"PriorBox needs 4-D bottoms, got {tuple(feat.shape)} "
                                       f"and {tuple(image.shape)}", layer=self.name)
            arr = self._priors(feat.shape[2], feat.shape[3], image.shape[2], image.shape[3])
            out = torch.from_numpy(arr).to(feat.device)
            self._cache = {key: out}
        return (out,)


# ----------------------------------------------------------------------------- DetectionOutput
def decode_boxes(prior: torch.Tensor, var: torch.Tensor, loc: torch.Tensor, code_type: int,
                 variance_in_target: bool) -> torch.Tensor:
    """The fork's ``DecodeBBox`` for every prediction: ``prior``/``var`` ``(P, 4)``, ``loc``
    ``(..., P, 4)``; float32 operations in the fork's order."""
    px0, py0, px1, py1 = prior.unbind(-1)
    lx0, ly0, lx1, ly1 = loc.unbind(-1)
    v = [torch.ones_like(px0)] * 4 if variance_in_target else list(var.unbind(-1))
    if code_type == CORNER:
        if variance_in_target:
            out = (px0 + lx0, py0 + ly0, px1 + lx1, py1 + ly1)
        else:
            out = (px0 + v[0] * lx0, py0 + v[1] * ly0, px1 + v[2] * lx1, py1 + v[3] * ly1)
    elif code_type == CENTER_SIZE:
        pw, ph = px1 - px0, py1 - py0
        pcx, pcy = (px0 + px1) / 2, (py0 + py1) / 2
        if variance_in_target:
            cx, cy = lx0 * pw + pcx, ly0 * ph + pcy
            w, h = torch.exp(lx1) * pw, torch.exp(ly1) * ph
        else:
            cx, cy = v[0] * lx0 * pw + pcx, v[1] * ly0 * ph + pcy
            w, h = torch.exp(v[2] * lx1) * pw, torch.exp(v[3] * ly1) * ph
        out = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    elif code_type == CORNER_SIZE:
        pw, ph = px1 - px0, py1 - py0
        if variance_in_target:
            out = (px0 + lx0 * pw, py0 + ly0 * ph, px1 + lx1 * pw, py1 + ly1 * ph)
        else:
            out = (px0 + v[0] * lx0 * pw, py0 + v[1] * ly0 * ph,
                   px1 + v[2] * lx1 * pw, py1 + v[3] * ly1 * ph)
    else:
        raise ValueError(f"unknown code_type {code_type}")
    return torch.stack(out, dim=-1)


def box_size(b: torch.Tensor) -> torch.Tensor:
    """The fork's ``BBoxSize`` (normalised boxes): 0 for an inverted box."""
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    bad = (b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1])
    return torch.where(bad, torch.zeros_like(w), w * h)


def jaccard(b1: Sequence[torch.Tensor], b2: Sequence[torch.Tensor], s1: torch.Tensor,
            s2: torch.Tensor) -> torch.Tensor:
    """The fork's ``JaccardOverlap`` (broadcasting) of boxes given as their four coordinate
    tensors ``(xmin, ymin, xmax, ymax)``, with precomputed sizes ``s1``/``s2``."""
    ax0, ay0, ax1, ay1 = b1
    bx0, by0, bx1, by1 = b2
    iw = torch.minimum(ax1, bx1) - torch.maximum(ax0, bx0)
    ih = torch.minimum(ay1, by1) - torch.maximum(ay0, by0)
    inter = iw * ih
    iou = inter / (s1 + s2 - inter)
    # The fork first tests whether the boxes are apart (then 0), then whether the
    # intersection has positive extents; apart boxes have a negative extent, so the second
    # test covers the first (NaN extents fail it too).
    return iou.masked_fill_(~((iw > 0) & (ih > 0)), 0.0)


def _suppressed(boxes: Sequence[torch.Tensor], sizes: torch.Tensor, kept: Sequence[torch.Tensor],
                kept_sizes: torch.Tensor, kept_ok: torch.Tensor, threshold) -> torch.Tensor:
    """Whether each candidate ``(R, B)`` overlaps one of the kept boxes ``(R, M)`` (``kept_ok``
    marks the real ones) by more than ``threshold`` (NaN overlaps suppress)."""
    ov = jaccard([c[:, :, None] for c in boxes], [c[:, None, :] for c in kept],
                 sizes[:, :, None], kept_sizes[:, None, :])
    return (~(ov <= threshold) & kept_ok[:, None, :]).any(dim=-1)


def _nms_sequential(coords: list[torch.Tensor], sizes: torch.Tensor, valid: torch.Tensor,
                    threshold: float, eta: float) -> torch.Tensor:
    """The fork's loop as written, one candidate at a time over ``(R, K)`` (``eta < 1`` needs
    it: the threshold shrinks after each kept box). No host reads. With a fixed threshold and
    a small ``R x K x K``, the overlaps are computed once as a matrix first."""
    r, k = valid.shape
    keep = torch.zeros_like(valid)
    thr = torch.full((r,), threshold, dtype=sizes.dtype, device=sizes.device)
    over = None
    if eta >= 1 and r * k * k <= (1 << 24):
        over = ~(jaccard([c[:, :, None] for c in coords], [c[:, None, :] for c in coords],
                         sizes[:, :, None], sizes[:, None, :]) <= threshold)
    for i in range(k):
        kept = valid[:, i]
        if i and over is not None:
            kept = kept & ~(keep[:, :i] & over[:, i, :i]).any(dim=-1)
        elif i:
            kept = kept & ~_suppressed([c[:, i:i + 1] for c in coords], sizes[:, i:i + 1],
                                       [c[:, :i] for c in coords], sizes[:, :i],
                                       keep[:, :i], thr[:, None, None])[:, 0]
        keep[:, i] = kept
        if eta < 1:
            thr = torch.where(kept & (thr > 0.5), thr * eta, thr)
    return keep


def _nms_blocked(coords: list[torch.Tensor], sizes: torch.Tensor, valid: torch.Tensor,
                 threshold: float, block: int) -> torch.Tensor:
    """Greedy NMS over ``(R, K)`` in blocks of candidates: a block is first tested against the
    boxes kept so far (gathered, so the work grows with the kept count as in the fork), then
    resolved within itself by iterating ``keep_j = cand_j & no kept i < j overlaps j`` to its
    fixed point. That system is triangular, so its fixed point is unique and is the greedy
    result; each pass fixes at least one more candidate. Reads counts from the device (the
    kept count per block, convergence per pass): meant for the CPU."""
    r, k = valid.shape
    keep = torch.zeros_like(valid)
    kept = [c[:, :0] for c in coords]
    kept_sizes, kept_ok = sizes[:, :0], valid[:, :0]
    tri = torch.ones(block, block, dtype=torch.bool, device=valid.device).tril(-1)
    for s in range(0, k, block):
        e = min(s + block, k)
        cb, sb = [c[:, s:e] for c in coords], sizes[:, s:e]
        cand = valid[:, s:e]
        if kept_ok.shape[1]:
            cand = cand & ~_suppressed(cb, sb, kept, kept_sizes, kept_ok, threshold)
        ov = jaccard([c[:, :, None] for c in cb], [c[:, None, :] for c in cb],
                     sb[:, :, None], sb[:, None, :])
        over = ~(ov <= threshold) & tri[:e - s, :e - s]  # [j, i]: earlier i suppresses j
        x = cand
        while True:
            nx = cand & ~(over & x[:, None, :]).any(dim=-1)
            if torch.equal(nx, x):
                break
            x = nx
        keep[:, s:e] = x
        m = int(x.sum(dim=1).max()) if x.numel() else 0
        if m:
            first = torch.sort((~x).to(torch.uint8), dim=1, stable=True).indices[:, :m]
            kept = [torch.cat([a, c.gather(1, first)], 1) for a, c in zip(kept, cb)]
            kept_sizes = torch.cat([kept_sizes, sb.gather(1, first)], 1)
            kept_ok = torch.cat([kept_ok, x.gather(1, first)], 1)
    return keep


def greedy_nms(boxes: torch.Tensor, valid: torch.Tensor, threshold: float, eta: float,
               block: int = 64) -> torch.Tensor:
    """The fork's ``ApplyNMSFast`` on candidates already sorted best first, batched over the
    leading axes: ``boxes (..., K, 4)``, ``valid (..., K)``; returns the kept mask. A candidate
    is kept when its overlap with every kept one is ``<= threshold`` (NaN suppresses).

    On the CPU (``eta == 1``) the work is proportional to candidates x kept boxes, as the
    fork's loop (:func:`_nms_blocked`); elsewhere, or with the adaptive ``eta < 1``, candidates
    are taken one at a time as tensor operations with no host synchronisation."""
    lead, k = valid.shape[:-1], valid.shape[-1]
    flat = boxes.reshape(math.prod(lead), k, 4)
    coords = [c.contiguous() for c in flat.unbind(-1)]
    sizes, ok = box_size(flat), valid.reshape(math.prod(lead), k)
    if eta >= 1 and boxes.device.type == "cpu":
        keep = _nms_blocked(coords, sizes, ok, threshold, block)
    else:
        keep = _nms_sequential(coords, sizes, ok, threshold, eta)
    return keep.reshape(*lead, k)


@register("DetectionOutput", fork="ssd")
class DetectionOutput(CaffeLayer):
    """Bottoms: location predictions ``(N, P * L * 4)``, confidences ``(N, P * C)`` (already
    softmax-ed), priors ``(1, 2, P * 4)``; top ``(1, 1, rows, 7)`` (see the module docstring).

    The file-writing and visualisation options of ``save_output_param`` are ignored (they do not
    change the top). Off the CPU, NMS runs as tensor operations without host synchronisation;
    sizing the candidate set and the output needs two reads of counts from the device (on the
    CPU, NMS also reads counts: :func:`greedy_nms`)."""
    host_reads = ("the number of candidates per class and of kept detections size the top "
                  "(rows, 7), as the fork's output does")
    #: float32 even under precision='fast': thresholds, NMS and score ties are discrete
    dtype_policy = DTYPE_FLOAT32


    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, (3, 4), 1)
        p, name = param.detection_output_param, param.name
        if not p.HasField("num_classes"):
            raise CaffeFormatError("detection_output_param needs num_classes", layer=name)
        self.num_classes = int(p.num_classes)
        self.share_location = bool(p.share_location)
        self.num_loc_classes = 1 if self.share_location else self.num_classes
        self.background = int(p.background_label_id)
        self.code_type = int(p.code_type)
        if self.code_type not in (CORNER, CENTER_SIZE, CORNER_SIZE):
            raise CaffeFormatError(f"unknown code_type {self.code_type}", layer=name)
        self.variance_in_target = bool(p.variance_encoded_in_target)
        self.keep_top_k = int(p.keep_top_k)
        self.confidence = f32(p.confidence_threshold) if p.HasField(
            "confidence_threshold") else -FLT_MAX
        nms = p.nms_param
        self.nms_threshold, self.eta = f32(nms.nms_threshold), f32(nms.eta)
        if self.nms_threshold < 0 or not 0 < self.eta <= 1:
            raise CaffeFormatError(f"nms_threshold must be >= 0 and 0 < eta <= 1, got "
                                   f"{self.nms_threshold} and {self.eta}", layer=name)
        self.top_k = int(nms.top_k) if nms.HasField("top_k") else -1
        self.classes = [c for c in range(self.num_classes) if c != self.background]
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        loc, conf, prior = (tuple(s) for s in bottom_shapes[:3])
        if len(prior) != 3 or prior[2] % 4 or prior[0] * prior[1] < 2:
            raise CaffeFormatError(f"priors of shape {prior}: expected (1, 2, num_priors * 4)",
                                   layer=self.name)
        p = prior[2] // 4
        if len(loc) < 2 or math.prod(loc[1:]) != p * self.num_loc_classes * 4:
            raise CaffeFormatError(f"location predictions {loc} do not hold {p} priors x "
                                   f"{self.num_loc_classes} x 4 values", layer=self.name)
        if len(conf) < 2 or math.prod(conf[1:]) != p * self.num_classes or conf[0] != loc[0]:
            raise CaffeFormatError(f"confidences {conf} do not hold {p} priors x "
                                   f"{self.num_classes} classes for {loc[0]} images",
                                   layer=self.name)
        return [(1, 1, 1, 7)]  # the fork's Reshape; forward gives the real row count

    def _candidates(self, loc, conf, prior):
        """Per (image, class): the decoded boxes and scores of the best candidates, sorted."""
        n, p = loc.shape[0], prior.shape[2] // 4
        pri = prior.reshape(-1)[:2 * p * 4].reshape(2, p, 4)  # the fork reads only these
        boxes = decode_boxes(pri[0], pri[1], loc.reshape(n, p, self.num_loc_classes, 4)
                             .transpose(1, 2), self.code_type, self.variance_in_target)
        cls = torch.tensor(self.classes, device=loc.device, dtype=torch.long)
        scores = conf.reshape(n, p, self.num_classes).transpose(1, 2)[:, cls]  # (N, C', P)
        boxes = boxes.expand(n, len(self.classes), p, 4) if self.share_location \
            else boxes[:, cls]
        valid = scores > self.confidence
        ranked = torch.where(valid, scores, torch.full_like(scores, -math.inf))
        ranked, order = torch.sort(ranked, dim=-1, descending=True, stable=True)
        k = p if self.top_k < 0 else min(self.top_k, p)
        k = min(k, int(valid.sum(dim=-1).max())) if valid.numel() else 0
        order = order[..., :k]
        cand_boxes = boxes.gather(2, order[..., None].expand(*order.shape, 4))
        return cand_boxes, ranked[..., :k], valid.gather(2, order)

    def _select(self, keep: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """``keep_top_k``: the best kept detections per image (ties: lower label, rank)."""
        if self.keep_top_k < 0:
            return keep
        n = keep.shape[0]
        flat = torch.where(keep, scores, torch.full_like(scores, -math.inf)).reshape(n, -1)
        order = torch.sort(flat, dim=1, descending=True, stable=True).indices
        chosen = torch.zeros_like(flat, dtype=torch.bool)
        chosen.scatter_(1, order[:, :self.keep_top_k], True)
        return keep & chosen.reshape(keep.shape)

    def forward(self, loc, conf, prior, *extra) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(loc.shape), tuple(conf.shape), tuple(prior.shape)])
        n = loc.shape[0]
        boxes, scores, valid = self._candidates(loc, conf, prior)
        keep = greedy_nms(boxes, valid, self.nms_threshold, self.eta)
        keep = self._select(keep, scores)
        idx = keep.nonzero()
        if idx.shape[0] == 0:
            out = torch.full((n, 7), -1.0, dtype=loc.dtype, device=loc.device)
            out[:, 0] = torch.arange(n, dtype=loc.dtype, device=loc.device)
            return (out.reshape(1, 1, n, 7),)
        img, c, k = idx.unbind(1)
        labels = torch.tensor(self.classes, device=loc.device, dtype=loc.dtype)[c]
        rows = torch.cat([img.to(loc.dtype)[:, None], labels[:, None],
                          scores[img, c, k][:, None], boxes[img, c, k]], dim=1)
        return (rows.reshape(1, 1, -1, 7),)


@register("AnnotatedData", fork="ssd")
class AnnotatedData(DataInput):
    """SSD's image and box-annotation data layer, as net inputs (``caffe_import.layers.data``):
    its channels and annotation blob are the database's."""

    kind = DataKind("data_param", color_channels=False, label=None)


@register("VideoData", fork="ssd")
class VideoData(DataInput):
    """SSD's video data layer, as net inputs (``caffe_import.layers.data``)."""

    kind = DataKind("video_data_param", color_channels=False, label=None)
