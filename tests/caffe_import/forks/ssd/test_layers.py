"""SSD's layers against loop-by-loop transcriptions of the fork's CPU code (weiliu89/caffe, ssd:
normalize_layer.cpp, prior_box_layer.cpp, detection_output_layer.cpp, util/bbox_util.cpp)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from support.forks import build

F32 = np.float32


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


# ------------------------------------------------------------------ Normalize
def normalize_ref(x, scale, across, eps):
    """NormalizeLayer::Forward_cpu and Backward_cpu for top_diff g (returns y, dx, dscale)."""
    n, c = x.shape[:2]
    xs = x.reshape(n, c, -1).astype(np.float64)
    s = np.broadcast_to(scale.reshape(-1, 1), (c, 1)) if scale.size > 1 else scale.reshape(1, 1)
    if across:
        norm = np.sqrt((xs ** 2).sum(axis=(1, 2), keepdims=True) + eps)
    else:
        norm = np.sqrt((xs ** 2).sum(axis=1, keepdims=True) + eps)
    y = xs / norm * s
    return y.reshape(x.shape), norm


@pytest.mark.parametrize("across,shared", [(True, True), (False, False), (False, True),
                                           (True, False)])
def test_normalize_forward_and_fork_backward(across, shared):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3, 4)).astype(F32)
    snippet = f"""name: "n" type: "Normalize" bottom: "x" top: "y"
      norm_param {{ across_spatial: {str(across).lower()} channel_shared: {str(shared).lower()}
                   scale_filler {{ type: "constant" value: 20 }} eps: 1e-10 }}"""
    layer = build(snippet, [x.shape])
    if not shared:
        with torch.no_grad():
            layer.blobs[0].copy_(torch.linspace(1, 3, 5))
    scale = layer.blobs[0].detach().numpy().copy()
    xt = torch.tensor(x, requires_grad=True)
    (y,) = layer(xt)
    ref, norm = normalize_ref(x, scale, across, 1e-10)
    assert rel_l2(y.detach().numpy(), ref) < 1e-6
    g = rng.standard_normal(x.shape).astype(F32)
    y.backward(torch.tensor(g))
    # the fork's backward, literally: (g - x * <x, g> / norm^2) / norm, then times the scale
    n, c = x.shape[:2]
    xs, gs = x.reshape(n, c, -1).astype(np.float64), g.reshape(n, c, -1).astype(np.float64)
    dot = (xs * gs).sum(axis=(1, 2) if across else 1, keepdims=True)
    s = scale.reshape(1, -1, 1) if scale.size > 1 else scale.reshape(1, 1, 1)
    dx = (gs - xs * dot / norm ** 2) / norm * s
    assert rel_l2(xt.grad.numpy().reshape(dx.shape), dx) < 1e-5
    yt = ref.reshape(n, c, -1)
    dscale = (yt * gs).sum(axis=(0, 2)) / scale if not shared else (yt * gs).sum() / scale
    assert rel_l2(layer.blobs[0].grad.numpy(), dscale) < 1e-5


def test_normalize_scale_blob_shape_follows_channel_shared():
    shared = build('name: "n" type: "Normalize" bottom: "x" top: "y"', [(1, 4, 2, 2)])
    per = build('name: "n" type: "Normalize" bottom: "x" top: "y" norm_param { '
                'channel_shared: false }', [(1, 4, 2, 2)])
    assert shared.blob_shapes() == [()] and per.blob_shapes() == [(4,)]
    assert float(shared.blobs[0].detach()) == 1.0  # the fork's default scale filler


# ------------------------------------------------------------------ Permute
def test_permute_appends_unnamed_axes_in_order():
    layer = build('name: "p" type: "Permute" bottom: "x" top: "y" permute_param { order: 0 '
                  'order: 2 }', [(2, 3, 4, 5)])
    x = torch.arange(120.0).reshape(2, 3, 4, 5)
    (y,) = layer(x)
    assert layer.top_shapes([(2, 3, 4, 5)]) == [(2, 4, 3, 5)]
    assert torch.equal(y, x.permute(0, 2, 1, 3))


# ------------------------------------------------------------------ PriorBox
def prior_box_ref(h, w, img_h, img_w, min_sizes, max_sizes, ratios_in, flip, clip, variance,
                  step=None, offset=0.5):
    """PriorBoxLayer::Forward_cpu, loop by loop, float32 where the fork uses float."""
    ratios = [1.0]
    for ar in ratios_in:
        ar = F32(ar)
        if not any(abs(ar - r) < 1e-6 for r in ratios):
            ratios.append(ar)
            if flip:
                ratios.append(F32(1.0 / ar))
    step_w = F32(img_w) / F32(w) if step is None else F32(step)
    step_h = F32(img_h) / F32(h) if step is None else F32(step)
    out = []
    for i in range(h):
        for j in range(w):
            cx, cy = (F32(j) + F32(offset)) * step_w, (F32(i) + F32(offset)) * step_h
            for s, mn in enumerate(min_sizes):
                m = int(mn)
                sizes = [(m, m)]
                if max_sizes:
                    sizes.append((F32(math.sqrt(m * int(max_sizes[s]))),) * 2)
                sizes += [(F32(m * math.sqrt(ar)), F32(m / math.sqrt(ar))) for ar in ratios
                          if abs(ar - 1.0) >= 1e-6]
                for bw, bh in sizes:
                    out += [F32((float(cx) - bw / 2.) / img_w), F32((float(cy) - bh / 2.) / img_h),
                            F32((float(cx) + bw / 2.) / img_w), F32((float(cy) + bh / 2.) / img_h)]
    out = np.array(out, F32)
    if clip:
        out = np.clip(out, 0, 1)
    var = np.tile(np.array(variance, F32), len(out) // len(variance))
    return np.stack([out, var])[None]


@pytest.mark.parametrize("case", [
    dict(min_sizes=[30.0], max_sizes=[60.0], ratios=[2.0], flip=True, clip=False,
         variance=[0.1, 0.1, 0.2, 0.2], step=8),
    dict(min_sizes=[60.7, 20.0], max_sizes=[], ratios=[2.0, 3.0, 2.0], flip=False, clip=True,
         variance=[0.1], step=None),
])
def test_prior_box_matches_the_fork_loop(case):
    ratios = "".join(f" aspect_ratio: {r}" for r in case["ratios"])
    fields = "".join(f" min_size: {v}" for v in case["min_sizes"]) + \
        "".join(f" max_size: {v}" for v in case["max_sizes"]) + ratios + \
        "".join(f" variance: {v}" for v in case["variance"]) + \
        f" flip: {str(case['flip']).lower()} clip: {str(case['clip']).lower()}" + \
        (f" step: {case['step']}" if case["step"] else "")
    layer = build(f'name: "pb" type: "PriorBox" bottom: "f" bottom: "img" top: "p" '
                  f'prior_box_param {{ {fields} }}', [(1, 4, 3, 5), (1, 3, 37, 45)])
    (out,) = layer(torch.zeros(1, 4, 3, 5), torch.zeros(1, 3, 37, 45))
    ref = prior_box_ref(3, 5, 37, 45, case["min_sizes"], case["max_sizes"], case["ratios"],
                        case["flip"], case["clip"], case["variance"], case["step"])
    assert out.shape == ref.shape == tuple(layer.top_shapes([(1, 4, 3, 5), (1, 3, 37, 45)])[0])
    np.testing.assert_array_max_ulp(out.numpy(), ref, maxulp=1)


# ------------------------------------------------------------------ DetectionOutput
def _decode_ref(prior, var, loc, code, in_target):
    p0, p1, p2, p3 = (F32(v) for v in prior)
    l0, l1, l2, l3 = (F32(v) for v in loc)
    v = [F32(1)] * 4 if in_target else [F32(x) for x in var]
    if code == 1:
        return [p0 + v[0] * l0, p1 + v[1] * l1, p2 + v[2] * l2, p3 + v[3] * l3]
    pw, ph = p2 - p0, p3 - p1
    if code == 3:
        return [p0 + v[0] * l0 * pw, p1 + v[1] * l1 * ph, p2 + v[2] * l2 * pw,
                p3 + v[3] * l3 * ph]
    cx, cy = (p0 + p2) / F32(2), (p1 + p3) / F32(2)
    dcx, dcy = v[0] * l0 * pw + cx, v[1] * l1 * ph + cy
    dw, dh = np.exp(v[2] * l2) * pw, np.exp(v[3] * l3) * ph
    return [dcx - dw / F32(2), dcy - dh / F32(2), dcx + dw / F32(2), dcy + dh / F32(2)]


def _size_ref(b):
    if b[2] < b[0] or b[3] < b[1]:
        return F32(0)
    return F32((b[2] - b[0]) * (b[3] - b[1]))


def _jaccard_ref(a, b):
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return F32(0)
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw > 0 and ih > 0:
        inter = F32(iw * ih)
        return F32(inter / (_size_ref(a) + _size_ref(b) - inter))
    return F32(0)


def _nms_ref(boxes, scores, thresh, nms, eta, top_k):
    pairs = [(s, i) for i, s in enumerate(scores) if s > thresh]
    pairs.sort(key=lambda t: -t[0])  # stable, like std::stable_sort
    if top_k > -1:
        pairs = pairs[:top_k]
    kept, adaptive = [], F32(nms)
    for _, idx in pairs:
        keep = all(_jaccard_ref(boxes[idx], boxes[k]) <= adaptive for k in kept)
        if keep:
            kept.append(idx)
            if eta < 1 and adaptive > 0.5:
                adaptive = F32(adaptive * F32(eta))
    return kept


def detection_ref(loc, conf, prior, num_classes, share, bg, code, in_target, keep_top_k,
                  thresh, nms, eta, top_k):
    """DetectionOutputLayer::Forward_cpu, transcribed."""
    n = loc.shape[0]
    p = prior.shape[2] // 4
    lc = 1 if share else num_classes
    loc = loc.reshape(n, p, lc, 4)
    conf = conf.reshape(n, p, num_classes)
    pri, var = prior[0, 0].reshape(p, 4), prior[0, 1].reshape(p, 4)
    rows = []
    for i in range(n):
        boxes = {c: [_decode_ref(pri[j], var[j], loc[i, j, c], code, in_target)
                     for j in range(p)] for c in range(lc)}
        indices = {}
        for c in range(num_classes):
            if c == bg:
                continue
            indices[c] = _nms_ref(boxes[0 if share else c], conf[i, :, c], thresh, nms, eta,
                                  top_k)
        total = sum(len(v) for v in indices.values())
        if keep_top_k > -1 and total > keep_top_k:
            pairs = [(conf[i, j, c], c, j) for c in sorted(indices) for j in indices[c]]
            pairs.sort(key=lambda t: -t[0])
            pairs = pairs[:keep_top_k]
            indices = {}
            for _, c, j in pairs:
                indices.setdefault(c, []).append(j)
        for c in sorted(indices):
            for j in indices[c]:
                rows.append([i, c, conf[i, j, c], *boxes[0 if share else c][j]])
    if not rows:
        return np.array([[i] + [-1] * 6 for i in range(n)], F32).reshape(1, 1, n, 7)
    return np.array(rows, F32).reshape(1, 1, -1, 7)


def _ssd_inputs(rng, n, p, classes, share, sharp=3.0):
    lc = 1 if share else classes
    centres = rng.uniform(0.1, 0.9, (p, 2))
    sizes = rng.uniform(0.05, 0.4, (p, 2))
    pri = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1).astype(F32)
    var = np.tile(np.array([0.1, 0.1, 0.2, 0.2], F32), (p, 1))
    prior = np.stack([pri.reshape(-1), var.reshape(-1)])[None].astype(F32)
    loc = (rng.standard_normal((n, p * lc * 4)) * 0.5).astype(F32)
    logits = rng.standard_normal((n, p, classes)) * sharp
    conf = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return loc, conf.reshape(n, -1).astype(F32), prior


DET_CASES = [
    dict(share=True, bg=0, code=2, in_target=False, keep=-1, thresh=0.01, nms=0.45, eta=1.0,
         top_k=400),
    dict(share=True, bg=0, code=2, in_target=False, keep=25, thresh=0.05, nms=0.3, eta=1.0,
         top_k=60),
    dict(share=False, bg=-1, code=1, in_target=False, keep=-1, thresh=0.2, nms=0.5, eta=0.8,
         top_k=-1),
    dict(share=True, bg=2, code=3, in_target=True, keep=10, thresh=None, nms=0.7, eta=0.9,
         top_k=30),
    dict(share=True, bg=0, code=2, in_target=True, keep=-1, thresh=0.3, nms=0.0, eta=1.0,
         top_k=5),
]


@pytest.mark.parametrize("case", DET_CASES)
def test_detection_output_rows_and_order_match_the_fork(case):
    rng = np.random.default_rng(7)
    n, p, classes = 2, 60, 4
    loc, conf, prior = _ssd_inputs(rng, n, p, classes, case["share"])
    thr = "" if case["thresh"] is None else f"confidence_threshold: {case['thresh']}"
    snippet = f"""name: "det" type: "DetectionOutput" bottom: "loc" bottom: "conf"
      bottom: "prior" top: "out"
      detection_output_param {{ num_classes: {classes} share_location: {str(case['share']).lower()}
        background_label_id: {case['bg']} code_type: {['', 'CORNER', 'CENTER_SIZE',
        'CORNER_SIZE'][case['code']]} variance_encoded_in_target: {str(case['in_target']).lower()}
        keep_top_k: {case['keep']} {thr}
        nms_param {{ nms_threshold: {case['nms']} eta: {case['eta']}
                     {'' if case['top_k'] < 0 else f"top_k: {case['top_k']}"} }} }}"""
    layer = build(snippet, [loc.shape, conf.shape, prior.shape])
    (out,) = layer(torch.tensor(loc), torch.tensor(conf), torch.tensor(prior))
    ref = detection_ref(loc, conf, prior, classes, case["share"], case["bg"], case["code"],
                        case["in_target"], case["keep"],
                        F32(-3.4028234663852886e38 if case["thresh"] is None else case["thresh"]),
                        case["nms"], case["eta"], case["top_k"])
    assert out.shape == ref.shape and ref.shape[2] > 5
    np.testing.assert_array_equal(out[..., :3].numpy(), ref[..., :3])  # image, label, score
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=2e-7)


def test_detection_output_empty_batch_gives_one_minus_one_row_per_image():
    rng = np.random.default_rng(1)
    loc, conf, prior = _ssd_inputs(rng, 3, 10, 3, True)
    layer = build('name: "d" type: "DetectionOutput" bottom: "l" bottom: "c" bottom: "p" '
                  'top: "o" detection_output_param { num_classes: 3 confidence_threshold: 1.5 '
                  'nms_param { nms_threshold: 0.45 } }', [loc.shape, conf.shape, prior.shape])
    (out,) = layer(torch.tensor(loc), torch.tensor(conf), torch.tensor(prior))
    expect = np.full((1, 1, 3, 7), -1, F32)
    expect[0, 0, :, 0] = [0, 1, 2]
    np.testing.assert_array_equal(out.numpy(), expect)


def test_detection_output_reads_only_the_first_priors_of_a_batched_prior_blob():
    """The fork takes ``num_priors`` from the prior blob's height and reads the first
    ``2 * num_priors * 4`` values: a prior blob computed for a batch gives the same rows."""
    rng = np.random.default_rng(2)
    loc, conf, prior = _ssd_inputs(rng, 2, 12, 3, True)
    batched = np.concatenate([prior, prior[:, ::-1]])
    text = ('name: "d" type: "DetectionOutput" bottom: "l" bottom: "c" bottom: "p" top: "o" '
            'detection_output_param { num_classes: 3 nms_param { nms_threshold: 0.45 } }')
    outs = [build(text, [loc.shape, conf.shape, p.shape])(
        torch.tensor(loc), torch.tensor(conf), torch.tensor(p.copy()))[0] for p in (prior, batched)]
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_detection_output_checks_prediction_counts():
    from caffe_import.errors import CaffeFormatError

    with pytest.raises(CaffeFormatError, match="location predictions"):
        build('name: "d" type: "DetectionOutput" bottom: "l" bottom: "c" bottom: "p" top: "o" '
              'detection_output_param { num_classes: 3 }', [(1, 36), (1, 30), (1, 2, 40)])


@pytest.mark.parametrize("block", [1, 3, 64])
def test_greedy_nms_blocked_and_sequential_paths_equal_the_fork_loop(block):
    """Both NMS paths (the CPU's blocked one at several block sizes, the sequential one used
    on other devices) keep exactly the fork's boxes: clustered boxes, exact duplicates,
    two point boxes (0/0 overlap) and invalid candidates."""
    from caffe_import.forks.ssd.layers import _nms_blocked, _nms_sequential, box_size, greedy_nms

    rng = np.random.default_rng(3)
    r, k = 5, 37
    centres = rng.uniform(0.3, 0.7, (r, k, 2))
    half = rng.uniform(0.02, 0.2, (r, k, 2))
    boxes = np.concatenate([centres - half, centres + half], -1).astype(F32)
    boxes[0, 5] = boxes[0, 2]                 # duplicate: overlap 1
    boxes[2, 3] = boxes[2, 4] = [0.5, 0.5, 0.5, 0.5]  # 0/0 overlap between two points
    valid = np.ones((r, k), bool)
    valid[3, 30:] = False
    expected = np.zeros((r, k), bool)
    for i in range(r):
        n_valid = int(valid[i].sum())
        kept = _nms_ref(list(boxes[i]), np.linspace(1, 0.1, k)[:n_valid], -1, 0.45, 1.0, -1)
        expected[i, kept] = True
    bt, vt = torch.from_numpy(boxes), torch.from_numpy(valid)
    coords = [c.contiguous() for c in bt.unbind(-1)]
    assert np.array_equal(_nms_blocked(coords, box_size(bt), vt, 0.45, block).numpy(), expected)
    assert np.array_equal(_nms_sequential(coords, box_size(bt), vt, 0.45, 1.0).numpy(), expected)
    assert np.array_equal(greedy_nms(bt.reshape(1, r, k, 4), vt.reshape(1, r, k), 0.45, 1.0)
                          .reshape(r, k).numpy(), expected)
