"""Fast/Faster R-CNN's layers (rbgirshick/caffe-fast-rcnn, branch ``faster-rcnn``): ROIPooling and
SmoothL1Loss; and, **opt-in**, py-faster-rcnn's RPN ``ProposalLayer`` (a Python layer).

* **ROIPooling** (``roi_pooling_param``: pooled_h, pooled_w, spatial_scale): bottoms are the
  features ``(N, C, H, W)`` and rois ``(R, 5)`` = ``[batch, x1, y1, x2, y2]``. Roi corners are
  ``round(coord * spatial_scale)`` (half away from zero, as C's ``round``; not
  ``torch.round``), the roi is ``max(end - start + 1, 1)`` cells, bin ``p`` covers
  ``[floor(p * size / pooled), ceil((p + 1) * size / pooled))`` (float32 bin size) shifted by the
  start and clipped to the map. Each bin takes its first maximum in raster order (NaN is never
  picked); an empty bin gives 0, a bin of only ``-inf``/``-FLT_MAX`` gives ``-FLT_MAX``. The
  gradient goes to the argmax of each bin, summed over rois, as the fork's GPU kernel credits
  it: only argmaxes inside the roi's box and bins the kernel's own float32 bin search finds
  (its CPU backward is not implemented). Sizing the windows reads two counts from the device
  (the widest bin along each axis): unavoidable, the gather's width depends on them; under
  torch.export the feature map's height and width bound the windows instead (same result,
  more work), since a traced graph cannot be sized by the rois. A roi's batch index outside
  the batch is a ``CaffeFormatError`` on the CPU (the fork's CHECK); on other devices and
  while tracing it is not checked, as that would be one more read (the gather then fails).
* **SmoothL1Loss** (``smooth_l1_loss_param.sigma``; bottoms: prediction, target and optionally
  inside and outside weights): ``sum(w_out * f(w_in * (a - b))) / N`` with
  ``f(x) = 0.5 (sigma x)^2`` if ``|x| < 1 / sigma^2`` else ``|x| - 0.5 / sigma^2``. The fork has
  only a GPU implementation; its gradient (to both bottoms) is autograd's here.
* **ProposalLayer** (py-faster-rcnn ``lib/rpn/proposal_layer.py``): anchors, ``bbox_transform_inv``,
  clipping, the min-size filter, pre-NMS top N, NMS and post-NMS top N, with the phase's
  defaults of py-faster-rcnn's ``config.py``. A model file can name it but never loads it:
  call :func:`enable_proposal_layer` first. Exact score ties are ordered as NumPy's
  ``argsort()[::-1]`` orders them for a stable sort (the quicksort it uses may differ on ties).
"""
from __future__ import annotations

import ast
import math
from typing import Sequence

import numpy as np
import torch

from ...errors import CaffeFormatError
from ...layers.base import DTYPE_FLOAT32, FLT_MAX, CaffeLayer, Shape, check_arity, f32, tracing
from ...layers.python_layer import (PythonLayer, offer_builtin_python_layer, register_python_layer,
                                    unregister_python_layer)
from ...layers.registry import register

_CHUNK = 1 << 23  # elements per gathered block in ROIPooling


def c_round(x: torch.Tensor) -> torch.Tensor:
    """C's ``round``: halves away from zero (``torch.round`` rounds them to even)."""
    t = torch.trunc(x)
    return t + torch.where((x - t).abs() >= 0.5, torch.sign(x), torch.zeros_like(x))


# ----------------------------------------------------------------------------- ROIPooling
def _bins(start: torch.Tensor, end: torch.Tensor, pooled: int, limit: int):
    """Per roi and bin: the clipped window ``[lo, hi)`` along one axis (int64)."""
    size = torch.clamp(end - start + 1, min=1).to(torch.float32)
    bin_size = size / float(pooled)
    p = torch.arange(pooled, dtype=torch.float32, device=start.device)
    lo = torch.floor(p[None] * bin_size[:, None]).long() + start[:, None].long()
    hi = torch.ceil((p[None] + 1) * bin_size[:, None]).long() + start[:, None].long()
    return lo.clamp(0, limit), hi.clamp(0, limit)


