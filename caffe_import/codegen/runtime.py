"""Caffe's numerics where ``torch.nn`` computes something else, as plain-torch functions.

The generated ``model.py`` holds a verbatim copy (``inspect.getsource``) of each function it
calls, so this module imports nothing but ``torch`` and ``math`` (a test checks it), and each
function names every other helper it calls at module level.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool,
                      extra: int = 0) -> int:
    """Caffe's pooled length: ceil (or floor) of ``(size + 2 pad - kernel) / stride`` plus one
    (plus a fork's ``extra`` cells), then, only where a pad is non-zero, minus the last window
    if it starts in the padding."""
    num = size + 2 * pad - kernel
    out = (-(-num // stride) if ceil_mode else num // stride) + 1 + extra
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def caffe_pool_pad(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                   pad: tuple[int, int], ceil_mode: bool, value: float,
                   extra: int = 0) -> torch.Tensor:
    """``x`` padded (or cut) so windows of ``stride`` without padding tile Caffe's output grid:
    ``pad`` before, whatever Caffe's last window reaches after."""
    widths = []
    for i in (1, 0):
        size = x.shape[2 + i]
        out = caffe_pooled_size(size, kernel[i], stride[i], pad[i], ceil_mode, extra)
        widths += [pad[i], (out - 1) * stride[i] + kernel[i] - size - pad[i]]
    return F.pad(x, widths, value=value)


def caffe_max_pool2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                     pad: tuple[int, int], ceil_mode: bool = True, extra: int = 0
                     ) -> torch.Tensor:
    """Caffe's MAX pooling where PyTorch's window grid differs (pad over half the kernel, the
    last window of ``pad: 0`` starting past the input): a window without input is -FLT_MAX."""
    padded = caffe_pool_pad(x, kernel, stride, pad, ceil_mode, float("-inf"), extra)
    y = F.max_pool2d(padded, kernel, stride)
    return y.masked_fill(y == float("-inf"), -3.4028234663852886e38)  # C's -FLT_MAX


def caffe_avg_pool2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                     pad: tuple[int, int], ceil_mode: bool = True, extra: int = 0
                     ) -> torch.Tensor:
    """Caffe's AVE pooling where PyTorch's window grid differs: each window's sum divided by
    its size clipped to the padded input (padding counts, the overhang past it does not)."""
    h, w = x.shape[2], x.shape[3]
    padded = caffe_pool_pad(x, kernel, stride, pad, ceil_mode, 0.0, extra)
    sums = F.avg_pool2d(padded, kernel, stride, 0, divisor_override=1)
    sizes = []
    for i, size in enumerate((h, w)):
        starts = torch.arange(sums.shape[2 + i], device=x.device) * stride[i] - pad[i]
        sizes.append(torch.clamp(starts + kernel[i], max=size + pad[i]) - starts)
    return sums / (sizes[0][:, None] * sizes[1][None, :]).to(x.dtype)


