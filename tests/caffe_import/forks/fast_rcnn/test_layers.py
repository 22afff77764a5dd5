"""Faster R-CNN's ROIPooling and SmoothL1Loss (caffe-fast-rcnn, faster-rcnn branch) and the
opt-in py-faster-rcnn ProposalLayer, against transcriptions of the original code."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from support.forks import build, layer_param

F32 = np.float32
FLT_MAX = F32(3.4028234663852886e38)


def roi_pool_ref(x, rois, ph_, pw_, scale):
    """ROIPoolingLayer::Forward_cpu, loop by loop (values and argmax)."""
    n, c, h, w = x.shape
    out = np.full((len(rois), c, ph_, pw_), -FLT_MAX, F32)
    arg = np.full(out.shape, -1, np.int64)
    for r, roi in enumerate(rois):
        b = int(roi[0])
        sw, sh, ew, eh = (int(math.floor(abs(F32(v) * F32(scale)) + 0.5)) * (1 if F32(v) >= 0 else -1)
                          for v in roi[1:])
        rh, rw = max(eh - sh + 1, 1), max(ew - sw + 1, 1)
        bh, bw = F32(rh) / F32(ph_), F32(rw) / F32(pw_)
        for ch in range(c):
            for ph in range(ph_):
                for pw in range(pw_):
                    hs = min(max(int(math.floor(F32(ph) * bh)) + sh, 0), h)
                    he = min(max(int(math.ceil(F32(ph + 1) * bh)) + sh, 0), h)
                    ws = min(max(int(math.floor(F32(pw) * bw)) + sw, 0), w)
                    we = min(max(int(math.ceil(F32(pw + 1) * bw)) + sw, 0), w)
                    if he <= hs or we <= ws:
                        out[r, ch, ph, pw], arg[r, ch, ph, pw] = 0, -1
                    for i in range(hs, he):
                        for j in range(ws, we):
                            if x[b, ch, i, j] > out[r, ch, ph, pw]:
                                out[r, ch, ph, pw], arg[r, ch, ph, pw] = x[b, ch, i, j], i * w + j
    return out, arg


def test_roi_pooling_forward_and_argmax_backward_match_the_fork():
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (2, 3, 9, 11)).astype(F32)  # many ties: first maximum wins
    x[0, 1, 2, 3] = np.nan
    x[1, 0] = -np.inf
    rois = np.array([[0, 0, 0, 40, 30], [1, 8, 4, 35, 33], [0, 20, 10, 20, 10],
                     [1, -10, -6, 70, 90], [0, 38, 30, 100, 100], [1, 2.5, 6, 17.5, 22]], F32)
    layer = build('name: "roi" type: "ROIPooling" bottom: "f" bottom: "r" top: "p" '
                  'roi_pooling_param { pooled_h: 3 pooled_w: 4 spatial_scale: 0.25 }',
                  [x.shape, rois.shape], fork="fast-rcnn")
    xt = torch.tensor(x, requires_grad=True)
    (y,) = layer(xt, torch.tensor(rois))
    ref, arg = roi_pool_ref(x, rois, 3, 4, 0.25)
    np.testing.assert_array_equal(y.detach().numpy(), ref)
    g = rng.standard_normal(ref.shape).astype(F32)
    y.backward(torch.tensor(g))
    expect = np.zeros_like(x)  # ROIPoolBackward: each bin's diff to its argmax, summed
    for r, roi in enumerate(rois):
        for ch in range(3):
            for k, a in enumerate(arg[r, ch].reshape(-1)):
                if a >= 0:
                    expect[int(roi[0]), ch].reshape(-1)[a] += g[r, ch].reshape(-1)[k]
    np.testing.assert_allclose(xt.grad.numpy(), expect, rtol=1e-6, atol=1e-6)


def test_smooth_l1_loss_with_weights():
    layer = build('name: "l" type: "SmoothL1Loss" bottom: "a" bottom: "b" bottom: "wi" '
                  'bottom: "wo" top: "loss" smooth_l1_loss_param { sigma: 3 }',
                  [(2, 8, 1, 1)] * 4, fork="fast-rcnn")
    a, b = torch.randn(2, 8, 1, 1, requires_grad=True), torch.randn(2, 8, 1, 1)
    wi, wo = torch.rand(2, 8, 1, 1), torch.rand(2, 8, 1, 1)
    (loss,) = layer(a, b, wi, wo)
    d = (wi * (a - b)).detach().double()
    f = torch.where(d.abs() < 1 / 9, 0.5 * 9 * d * d, d.abs() - 0.5 / 9)
    assert math.isclose(float(loss.detach()), float((wo.double() * f).sum() / 2), rel_tol=1e-6)
    loss.backward()  # the fork's GPU backward: w_in * w_out * f'(d) / N
    fprime = torch.where(d.abs() < 1 / 9, 9 * d, torch.sign(d))
    assert torch.allclose(a.grad.double(), wi.double() * wo.double() * fprime / 2, atol=1e-6)


# ----------------------------------------------------------------------------- ProposalLayer
def proposal_ref(prob, deltas, im_info, feat_stride, cfg):
    """py-faster-rcnn ProposalLayer.forward with NumPy (stable sorts), float32."""
    from caffe_import.forks.fast_rcnn.layers import generate_anchors

    anchors0 = generate_anchors()
    a = anchors0.shape[0]
    scores = prob[:, a:]
    h, w = scores.shape[-2:]
    sx, sy = np.meshgrid(np.arange(w) * feat_stride, np.arange(h) * feat_stride)
    shifts = np.vstack((sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel())).T
    anchors = (anchors0.reshape(1, a, 4) + shifts.reshape(1, -1, 4).transpose(1, 0, 2))
    boxes = anchors.reshape(-1, 4).astype(F32)
    d = deltas.transpose(0, 2, 3, 1).reshape(-1, 4)
    sc = scores.transpose(0, 2, 3, 1).reshape(-1)
    wd, ht = boxes[:, 2] - boxes[:, 0] + F32(1), boxes[:, 3] - boxes[:, 1] + F32(1)
    cx, cy = boxes[:, 0] + F32(0.5) * wd, boxes[:, 1] + F32(0.5) * ht
    pcx, pcy = d[:, 0] * wd + cx, d[:, 1] * ht + cy
    pw, ph = np.exp(d[:, 2]) * wd, np.exp(d[:, 3]) * ht
    p = np.stack([pcx - F32(0.5) * pw, pcy - F32(0.5) * ph, pcx + F32(0.5) * pw,
                  pcy + F32(0.5) * ph], 1)
    p[:, 0::2] = np.maximum(np.minimum(p[:, 0::2], im_info[1] - 1), 0)
    p[:, 1::2] = np.maximum(np.minimum(p[:, 1::2], im_info[0] - 1), 0)
    ms = F32(cfg["min_size"]) * im_info[2]
    keep = np.where((p[:, 2] - p[:, 0] + 1 >= ms) & (p[:, 3] - p[:, 1] + 1 >= ms))[0]
    p, sc = p[keep], sc[keep]
    order = sc.argsort(kind="stable")[::-1][:cfg["pre_nms_top_n"]]
    p, sc = p[order], sc[order]
    order = sc.argsort(kind="stable")[::-1]  # py_cpu_nms sorts again
    areas = (p[:, 2] - p[:, 0] + 1) * (p[:, 3] - p[:, 1] + 1)
    kept = []
    while order.size > 0:
        i = order[0]
        kept.append(i)
        xx1, yy1 = np.maximum(p[i, 0], p[order[1:], 0]), np.maximum(p[i, 1], p[order[1:], 1])
        xx2, yy2 = np.minimum(p[i, 2], p[order[1:], 2]), np.minimum(p[i, 3], p[order[1:], 3])
        inter = np.maximum(F32(0), xx2 - xx1 + 1) * np.maximum(F32(0), yy2 - yy1 + 1)
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= cfg["nms_thresh"])[0] + 1]
    kept = kept[:cfg["post_nms_top_n"]]
    return np.hstack([np.zeros((len(kept), 1), F32), p[kept]]), sc[kept][:, None]


def test_proposal_layer_is_opt_in_and_matches_py_faster_rcnn():
    from caffe_import.errors import CaffeFormatError
    from caffe_import.forks.fast_rcnn.layers import disable_proposal_layer, enable_proposal_layer
    from caffe_import.layers.python_layer import PythonLayer

    text = ('name: "proposal" type: "Python" bottom: "prob" bottom: "pred" bottom: "im_info" '
            'top: "rois" top: "scores" python_param { module: "rpn.proposal_layer" '
            'layer: "ProposalLayer" param_str: "\'feat_stride\': 16" }')
    assert PythonLayer.resolve(layer_param(text, "fast-rcnn")) is None  # never by the file alone
    enable_proposal_layer(test={"pre_nms_top_n": 200, "post_nms_top_n": 40})
    try:
        rng = np.random.default_rng(5)
        h, w = 7, 9
        logits = rng.standard_normal((1, 2, 9, h, w))
        prob = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).reshape(1, 18, h, w)
        prob = prob.astype(F32)
        deltas = (rng.standard_normal((1, 36, h, w)) * 0.3).astype(F32)
        im_info = np.array([[100, 140, 1.5]], F32)
        layer = build(text, [prob.shape, deltas.shape, im_info.shape], fork="fast-rcnn")
        rois, scores = layer(torch.tensor(prob), torch.tensor(deltas), torch.tensor(im_info))
        cfg = dict(pre_nms_top_n=200, post_nms_top_n=40, nms_thresh=0.7, min_size=16)
        ref_rois, ref_scores = proposal_ref(prob, deltas, im_info[0], 16, cfg)
        assert rois.shape == ref_rois.shape and rois.shape[0] > 10
        np.testing.assert_array_equal(scores.numpy(), ref_scores)  # same boxes, same order
        # exp differs from NumPy's float32 exp in the last bit now and then
        np.testing.assert_allclose(rois.numpy(), ref_rois, rtol=2e-6, atol=0)
        with pytest.raises(CaffeFormatError, match="single-image"):
            layer(torch.tensor(prob).repeat(2, 1, 1, 1), torch.tensor(deltas),
                  torch.tensor(im_info))
    finally:
        disable_proposal_layer()