def _window_max(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, span: int):
    """First maximum and its offset in windows ``[lo, min(lo + span, hi))`` along the last axis
    of ``x (r, A, B, L)``; ``lo``/``hi`` ``(r, bins)``. Returns two ``(r, A, B, bins)``."""
    r, bins = lo.shape
    pos = lo[:, :, None] + torch.arange(span, device=x.device)  # (r, bins, span)
    ok = (pos < hi[:, :, None]).reshape(r, 1, 1, bins, span)
    index = pos.clamp(max=x.shape[-1] - 1).reshape(r, 1, 1, bins * span)
    vals = x.gather(3, index.expand(r, x.shape[1], x.shape[2], bins * span))
    vals = vals.reshape(r, x.shape[1], x.shape[2], bins, span).masked_fill(~ok, -math.inf)
    best = vals.amax(dim=-1)
    first = (vals == best[..., None]).to(torch.uint8).argmax(dim=-1)
    return best, first


@register("ROIPooling", fork="fast-rcnn")
class ROIPooling(CaffeLayer):
    """Fast R-CNN's RoI max pooling (see the module docstring)."""
    #: float32 even under precision='fast': each bin's max and argmax are discrete choices
    dtype_policy = DTYPE_FLOAT32
    host_reads = ("the widest bin over all rois sizes the pooling windows (eager only; traced, "
                  "the feature map's size bounds them); on the CPU also the roi batch check")


    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 2, 1, "features, rois")
        p = param.roi_pooling_param
        self.pooled = (int(p.pooled_h), int(p.pooled_w))
        if min(self.pooled) <= 0:
            raise CaffeFormatError(f"pooled_h and pooled_w must be > 0, got {self.pooled}",
                                   layer=param.name)
        self.spatial_scale = f32(p.spatial_scale)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        feat, rois = (tuple(s) for s in bottom_shapes)
        if len(feat) != 4 or len(rois) < 2 or math.prod(rois[1:]) != 5:
            raise CaffeFormatError(f"ROIPooling needs features (N, C, H, W) and rois (R, 5), "
                                   f"got {feat} and {rois}", layer=self.name)
        return [(rois[0], feat[1], *self.pooled)]

    def example_bottom(self, index: int, shape: Sequence[int], gen: torch.Generator
                       ) -> torch.Tensor | None:
        """Valid rois of ``shape`` for tracing and checking an export: ``(batch, x1, y1, x2,
        y2)`` with the batch index in range and the box inside the image the features come
        from (their size over ``spatial_scale``). None for the features."""
        if index != 1:
            return None
        n, _, h, w = self.bottom_shapes[0]
        r = int(shape[0])
        size = torch.tensor([w, h, w, h], dtype=torch.float32) / float(self.spatial_scale)
        xy = torch.rand((r, 4), generator=gen) * size
        lo, hi = torch.minimum(xy[:, :2], xy[:, 2:]), torch.maximum(xy[:, :2], xy[:, 2:])
        batch = torch.randint(0, n, (r, 1), generator=gen).to(torch.float32)
        return torch.cat([batch, lo, hi], dim=1).reshape(tuple(shape))

    def _indices(self, x: torch.Tensor, rois: torch.Tensor):
        """Flat argmax ``h * W + w`` per (roi, c, ph, pw) (-1: none), the emptiness mask, each
        roi's batch index and its rounded corners ``(x1, y1, x2, y2)``."""
        n, c, h, w = x.shape
        rois = rois.detach().reshape(-1, 5).to(torch.float32)
        batch = rois[:, 0].trunc().long()
        traced = tracing()  # torch.export cannot branch on, or size by, the rois' values
        if not traced and batch.numel() and x.device.type == "cpu" and (
                int(batch.min()) < 0 or int(batch.max()) >= n):
            raise CaffeFormatError(f"roi batch index outside [0, {n})", layer=self.name)
        corners = c_round(rois[:, 1:] * self.spatial_scale)
        hs, he = _bins(corners[:, 1], corners[:, 3], self.pooled[0], h)
        ws, we = _bins(corners[:, 0], corners[:, 2], self.pooled[1], w)
        # the widest window; traced, the feature map's size bounds every (clipped) window
        span_h = h if traced else max(1, int((he - hs).max())) if hs.numel() else 1
        span_w = w if traced else max(1, int((we - ws).max())) if ws.numel() else 1
        x = x.detach()
        x = x.masked_fill(torch.isnan(x) | (x <= -FLT_MAX), -math.inf)
        per_roi = c * max(h * self.pooled[1] * span_w, self.pooled[0] * span_h * self.pooled[1])
        step = max(1, _CHUNK // max(per_roi, 1))
        out = []
        for s in range(0, rois.shape[0], step):
            sl = slice(s, s + step)
            feat = x[batch[sl]]  # (r, C, H, W)
            m1, j1 = _window_max(feat, ws[sl], we[sl], span_w)  # (r, C, H, PW)
            m2, j2 = _window_max(m1.transpose(2, 3), hs[sl], he[sl], span_h)  # (r, C, PW, PH)
            m2, j2 = m2.transpose(2, 3), j2.transpose(2, 3)
            row = (hs[sl][:, None, :, None] + j2).clamp(max=h - 1)
            col = ws[sl][:, None, None, :] + j1.gather(2, row)
            flat = torch.where(m2 > -math.inf, row * w + col, torch.full_like(row, -1))
            out.append(flat)
        flat = torch.cat(out) if out else torch.zeros((0, c, *self.pooled), dtype=torch.long,
                                                      device=x.device)
        empty = (he <= hs)[:, None, :, None] | (we <= ws)[:, None, None, :]
        return flat, empty.expand_as(flat), batch, corners.long()

    def _credited(self, flat: torch.Tensor, corners: torch.Tensor, width: int) -> torch.Tensor:
        """Which bins pass their gradient to their argmax in the fork's ``ROIPoolBackward``
        kernel: the argmax lies inside the roi's (rounded) box and the bin is among those the
        kernel finds for it (``floor((h - start) / bin)`` to ``ceil((h - start + 1) / bin)``, in
        float32). An inverted roi (x2 < x1) pools in the forward but passes no gradient."""
        h, w = flat // width, flat % width
        ok = flat >= 0
        for axis, pos in ((0, h), (1, w)):
            start = corners[:, 1 - axis][:, None, None, None]
            end = corners[:, 3 - axis][:, None, None, None]
            pooled = self.pooled[axis]
            size = torch.clamp(end - start + 1, min=1).to(torch.float32)
            bin_size = size / float(pooled)
            lo = torch.floor((pos - start).to(torch.float32) / bin_size).long().clamp(0, pooled)
            hi = torch.ceil((pos - start + 1).to(torch.float32) / bin_size).long().clamp(
                0, pooled)
            p = torch.arange(pooled, device=flat.device)
            p = p.view(1, 1, -1, 1) if axis == 0 else p.view(1, 1, 1, -1)
            ok = ok & (pos >= start) & (pos <= end) & (p >= lo) & (p < hi)
        return ok

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(x.shape), tuple(rois.shape)])
        with torch.no_grad():
            flat, empty, batch, corners = self._indices(x, rois)
        n, c, h, w = x.shape
        planes = x.reshape(n * c, h * w)
        plane = (batch[:, None] * c + torch.arange(c, device=x.device)[None])[:, :, None, None]
        picked = planes[plane.expand_as(flat), flat.clamp(min=0)]
        if picked.requires_grad:  # gradient only where the fork's backward kernel gives one
            with torch.no_grad():
                credited = self._credited(flat, corners, w)
            picked = torch.where(credited, picked, picked.detach())
        none = torch.full_like(picked, -FLT_MAX)
        y = torch.where(flat >= 0, picked, none)
        return (torch.where(empty, torch.zeros_like(y), y),)