def caffe_max_pool2d_with_mask(x: torch.Tensor, kernel: tuple[int, int],
                               stride: tuple[int, int], pad: tuple[int, int],
                               ceil_mode: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Caffe's MAX pooling and its mask top: the winner's index ``h * W + w`` in its (n, c)
    plane as a float (first maximum in raster order), -1 for a window without input."""
    padded = caffe_pool_pad(x, kernel, stride, pad, ceil_mode, float("-inf"))
    y, index = F.max_pool2d(padded, kernel, stride, return_indices=True)
    index = (index // padded.shape[3] - pad[0]) * x.shape[3] + (index % padded.shape[3] - pad[1])
    empty = y == float("-inf")
    y = y.masked_fill(empty, -3.4028234663852886e38)
    mask = torch.where(empty, torch.full_like(y, -1.0), index.to(y.dtype))
    return y, mask


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


def caffe_relu6(x: torch.Tensor) -> torch.Tensor:
    """``min(max(x, 0), 6)``; its gradient passes only where ``0 < x < 6`` (the port's)."""
    inside = (x > 0) & (x < 6)
    return torch.where(inside, x, torch.clamp(x, 0.0, 6.0).detach())


def caffe_interp(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """DeepLab's / PSPNet's ``caffe_cpu_interp2``: bilinear with aligned corners, the source
    positions and weights in float32, ``h0 (w0 a + w1 b) + h1 (w0 c + w1 d)``."""
    if (x.shape[2], x.shape[3]) == (out_h, out_w):
        return x.clone()
    taps = []
    for size_in, size_out in ((x.shape[2], out_h), (x.shape[3], out_w)):
        ratio = (torch.tensor(float(size_in - 1)) / float(size_out - 1) if size_out > 1
                 else torch.tensor(0.0))
        pos = torch.arange(size_out, dtype=torch.float32) * ratio
        low = pos.long()
        w1 = pos - low.float()
        step = (low < size_in - 1).long()
        taps.append((low.to(x.device), (low + step).to(x.device),
                     (1.0 - w1).to(x.device, x.dtype), w1.to(x.device, x.dtype)))
    (hl, hr, h0, h1), (wl, wr, w0, w1) = taps
    rows = w0 * x[..., wl] + w1 * x[..., wr]
    return h0[:, None] * rows[..., hl, :] + h1[:, None] * rows[..., hr, :]


def caffe_unpool(x: torch.Tensor, mask: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """SegNet's Upsample: each value scattered to the position its pooling mask names (the
    last writer wins); the backward reads every input's gradient at its position (the fork's)."""
    planes, size = x.shape[0] * x.shape[1], out_h * out_w
    flat = x.reshape(planes, -1)
    index = mask.detach().reshape(planes, -1).long()
    target = torch.where((index >= 0) & (index < size), index, torch.full_like(index, size))
    order = torch.arange(flat.shape[1], device=x.device).expand(planes, -1)
    winner = torch.full((planes, size + 1), -1, dtype=torch.long, device=x.device)
    winner = winner.scatter_reduce(1, target, order, reduce="amax", include_self=True)[:, :size]
    value = flat.detach().gather(1, winner.clamp(min=0))
    value = torch.where(winner >= 0, value, torch.zeros_like(value))
    spread = torch.zeros(planes, size + 1, dtype=x.dtype, device=x.device)
    spread = spread.scatter_add(1, target, flat)[:, :size]
    out = value + (spread - spread.detach())
    return out.reshape(x.shape[0], x.shape[1], out_h, out_w)


def caffe_smooth_l1_loss(a: torch.Tensor, b: torch.Tensor, sigma2: float,
                         inside: torch.Tensor | None = None,
                         outside: torch.Tensor | None = None) -> torch.Tensor:
    """Faster R-CNN's SmoothL1Loss: ``0.5 (sigma d)^2`` below ``1 / sigma^2``, else
    ``|d| - 0.5 / sigma^2``, with ``d`` weighted inside and the error outside (no gradient to
    the weights), in double then float as the fork's kernel; summed, over ``N``."""
    d = a - b
    if inside is not None:
        d = inside.detach() * d
    dd = d.double()
    absd = dd.abs()
    err = torch.where(absd < 1.0 / sigma2, 0.5 * dd * dd * sigma2, absd - 0.5 / sigma2)
    err = err.to(d.dtype)
    if outside is not None:
        err = outside.detach() * err
    return err.sum() / a.shape[0]


def caffe_normalize(x: torch.Tensor, scale: torch.Tensor, across_spatial: bool,
                    eps: float) -> torch.Tensor:
    """SSD's Normalize: ``x / sqrt(sum x^2 + eps)`` over channels (each position) or over
    channels and positions, times the learned scale (one, or one per channel)."""
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    if across_spatial:
        norm = torch.sqrt((flat * flat).sum(dim=(1, 2), keepdim=True) + eps)
        y = flat * (1.0 / norm.double()).to(x.dtype)
    else:
        y = flat / torch.sqrt((flat * flat).sum(dim=1, keepdim=True) + eps)
    return (y * scale.reshape(1, -1, 1)).reshape(x.shape)


def caffe_prior_box(feat: torch.Tensor, image: torch.Tensor, sizes: list[tuple[float, float]],
                    variance: list[float], offset: float, clip: bool,
                    img: tuple[int, int] | None = None,
                    step: tuple[float, float] | None = None) -> torch.Tensor:
    """SSD's PriorBox ``(1, 2, H W priors 4)``: each cell's boxes (``sizes``: width, height)
    as corners over the image size, then the variances; centres in float32, corners in
    double, rounded once."""
    h, w = feat.shape[2], feat.shape[3]
    img_h, img_w = img if img is not None else (image.shape[2], image.shape[3])
    if step is not None:
        step_h, step_w = torch.tensor(step[0]), torch.tensor(step[1])
    else:
        step_h = torch.tensor(float(img_h)) / float(h)
        step_w = torch.tensor(float(img_w)) / float(w)
    cy = ((torch.arange(h, dtype=torch.float32) + offset) * step_h).double()[:, None, None]
    cx = ((torch.arange(w, dtype=torch.float32) + offset) * step_w).double()[None, :, None]
    wh = torch.tensor(sizes, dtype=torch.float64)
    bw, bh = wh[None, None, :, 0], wh[None, None, :, 1]
    corners = [(cx - bw / 2.0) / img_w, (cy - bh / 2.0) / img_h,
               (cx + bw / 2.0) / img_w, (cy + bh / 2.0) / img_h]
    boxes = torch.stack(torch.broadcast_tensors(*corners), dim=-1).float().reshape(-1)
    if clip:
        boxes = boxes.clamp(0.0, 1.0)
    var = torch.tensor(variance, dtype=torch.float32).repeat(boxes.numel() // len(variance))
    return torch.stack([boxes, var])[None].to(feat.device)


def caffe_segnet_bn(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SegNet's BN in LEARN mode: the batch's mean and ``E[x^2] - E[x]^2`` (per position, then
    over the batch, as the fork sums), ``(x - mean) / sqrt(var + 1e-9) * scale + shift``;
    also the mean and variance (the fork's optional tops, without gradient)."""
    n, hw = x.shape[0], x.shape[2] * x.shape[3]
    mean = ((x.sum(dim=(2, 3)) * (1.0 / hw)).sum(0) * (1.0 / n)).view(1, -1, 1, 1)
    sq = ((x * x).sum(dim=(2, 3)) * (1.0 / hw)).sum(0) * (1.0 / n)
    var = sq.view(1, -1, 1, 1) - mean * mean
    y = (x - mean) / torch.sqrt(var + 1e-9) * scale + shift
    return y, mean.detach(), var.detach()


def caffe_roi_bins(start: int, end: int, pooled: int, limit: int) -> list[tuple[int, int]]:
    """Fast R-CNN's bins along one axis of a roi ``[start, end]``: bin ``p`` is
    ``[floor(p size / pooled), ceil((p + 1) size / pooled))`` (float32) from ``start``,
    clipped to ``[0, limit]``."""
    size = torch.tensor(float(max(end - start + 1, 1))) / float(pooled)
    p = torch.arange(pooled, dtype=torch.float32)
    lo = (torch.floor(p * size).long() + start).clamp(0, limit)
    hi = (torch.ceil((p + 1) * size).long() + start).clamp(0, limit)
    return list(zip(lo.tolist(), hi.tolist()))


def caffe_roi_pooling(x: torch.Tensor, rois: torch.Tensor, pooled_h: int, pooled_w: int,
                      spatial_scale: float) -> torch.Tensor:
    """Fast R-CNN's ROIPooling, roi by roi: corners ``round(coord * scale)`` (C's round, halves
    away from zero), each bin's first maximum (an empty bin 0, one of only -inf -FLT_MAX);
    ``rois`` ``(R, 5)``: batch index, x1, y1, x2, y2. The gradient reaches a bin's maximum
    only where the fork's backward kernel credits it (:func:`caffe_roi_credited`)."""
    out = []
    for roi in rois.detach().reshape(-1, 5).float():
        scaled = roi[1:] * spatial_scale
        whole = torch.trunc(scaled)
        half = torch.where((scaled - whole).abs() >= 0.5, torch.sign(scaled),
                           torch.zeros_like(scaled))
        box = [int(v) for v in (whole + half).tolist()]
        plane = x[int(roi[0])]
        cells = []
        for ph, (hs, he) in enumerate(caffe_roi_bins(box[1], box[3], pooled_h, x.shape[2])):
            for pw, (ws, we) in enumerate(caffe_roi_bins(box[0], box[2], pooled_w, x.shape[3])):
                if he <= hs or we <= ws:
                    cells.append(plane.new_zeros(plane.shape[0]))
                    continue
                best, at = plane[:, hs:he, ws:we].flatten(1).max(dim=1)
                where = (hs + at // (we - ws), ws + at % (we - ws))
                credited = caffe_roi_credited(where, box, (ph, pw), (pooled_h, pooled_w))
                best = torch.where(credited, best, best.detach())
                cells.append(best.clamp(min=-3.4028234663852886e38))
        out.append(torch.stack(cells, dim=1).reshape(plane.shape[0], pooled_h, pooled_w))
    if not out:
        return x.new_zeros((0, x.shape[1], pooled_h, pooled_w))
    return torch.stack(out)


def caffe_roi_credited(where: tuple[torch.Tensor, torch.Tensor], box: list[int],
                       cell: tuple[int, int], pooled: tuple[int, int]) -> torch.Tensor:
    """Whether the fork's ``ROIPoolBackward`` kernel passes a bin's gradient to its maximum at
    ``where`` (rows, columns per channel): inside the roi's box, and the bin among those its
    float32 search ``floor((h - start) / bin)`` to ``ceil((h - start + 1) / bin)`` finds."""
    ok = torch.ones_like(where[0], dtype=torch.bool)
    for pos, start, end, p, n in ((where[0], box[1], box[3], cell[0], pooled[0]),
                                  (where[1], box[0], box[2], cell[1], pooled[1])):
        size = torch.tensor(float(max(end - start + 1, 1))) / float(n)
        lo = torch.floor((pos - start).float() / size).long().clamp(0, n)
        hi = torch.ceil((pos - start + 1).float() / size).long().clamp(0, n)
        ok = ok & (pos >= start) & (pos <= end) & (lo <= p) & (p < hi)
    return ok


def caffe_decode_boxes(prior: torch.Tensor, var: torch.Tensor, loc: torch.Tensor,
                       code_type: int, variance_in_target: bool) -> torch.Tensor:
    """SSD's ``DecodeBBox`` (code type 1 CORNER, 2 CENTER_SIZE, 3 CORNER_SIZE) for every
    prediction: ``prior``/``var`` ``(P, 4)``, ``loc`` ``(..., P, 4)``, in the fork's order."""
    px0, py0, px1, py1 = prior.unbind(-1)
    lx0, ly0, lx1, ly1 = loc.unbind(-1)
    v0, v1, v2, v3 = [torch.ones_like(px0)] * 4 if variance_in_target else var.unbind(-1)
    pw, ph = px1 - px0, py1 - py0
    if code_type == 1:
        if variance_in_target:
            return torch.stack((px0 + lx0, py0 + ly0, px1 + lx1, py1 + ly1), dim=-1)
        return torch.stack((px0 + v0 * lx0, py0 + v1 * ly0, px1 + v2 * lx1, py1 + v3 * ly1),
                           dim=-1)
    if code_type == 3:
        if variance_in_target:
            return torch.stack((px0 + lx0 * pw, py0 + ly0 * ph, px1 + lx1 * pw,
                                py1 + ly1 * ph), dim=-1)
        return torch.stack((px0 + v0 * lx0 * pw, py0 + v1 * ly0 * ph, px1 + v2 * lx1 * pw,
                            py1 + v3 * ly1 * ph), dim=-1)
    pcx, pcy = (px0 + px1) / 2, (py0 + py1) / 2
    if variance_in_target:
        cx, cy = lx0 * pw + pcx, ly0 * ph + pcy
        w, h = torch.exp(lx1) * pw, torch.exp(ly1) * ph
    else:
        cx, cy = v0 * lx0 * pw + pcx, v1 * ly0 * ph + pcy
        w, h = torch.exp(v2 * lx1) * pw, torch.exp(v3 * ly1) * ph
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def caffe_nms(boxes: torch.Tensor, threshold: float, eta: float) -> list[int]:
    """SSD's ``ApplyNMSFast`` on boxes sorted best first: the positions kept, each one
    overlapping every kept one by at most ``threshold`` (a NaN overlap suppresses); with
    ``eta < 1`` the threshold shrinks after each kept box while it is above 0.5."""
    sizes = torch.where((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]),
                        torch.zeros_like(boxes[:, 0]),
                        (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    kept: list[int] = []
    for i in range(boxes.shape[0]):
        if kept:
            k = torch.tensor(kept)
            iw = torch.minimum(boxes[k, 2], boxes[i, 2]) - torch.maximum(boxes[k, 0], boxes[i, 0])
            ih = torch.minimum(boxes[k, 3], boxes[i, 3]) - torch.maximum(boxes[k, 1], boxes[i, 1])
            inter = iw * ih
            overlap = (inter / (sizes[k] + sizes[i] - inter)).masked_fill(~((iw > 0) & (ih > 0)),
                                                                          0.0)
            if bool((~(overlap <= threshold)).any()):
                continue
        kept.append(i)
        if eta < 1 and threshold > 0.5:
            threshold *= eta
    return kept


def caffe_detection_output(loc: torch.Tensor, conf: torch.Tensor, prior: torch.Tensor,
                           num_classes: int, share_location: bool, background: int,
                           code_type: int, variance_in_target: bool, confidence: float,
                           nms_threshold: float, eta: float, top_k: int,
                           keep_top_k: int) -> torch.Tensor:
    """SSD's DetectionOutput ``(1, 1, rows, 7)``: rows ``[image, label, score, xmin, ymin,
    xmax, ymax]`` by image, label, then score; per class the ``top_k`` best scores above
    ``confidence`` (ties: lower prior first) through NMS, then the ``keep_top_k`` best per
    image (ties: lower label, then NMS rank). No detection at all: ``[i, -1, ..., -1]`` rows."""
    n, p = loc.shape[0], prior.shape[2] // 4
    pri = prior.reshape(-1)[:2 * p * 4].reshape(2, p, 4)
    boxes = caffe_decode_boxes(pri[0], pri[1], loc.reshape(n, p, -1, 4).transpose(1, 2),
                               code_type, variance_in_target)
    scores = conf.reshape(n, p, num_classes).transpose(1, 2)
    rows = []
    for i in range(n):
        found = []
        for c in range(num_classes):
            if c == background:
                continue
            s, b = scores[i, c], boxes[i, 0 if share_location else c]
            idx = torch.nonzero(s > confidence).flatten()
            order = idx[torch.sort(s[idx], descending=True, stable=True).indices]
            order = order if top_k < 0 else order[:top_k]
            found += [(c, int(order[k])) for k in caffe_nms(b[order], nms_threshold, eta)]
        if 0 <= keep_top_k < len(found):
            best = sorted(range(len(found)), key=lambda j: -float(scores[i, found[j][0],
                                                                       found[j][1]]))
            found = [found[j] for j in sorted(best[:keep_top_k])]
        for c, k in found:
            b = boxes[i, 0 if share_location else c, k]
            head = torch.tensor([float(i), float(c)], dtype=loc.dtype, device=loc.device)
            rows.append(torch.cat([head, scores[i, c, k].reshape(1), b]))
    if not rows:
        empty = torch.full((n, 7), -1.0, dtype=loc.dtype, device=loc.device)
        empty[:, 0] = torch.arange(n, dtype=loc.dtype, device=loc.device)
        return empty.reshape(1, 1, n, 7)
    return torch.stack(rows).reshape(1, 1, -1, 7)


def caffe_infogain_loss(x: torch.Tensor, label: torch.Tensor, h: torch.Tensor, axis: int = 1,
                        ignore_label: int | None = None, normalization: str = "valid"
                        ) -> torch.Tensor:
    """Caffe's InfogainLoss: ``-sum_l H[label, l] log(max(p_l, 1e-20))`` per counted position,
    ``p`` the softmax along ``axis``, normalised; no gradient reaches ``H``."""
    outer, classes = math.prod(x.shape[:axis]), x.shape[axis]
    inner = math.prod(x.shape[axis + 1:])
    h = h.detach().reshape(classes, classes).to(x.dtype)
    scores = x.reshape(outer, classes, inner)
    index, valid = caffe_labels(label.reshape(outer, inner), ignore_label)
    weights = h[index].transpose(1, 2)
    weights = torch.where(valid.unsqueeze(1), weights, torch.zeros_like(weights))
    e = torch.exp(scores - scores.amax(dim=1, keepdim=True))
    prob = e / e.sum(dim=1, keepdim=True)
    value = -(weights * torch.log(prob.detach().clamp(min=1e-20))).sum()
    surrogate = -(weights * F.log_softmax(scores, dim=1)).sum()
    loss = surrogate + (value - surrogate).detach()
    return loss / caffe_normalizer(normalization, outer, inner, valid)


def caffe_stochastic_pool2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                            training: bool, ceil_mode: bool = True) -> torch.Tensor:
    """Caffe's STOCHASTIC pooling (its GPU code; no padding): TRAIN samples one element per
    window with probability proportional to its value (torch's random stream); TEST gives
    ``sum(x^2) / sum(x)``, 0 where ``sum(x) <= 0``."""
    padded = caffe_pool_pad(x, kernel, stride, (0, 0), ceil_mode, 0.0)
    if not training:
        total = F.avg_pool2d(padded, kernel, stride, 0, divisor_override=1)
        squares = F.avg_pool2d(padded * padded, kernel, stride, 0, divisor_override=1)
        return torch.where(total > 0, squares / total, torch.zeros_like(total))
    n, c = x.shape[:2]
    out = [caffe_pooled_size(s, k, st, 0, ceil_mode) for s, k, st in
           zip(x.shape[2:], kernel, stride)]
    cols = F.unfold(padded.reshape(n * c, 1, *padded.shape[2:]), kernel, stride=stride)
    total = cols.sum(dim=1, keepdim=True)
    reached = cols.cumsum(dim=1) >= torch.rand_like(total) * total
    first = reached.to(torch.uint8).argmax(dim=1, keepdim=True)
    return cols.gather(1, first).reshape(n, c, *out)


def caffe_proposal_nms(boxes: torch.Tensor, scores: torch.Tensor, thresh: float,
                       limit: int) -> torch.Tensor:
    """py-faster-rcnn's ``nms`` (pixel boxes, ``+1`` areas), best score first (ties as
    ``argsort()[::-1]`` of a stable sort), stopping after ``limit`` kept boxes."""
    order = torch.sort(scores, stable=True).indices.flip(0)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    keep = []
    while order.numel() and (limit <= 0 or len(keep) < limit):
        i, rest = order[0], order[1:]
        keep.append(i)
        w = torch.clamp(torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest]) + 1,
                        min=0.0)
        h = torch.clamp(torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest]) + 1,
                        min=0.0)
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= thresh]
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long)


def caffe_proposal(cls_prob: torch.Tensor, deltas: torch.Tensor, im_info: torch.Tensor,
                   anchors: list[list[float]], feat_stride: int, pre_nms_top_n: int,
                   post_nms_top_n: int, nms_thresh: float, min_size: float) -> torch.Tensor:
    """py-faster-rcnn's RPN proposal layer for one image: anchors shifted over the feature
    map, moved by the deltas, clipped to the image (``im_info``: height, width, scale), boxes
    under ``min_size * scale`` dropped, the ``pre_nms_top_n`` best through NMS, the first
    ``post_nms_top_n`` kept; rois ``(R, 5)`` with batch index 0. No gradient."""
    with torch.no_grad():
        base = torch.tensor(anchors, dtype=torch.float64)
        h, w = cls_prob.shape[-2:]
        sy, sx = torch.meshgrid(torch.arange(h) * feat_stride, torch.arange(w) * feat_stride,
                                indexing="ij")
        shifts = torch.stack([sx.reshape(-1), sy.reshape(-1)] * 2, dim=1).double()
        boxes = (base[None] + shifts[:, None]).reshape(-1, 4).float().to(deltas.device)
        d = deltas.permute(0, 2, 3, 1).reshape(-1, 4).float()
        widths, heights = boxes[:, 2] - boxes[:, 0] + 1.0, boxes[:, 3] - boxes[:, 1] + 1.0
        cx, cy = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
        pcx, pcy = d[:, 0] * widths + cx, d[:, 1] * heights + cy
        pw, ph = torch.exp(d[:, 2]) * widths, torch.exp(d[:, 3]) * heights
        boxes = torch.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph], 1)
        info = im_info.reshape(-1).float()
        lim = torch.stack([info[1] - 1, info[0] - 1, info[1] - 1, info[0] - 1])
        boxes = torch.maximum(torch.minimum(boxes, lim), torch.zeros_like(boxes))
        smallest = float(torch.tensor(min_size) * info[2])
        ws, hs = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        scores = cls_prob[:, len(anchors):].permute(0, 2, 3, 1).reshape(-1).float()
        keep = (ws >= smallest) & (hs >= smallest)
        boxes, scores = boxes[keep], scores[keep]
        order = torch.sort(scores, stable=True).indices.flip(0)
        order = order[:pre_nms_top_n] if pre_nms_top_n > 0 else order
        boxes, scores = boxes[order], scores[order]
        boxes = boxes[caffe_proposal_nms(boxes, scores, nms_thresh, post_nms_top_n)]
        return torch.cat([torch.zeros_like(boxes[:, :1]), boxes], 1).to(cls_prob.dtype)