# ----------------------------------------------------------------------------- SmoothL1Loss
@register("SmoothL1Loss", fork="fast-rcnn")
class SmoothL1Loss(CaffeLayer):
    """Faster R-CNN's smooth L1 loss (see the module docstring); top: a scalar.

    Unlike Caffe's other ``*Loss`` layers it has no default ``loss_weight`` (its setup skips
    LossLayer's): without one its top is computed but nothing back-propagates from it. The
    inside and outside weights get no gradient, as in the fork."""
    #: float32 even under precision='fast': a loss: sums over many positions
    dtype_policy = DTYPE_FLOAT32


    loss_by_default = False

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, (2, 4), 1, "prediction, target[, inside and outside weights]")
        sigma = f32(param.smooth_l1_loss_param.sigma)
        self.sigma2 = f32(sigma * sigma)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shapes = [tuple(s) for s in bottom_shapes]
        for s in shapes[1:]:
            # the fork checks C, H, W and then reads bottom 0's count from every bottom
            if s[1:] != shapes[0][1:] or s[:1] != shapes[0][:1]:
                raise CaffeFormatError(f"bottoms {shapes} must have the same shape",
                                       layer=self.name)
        return [()]

    def forward(self, a: torch.Tensor, b: torch.Tensor, *weights: torch.Tensor
                ) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(t.shape) for t in (a, b, *weights)])
        weights = tuple(w.detach() for w in weights)
        d = a - b
        if weights:
            d = weights[0] * d
        # the fork's kernel mixes float values with double constants: compute in double,
        # store as float, as it does
        dd = d.double()
        absd = dd.abs()
        err = torch.where(absd < 1.0 / self.sigma2, 0.5 * dd * dd * self.sigma2,
                          absd - 0.5 / self.sigma2).to(d.dtype)
        if weights:
            err = weights[1] * err
        return (err.sum() / a.shape[0],)


# ----------------------------------------------------------------------------- ProposalLayer
#: py-faster-rcnn's cfg.TRAIN / cfg.TEST defaults (lib/fast_rcnn/config.py)
PROPOSAL_DEFAULTS = {
    "train": dict(pre_nms_top_n=12000, post_nms_top_n=2000, nms_thresh=0.7, min_size=16),
    "test": dict(pre_nms_top_n=6000, post_nms_top_n=300, nms_thresh=0.7, min_size=16),
}


def generate_anchors(base_size: int = 16, ratios=(0.5, 1, 2), scales=(8, 16, 32)) -> np.ndarray:
    """py-faster-rcnn's ``generate_anchors`` (float64, NumPy's round-half-to-even)."""
    def whctrs(a):
        w, h = a[2] - a[0] + 1, a[3] - a[1] + 1
        return w, h, a[0] + 0.5 * (w - 1), a[1] + 0.5 * (h - 1)

    def mk(ws, hs, x, y):
        ws, hs = ws[:, None], hs[:, None]
        return np.hstack((x - 0.5 * (ws - 1), y - 0.5 * (hs - 1), x + 0.5 * (ws - 1),
                          y + 0.5 * (hs - 1)))

    w, h, x, y = whctrs(np.array([1, 1, base_size, base_size], dtype=np.float64) - 1)
    ws = np.round(np.sqrt(w * h / np.asarray(ratios, dtype=np.float64)))
    hs = np.round(ws * np.asarray(ratios, dtype=np.float64))
    ratio_anchors = mk(ws, hs, x, y)
    out = []
    for a in ratio_anchors:
        w, h, x, y = whctrs(a)
        s = np.asarray(scales, dtype=np.float64)
        out.append(mk(w * s, h * s, x, y))
    return np.vstack(out)


def _parse_param_str(text: str, layer: str) -> dict:
    """The layer's ``param_str`` (YAML or a Python dict literal), parsed without running code."""
    try:
        import yaml  # lazy: optional (PyYAML is not a dependency; a dict literal also works)

        value = yaml.safe_load(text)
    except ImportError:  # pragma: no cover - PyYAML is usually present
        value = None
    except Exception as e:
        raise CaffeFormatError(f"param_str {text!r} is not valid YAML: {e}", layer=layer) from e
    if not isinstance(value, dict):
        try:
            value = ast.literal_eval(text if text.strip().startswith("{") else "{%s}" % text)
        except (ValueError, SyntaxError) as e:
            raise CaffeFormatError(f"param_str {text!r} is not a mapping", layer=layer) from e
    if "feat_stride" not in value:
        raise CaffeFormatError("param_str must give feat_stride", layer=layer)
    return value