def caffe_accuracy_per_class(x: torch.Tensor, label: torch.Tensor, top_k: int = 1,
                             axis: int = 1, ignore_label: int | None = None) -> torch.Tensor:
    """Accuracy's second top: per class, the fraction of its counted positions that
    ``caffe_accuracy`` calls correct (0 for a class never seen)."""
    x = x.detach()
    outer, classes = math.prod(x.shape[:axis]), x.shape[axis]
    scores = x.reshape(outer, classes, -1)
    index, valid = caffe_labels(label.reshape(outer, 1, -1), ignore_label)
    correct = ((scores >= scores.gather(1, index)).sum(dim=1, keepdim=True) <= top_k) & valid
    seen = torch.bincount(index[valid], minlength=classes)[:classes].to(x.dtype)
    hits = torch.bincount(index[correct], minlength=classes)[:classes].to(x.dtype)
    return torch.where(seen > 0, hits / seen.clamp(min=1), torch.zeros_like(seen))


def caffe_global_stats_bn(x: torch.Tensor, bn: torch.nn.Module) -> torch.Tensor:
    """``bn`` (an ``nn.BatchNorm*d``) normalising with its running statistics in ``train()``
    too: Caffe's ``use_global_stats: true``, PSPNet's frozen BN."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0,
                        bn.eps)


def caffe_with_grad(value: torch.Tensor, slope: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``value`` forward, ``slope * dy`` backward to ``x``: where Caffe's backward is its own
    formula rather than the derivative of its forward (``x - x.detach()`` is 0; where ``x``
    is not finite the value passes unchanged and the gradient is 0)."""
    finite = torch.isfinite(x.detach())
    step = slope.detach() * torch.where(finite, x - x.detach(), torch.zeros_like(x))
    return value.detach() + torch.where(finite, step, torch.zeros_like(step))


def caffe_swish(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Caffe's Swish ``x * sigmoid(beta x)`` (Caffe's sigmoid); its backward
    ``beta y + s (1 - beta y)`` evaluated in double, from the output ``y``."""
    s = caffe_sigmoid(x.detach() * beta)
    y = x.detach() * s
    by = (y * beta).double()
    return caffe_with_grad(y, (by + s.double() * (1.0 - by)).to(x.dtype), x)


def caffe_clip(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Caffe's Clip ``max(low, min(x, high))`` (NaN gives ``low``); the gradient passes where
    ``low <= x <= high``, bounds included."""
    d = x.detach()
    upper = torch.where(d > high, torch.full_like(d, high), d)
    clipped = torch.where(upper > low, upper, torch.full_like(d, low))
    return torch.where((d >= low) & (d <= high), x, clipped)


def caffe_im2col(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...],
                 pad: tuple[int, ...], dilation: tuple[int, ...],
                 out: tuple[int, ...]) -> torch.Tensor:
    """Caffe's im2col of (B, C, *spatial): (B, C * K, *out), rows channel first, then the
    kernel offsets in raster order; cells outside the input read 0 (autograd's gradient is
    Caffe's col2im)."""
    spatial = x.shape[2:]
    widths = []
    for i in reversed(range(len(spatial))):
        reach = (out[i] - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1
        widths += [pad[i], max(0, reach - spatial[i] - pad[i])]
    xp = F.pad(x, widths)
    offsets = [()]
    for k in kernel:
        offsets = [o + (j,) for o in offsets for j in range(k)]
    cols = []
    for offset in offsets:
        index = [slice(o * d, o * d + (n - 1) * s + 1, s)
                 for o, d, n, s in zip(offset, dilation, out, stride)]
        cols.append(xp[(..., *index)])
    return torch.stack(cols, dim=2).reshape(x.shape[0], -1, *out)


def caffe_filter(selector: torch.Tensor, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Caffe's Filter: the rows of each bottom whose selector value is non-zero, in order (the
    batch is data-dependent); the selector gets no gradient."""
    chosen = selector.detach().reshape(selector.shape[0]) != 0
    index = torch.nonzero(chosen).flatten()
    return tuple(b.index_select(0, index) for b in bottoms)


def caffe_contrastive_loss(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, margin: float,
                           legacy: bool = False) -> torch.Tensor:
    """Caffe's ContrastiveLoss: similar pairs (``y`` truncated is non-zero) add ``d^2``,
    others ``max(margin - d, 0)^2`` (legacy: ``max(margin - d^2, 0)``), summed / N / 2. Its
    backward is Caffe's, dividing by ``d + 1e-4``; ``y`` gets no gradient."""
    n = a.shape[0]
    a, b = a.reshape(n, -1), b.reshape(n, -1)
    similar = y.detach().reshape(-1)[:n].trunc() != 0
    diff = (a - b).detach()
    dist_sq = (diff * diff).sum(dim=1)
    if legacy:
        mdist = margin - dist_sq
        dissimilar = torch.clamp(mdist, min=0)
        beta = torch.full_like(dist_sq, -1.0 / n)
    else:
        dist = torch.sqrt(dist_sq)
        mdist = margin - dist
        dissimilar = torch.clamp(mdist, min=0) ** 2
        beta = -mdist / (dist + 1e-4) / n
    value = torch.where(similar, dist_sq, dissimilar).sum() / n / 2
    scale = torch.where(similar, torch.full_like(beta, 1.0 / n),
                        torch.where(mdist > 0, beta, torch.zeros_like(beta)))
    surrogate = (scale[:, None] * diff * (a - b)).sum()
    return value + (surrogate - surrogate.detach())


def caffe_lstm_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """LSTMUnit's ``1 / (1 + exp(-x))``, in double, rounded once."""
    return (1.0 / (1.0 + torch.exp(-x.double()))).to(x.dtype)


def caffe_lstm_tanh(x: torch.Tensor) -> torch.Tensor:
    """LSTMUnit's ``2 sigmoid(2 x) - 1``, in double, rounded once."""
    return (2.0 / (1.0 + torch.exp(-2.0 * x.double())) - 1.0).to(x.dtype)


def caffe_lstm_unit(c_prev: torch.Tensor, gates: torch.Tensor,
                    cont: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Caffe's LSTMUnit: ``(c, h)`` from ``c_prev`` (..., H), the gate inputs (..., 4H) in the
    order (i, f, o, g) and ``cont`` (...): ``f = 0`` where ``cont`` is 0, else ``cont *
    sigmoid``; Caffe's backward uses ``f (1 - f)`` with ``f`` already scaled by ``cont``.
    ``cont`` gets no gradient."""
    pre = gates.reshape(*gates.shape[:-1], 4, c_prev.shape[-1])
    k = cont.detach().to(gates.dtype).unsqueeze(-1)
    act = [caffe_lstm_sigmoid(pre[..., j, :].detach()) for j in range(3)]
    act[1] = torch.where(k == 0, torch.zeros_like(act[1]), k * act[1])
    i, f, o = (caffe_with_grad(v, v * (1 - v), pre[..., j, :]) for j, v in enumerate(act))
    g = caffe_lstm_tanh(pre[..., 3, :].detach())
    g = caffe_with_grad(g, 1 - g * g, pre[..., 3, :])
    c = f * c_prev + i * g
    tanh_c = caffe_lstm_tanh(c.detach())
    return c, o * caffe_with_grad(tanh_c, 1 - tanh_c * tanh_c, c)


def caffe_recurrent_state(stored: tuple[torch.Tensor, ...] | None, count: int, n: int,
                          hidden: int, like: torch.Tensor) -> list[torch.Tensor]:
    """The state a recurrent layer's previous forward left (``expose_hidden: false``), as
    ``count`` (N, H) copies without gradient (dtype and device of ``like``): its first ``n``
    streams, zeros where it has none (never run, ``reset()``, or a batch larger than any
    before)."""
    if stored is None or stored[0].shape[0] < n:
        return [like.new_zeros((n, hidden)) for _ in range(count)]
    return [s[:n].to(device=like.device, dtype=like.dtype, copy=True) for s in stored]


def caffe_keep_state(stored: tuple[torch.Tensor, ...] | None,
                     final: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The state to carry to the next forward, as Caffe's ``h_T`` (``c_T``) blobs keep it: a
    smaller batch overwrites the first rows (later ones keep older values), a larger one
    starts afresh."""
    n = final[0].shape[0]
    if stored is None or stored[0].shape[0] < n:
        return tuple(s.detach().clone() for s in final)
    kept = []
    for old, new in zip(stored, final):
        buffer = old.to(device=new.device, dtype=new.dtype, copy=True)
        buffer[:n] = new.detach()
        kept.append(buffer)
    return tuple(kept)


def caffe_carry(stored: tuple[torch.Tensor, ...] | None, out: torch.Tensor,
                final: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``(out, the state to keep)`` of a recurrent layer with ``expose_hidden: false``."""
    return out, caffe_keep_state(stored, final)


def caffe_exposed(out: torch.Tensor, final: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """``out`` and the final state as (1, N, H) tops (``expose_hidden: true``): Caffe's
    ``h_T`` / ``c_T`` share data, not diff, with its unrolled net, so their consumers'
    gradient goes no further."""
    return (out, *(s.detach().unsqueeze(0) for s in final))


def caffe_recurrent_input(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                          x_static: torch.Tensor | None, w_static: torch.Tensor | None
                          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``W x_t + b`` for all T steps of ``x`` (T, N, ...) in one product (T, N, width), and
    the static input's ``W_static x_static`` (N, width) or None."""
    t, n = x.shape[:2]
    xw = (x.reshape(t * n, -1) @ w.t() + b).reshape(t, n, -1)
    if x_static is None:
        return xw, None
    return xw, x_static.reshape(n, -1) @ w_static.t()


def caffe_lstm(x: torch.Tensor, cont: torch.Tensor, state: list[torch.Tensor],
               w_xc: torch.Tensor, b_c: torch.Tensor, w_hc: torch.Tensor,
               x_static: torch.Tensor | None = None, w_static: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Caffe's LSTM over ``x`` (T, N, ...) with ``cont`` (T, N) from ``state`` (h_0, c_0):
    ``(h for every step (T, N, H), (h_T, c_T))``; ``cont_t`` multiplies ``h_{t-1}``."""
    xw, static = caffe_recurrent_input(x, w_xc, b_c, x_static, w_static)
    cont = cont.detach().to(x.dtype)
    h, c = state
    hs = []
    for t in range(xw.shape[0]):
        gates = (h * cont[t].unsqueeze(-1)) @ w_hc.t() + xw[t]
        if static is not None:
            gates = gates + static
        c, h = caffe_lstm_unit(c, gates, cont[t])
        hs.append(h)
    return torch.stack(hs), (h, c)


def caffe_rnn(x: torch.Tensor, cont: torch.Tensor, state: list[torch.Tensor],
              w_xh: torch.Tensor, b_h: torch.Tensor, w_hh: torch.Tensor, w_ho: torch.Tensor,
              b_o: torch.Tensor, x_static: torch.Tensor | None = None,
              w_static: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
    """Caffe's RNN: ``h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h)``, outputs
    ``o_t = tanh(W_ho h_t + b_o)`` (T, N, H) and the final ``(h_T,)``."""
    xw, static = caffe_recurrent_input(x, w_xh, b_h, x_static, w_static)
    cont = cont.detach().to(x.dtype)
    (h,) = state
    hs = []
    for t in range(xw.shape[0]):
        pre = (h * cont[t].unsqueeze(-1)) @ w_hh.t() + xw[t]
        if static is not None:
            pre = pre + static
        h = torch.tanh(pre)
        hs.append(h)
    hidden = torch.stack(hs)
    t, n = hidden.shape[:2]
    return torch.tanh(hidden.reshape(t * n, -1) @ w_ho.t() + b_o).reshape(t, n, -1), (h,)