def _desc_order(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argsort()[::-1]`` with a stable ascending sort."""
    return torch.sort(scores, stable=True).indices.flip(0)


def proposal_nms(boxes: torch.Tensor, scores: torch.Tensor, thresh: float, limit: int
                 ) -> torch.Tensor:
    """py-faster-rcnn's ``nms`` (pixel boxes, ``+1`` areas, float32), stopping after ``limit``
    kept boxes (those after it are cut by post-NMS top N anyway); indices in keep order."""
    order = _desc_order(scores)
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
        ovr = inter / (areas[i] + areas[rest] - inter)
        order = rest[ovr <= thresh]
    if not keep:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    return torch.stack(keep)


class ProposalLayer(PythonLayer):
    """py-faster-rcnn's RPN proposal layer as a built-in (enable with
    :func:`enable_proposal_layer`). Bottoms: ``rpn_cls_prob_reshape (1, 2A, H, W)``,
    ``rpn_bbox_pred (1, 4A, H, W)``, ``im_info (1, 3)`` = (height, width, scale); tops: rois
    ``(R, 5)`` and optionally scores ``(R, 1)``. Not differentiable (the original has no
    backward). Batches of one image only, as the original. Host reads: ``im_info``, and one
    per kept box in the greedy NMS (its candidate list shrinks by data-dependent masks), as
    the original's NumPy loop does on the host."""

    settings: dict = {}
    host_reads = "im_info, and each kept box of the greedy NMS (the number of rois is data)"

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 3, (1, 2), "scores, deltas, im_info")
        conf = _parse_param_str(self.param_str, param.name)
        self.feat_stride = int(conf["feat_stride"])
        self.anchors = generate_anchors(scales=np.array(conf.get("scales", (8, 16, 32))))
        self.cfg = {**PROPOSAL_DEFAULTS[phase], **self.settings.get(phase, {})}

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [(1, 5), (1, 1)][:len(self.param.top)]  # the original's setup; forward resizes

    def _proposals(self, deltas: torch.Tensor, h: int, w: int) -> torch.Tensor:
        a = self.anchors.shape[0]
        sx, sy = np.meshgrid(np.arange(w) * self.feat_stride, np.arange(h) * self.feat_stride)
        shifts = np.vstack((sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel())).T
        anchors = (self.anchors[None] + shifts[:, None]).reshape(-1, 4).astype(np.float32)
        boxes = torch.from_numpy(anchors).to(deltas.device)
        d = deltas.permute(0, 2, 3, 1).reshape(-1, 4).to(torch.float32)
        widths = boxes[:, 2] - boxes[:, 0] + 1.0
        heights = boxes[:, 3] - boxes[:, 1] + 1.0
        cx, cy = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
        pcx, pcy = d[:, 0] * widths + cx, d[:, 1] * heights + cy
        pw, ph = torch.exp(d[:, 2]) * widths, torch.exp(d[:, 3]) * heights
        assert a * h * w == d.shape[0]
        return torch.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph], 1)

    def forward(self, cls_prob: torch.Tensor, deltas: torch.Tensor, im_info: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        if cls_prob.shape[0] != 1:
            raise CaffeFormatError("ProposalLayer supports single-image batches only",
                                   layer=self.name)
        with torch.no_grad():
            a = self.anchors.shape[0]
            h, w = cls_prob.shape[-2:]
            scores = cls_prob[:, a:].permute(0, 2, 3, 1).reshape(-1).to(torch.float32)
            boxes = self._proposals(deltas, h, w)
            info = im_info.reshape(-1).to(torch.float32).cpu().numpy()
            lim = torch.tensor([info[1] - 1, info[0] - 1, info[1] - 1, info[0] - 1],
                               dtype=torch.float32, device=boxes.device)
            boxes = torch.maximum(torch.minimum(boxes, lim), torch.zeros_like(boxes))
            min_size = np.float32(self.cfg["min_size"]) * info[2]
            ws, hs = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
            keep = (ws >= float(min_size)) & (hs >= float(min_size))
            boxes, scores = boxes[keep], scores[keep]
            order = _desc_order(scores)
            if self.cfg["pre_nms_top_n"] > 0:
                order = order[:self.cfg["pre_nms_top_n"]]
            boxes, scores = boxes[order], scores[order]
            kept = proposal_nms(boxes, scores, self.cfg["nms_thresh"],
                                self.cfg["post_nms_top_n"])
            boxes, scores = boxes[kept], scores[kept]
            rois = torch.cat([torch.zeros_like(boxes[:, :1]), boxes], 1).to(cls_prob.dtype)
        return (rois, scores[:, None].to(cls_prob.dtype))[:len(self.param.top)]


def enable_proposal_layer(module: str = "rpn.proposal_layer", layer: str = "ProposalLayer",
                          **settings) -> None:
    """Let nets whose ``python_param`` names ``module``/``layer`` (py-faster-rcnn's names by
    default) build the built-in :class:`ProposalLayer`. ``settings`` override py-faster-rcnn's
    cfg per phase: ``train={...}`` / ``test={...}`` with keys ``pre_nms_top_n``,
    ``post_nms_top_n``, ``nms_thresh``, ``min_size``."""
    unknown = set(settings) - {"train", "test"}
    if unknown:
        raise TypeError(f"settings are given per phase (train=, test=), not {sorted(unknown)}")
    for phase, values in settings.items():
        bad = set(values) - set(PROPOSAL_DEFAULTS[phase])
        if bad:
            raise TypeError(f"unknown proposal settings {sorted(bad)}")
    cls = type("ProposalLayer", (ProposalLayer,), {"settings": dict(settings)})
    register_python_layer(module, layer, cls)


def disable_proposal_layer(module: str = "rpn.proposal_layer",
                           layer: str = "ProposalLayer") -> None:
    """Undo :func:`enable_proposal_layer`."""
    unregister_python_layer(module, layer)


offer_builtin_python_layer("rpn.proposal_layer", "ProposalLayer", ProposalLayer,
                           "caffe_import.forks.fast_rcnn.layers.enable_proposal_layer()")
