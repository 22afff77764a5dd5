"""Pooling against real Caffe (layers_pooling) and hand-computed cases of Caffe's size rules."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_import.errors import CaffeFormatError
from caffe_import.layers.pooling import FLT_MAX, spp_level_geometry, window_sums
from support import case_dir
from support.layer_fixture import check_layer, layer_names, make
from support.versions import needs_torch_export

CASE = "layers_pooling"


def pool(params: str, shape, phase="test", tops=1):
    top = ' top: "y"' + (' top: "mask"' if tops == 2 else "")
    return make(f'name: "p" type: "Pooling" bottom: "x"{top} pooling_param {{ {params} }}',
                [shape], phase)


@pytest.mark.parametrize("name", layer_names(CASE, "Pooling"))
def test_matches_caffe(name):
    check_layer(CASE, name)


def test_5x5_kernel3_stride2_pad1_by_hand():
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    # ceil((5 + 2 - 3) / 2) + 1 = 3; the last window starts at 2*2-1 = 3 < 5 + 1: kept
    (mx,) = pool("pool: MAX kernel_size: 3 stride: 2 pad: 1", (1, 1, 5, 5))(x)
    assert mx[0, 0].tolist() == [[6, 8, 9], [16, 18, 19], [21, 23, 24]]
    (av,) = pool("pool: AVE kernel_size: 3 stride: 2 pad: 1", (1, 1, 5, 5))(x)
    # every window spans 3x3 cells of the padded 7x7 input, so every divisor is 9
    top_left = (0 + 1 + 5 + 6) / 9
    assert av[0, 0, 0, 0].item() == pytest.approx(top_left)
    assert av[0, 0, 2, 2].item() == pytest.approx((18 + 19 + 23 + 24) / 9)


def test_ave_divisor_clipped_at_the_pad_boundary():
    # H = 4, k = 3, s = 2, pad 1: out = ceil(3 / 2) + 1 = 3; last window starts at 3, covers
    # rows 3..5 but only rows up to H + pad = 5 count: divisor 2 along that axis
    x = torch.ones(1, 1, 4, 4)
    (av,) = pool("pool: AVE kernel_size: 3 stride: 2 pad: 1", (1, 1, 4, 4))(x)
    assert av.shape == (1, 1, 3, 3)
    assert av[0, 0, 0, 0].item() == pytest.approx(4 / 9)  # 2x2 image cells of a 3x3 window
    assert av[0, 0, 2, 2].item() == pytest.approx(1 / 4)  # 1 cell, divisor 2x2


def test_pad_zero_kernel_below_stride_keeps_an_empty_last_window():
    # without padding Caffe applies no clip rule, so a window may start past the input
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    layer = pool("pool: MAX kernel_size: 1 stride: 3", (1, 1, 4, 4), tops=2)
    # ceil(3 / 3) + 1 = 2: windows at 0 and 3, both inside
    y, mask = layer(x)
    assert y[0, 0].tolist() == [[0, 3], [12, 15]] and mask[0, 0].tolist() == [[0, 3], [12, 15]]
    layer = pool("pool: MAX kernel_size: 1 stride: 2", (1, 1, 4, 4), tops=2)
    y, mask = layer(x)  # ceil(3 / 2) + 1 = 3: the window at 4 lies outside the 4x4 input
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0, 2, 2].item() == -FLT_MAX and mask[0, 0, 2, 2].item() == -1
    assert y[0, 0, 1, 1].item() == 10 and mask[0, 0, 1, 1].item() == 10
    (av,) = pool("pool: AVE kernel_size: 1 stride: 2", (1, 1, 4, 4))(x)
    assert torch.isnan(av[0, 0, 2, 2])  # Caffe divides 0 by a pool size of 0


def test_pad_above_half_the_kernel():
    # PyTorch refuses pad 2 for kernel 3; Caffe allows pad < kernel
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y, mask = pool("pool: MAX kernel_size: 3 stride: 3 pad: 2", (1, 1, 4, 4), tops=2)(x)
    # out = ceil((4 + 4 - 3) / 3) + 1 = 3; last start 6 - 2 = 4 >= H + pad? 6 >= 6: dropped -> 2
    assert y[0, 0].tolist() == [[0, 3], [12, 15]]
    assert mask[0, 0].tolist() == [[0, 3], [12, 15]]


def test_max_ignores_nan_and_prefers_the_first_maximum():
    x = torch.tensor([[[[float("nan"), 1.0], [1.0, 0.0]]]], requires_grad=True)
    y, mask = pool("pool: MAX kernel_size: 2", (1, 1, 2, 2), tops=2)(x)
    assert y.item() == 1.0 and mask.item() == 1.0
    y.sum().backward()
    assert x.grad[0, 0].tolist() == [[0, 1], [0, 0]]


def test_floor_mode_and_global_pooling_shapes():
    assert pool("pool: MAX kernel_size: 2 stride: 2 round_mode: FLOOR",
                (1, 1, 5, 5)).top_shapes([(1, 1, 5, 5)]) == [(1, 1, 2, 2)]
    layer = pool("pool: AVE global_pooling: true", (2, 3, 5, 7))
    assert layer.top_shapes([(2, 3, 6, 4)]) == [(2, 3, 1, 1)]


def test_stochastic_test_phase_is_the_value_weighted_mean():
    x = torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]])
    (y,) = pool("pool: STOCHASTIC kernel_size: 2", (1, 1, 2, 2))(x)
    assert y.item() == pytest.approx(10 / 4)
    (z,) = pool("pool: STOCHASTIC kernel_size: 2", (1, 1, 2, 2))(torch.zeros(1, 1, 2, 2))
    assert z.item() == 0


def test_stochastic_train_phase_samples_window_elements():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 6, 6) + 0.1
    (y,) = pool("pool: STOCHASTIC kernel_size: 2 stride: 2", (2, 3, 6, 6), phase="train")(x)
    windows = x.unfold(2, 2, 2).unfold(3, 2, 2).reshape(2, 3, 3, 3, 4)
    assert ((windows == y[..., None]).any(-1)).all()


@pytest.mark.parametrize("params, message", [
    ("pool: MAX", "kernel_size"),
    ("pool: MAX kernel_size: 3 pad: 3", "smaller than the kernel"),
    ("pool: STOCHASTIC kernel_size: 3 pad: 1", "only for MAX and AVE"),
    ("pool: MAX global_pooling: true kernel_size: 2", "no kernel"),
    ("pool: MAX kernel_size: 2 pad: 1 pad_h: 1 pad_w: 1", "not both"),
])
def test_bad_params(params, message):
    with pytest.raises(CaffeFormatError, match=message):
        pool(params, (1, 1, 5, 5))


def test_needs_four_axes():
    with pytest.raises(CaffeFormatError, match="4-D"):
        pool("pool: MAX kernel_size: 2", (1, 5, 5))


def caffe_pool_loops(x, pool, k, s, p, out):
    """Caffe's CPU pooling loops, written out for one (n, c) plane (the reference)."""
    h, w = x.shape
    y = torch.empty(out)
    mask = torch.full(out, -1.0)
    for ph in range(out[0]):
        for pw in range(out[1]):
            hs, ws = ph * s[0] - p[0], pw * s[1] - p[1]
            he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            if pool == "MAX":
                best, arg = -FLT_MAX, -1
                for i in range(hs, min(ph * s[0] - p[0] + k[0], h)):
                    for j in range(ws, min(pw * s[1] - p[1] + k[1], w)):
                        if x[i, j] > best:
                            best, arg = x[i, j].item(), i * w + j
                y[ph, pw], mask[ph, pw] = best, arg
            else:
                total = torch.tensor(0.0)
                for i in range(hs, he):
                    for j in range(ws, we):
                        total = total + x[i, j]
                y[ph, pw] = total / size
    return y, mask


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 4), st.integers(1, 4),
       st.integers(1, 3), st.integers(1, 3), st.integers(0, 3), st.integers(0, 3),
       st.sampled_from(["MAX", "AVE"]), st.sampled_from(["CEIL", "FLOOR"]))
def test_matches_caffes_loops_on_random_geometry(h, w, kh, kw, sh, sw, ph, pw, kind, mode):
    if ph >= kh or pw >= kw:
        return  # Caffe refuses pad >= kernel (tested above)
    tops = 2 if kind == "MAX" else 1
    try:
        layer = pool(f"pool: {kind} kernel_h: {kh} kernel_w: {kw} stride_h: {sh} stride_w: {sw} "
                     f"pad_h: {ph} pad_w: {pw} round_mode: {mode}", (1, 1, h, w), tops=tops)
        (shape, *_) = layer.top_shapes([(1, 1, h, w)])
    except CaffeFormatError:
        return  # an empty output (FLOOR with a window larger than the padded input)
    torch.manual_seed(h * 100 + w)
    x = torch.randn(1, 1, h, w)
    x[x > 1.2] = float("nan")
    ref, ref_mask = caffe_pool_loops(x[0, 0], kind, (kh, kw), (sh, sw), (ph, pw), shape[2:])
    got = layer(x)
    assert torch.allclose(got[0][0, 0], ref, equal_nan=True, rtol=1e-6, atol=1e-6)
    if kind == "MAX":
        assert torch.equal(got[1][0, 0], ref_mask)


@needs_torch_export
def test_padded_average_pooling_exports_to_onnx_as_eager_computes_it(tmp_path):
    """Caffe's padded AVE windows are sums over a divisor per window; torch's ONNX exporter
    drops avg_pool2d's divisor_override (its graph divided by 9: 1/9 of eager), so while
    exporting the sums are the mean times the window size. The export's check against eager
    passes for the layers_pooling fixture's ave_k3s3p2; eager stays exact."""
    pytest.importorskip("onnxruntime")
    from caffe_import.export import write_export
    from caffe_import.net import CaffeNet

    d = case_dir("layers_pooling")
    net = CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel"))
    done = write_export(net, tmp_path / "p.onnx", outputs=["ave_k3s3p2"], say=lambda line: None,
                        dynamic=False)
    assert done.startswith(f"wrote {tmp_path / 'p.onnx'} (matches eager"), done
    x = torch.randn(1, 2, 7, 9)
    assert torch.equal(window_sums(x, (3, 3), (3, 3)),
                       torch.nn.functional.avg_pool2d(x, 3, 3, 0, divisor_override=1))


# ----------------------------------------------------------------------------- SPP
def _caffe_pool(x: np.ndarray, k, s, p, pool: str) -> np.ndarray:
    """Caffe's PoolingLayer::Forward_cpu for one (N, C, H, W) array, loops as written there."""
    n, c, h, w = x.shape
    oh = int(np.ceil((h + 2 * p[0] - k[0]) / s[0])) + 1
    ow = int(np.ceil((w + 2 * p[1] - k[1]) / s[1])) + 1
    if p[0] or p[1]:
        oh -= (oh - 1) * s[0] >= h + p[0]
        ow -= (ow - 1) * s[1] >= w + p[1]
    out = np.zeros((n, c, oh, ow), np.float32)
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * s[0] - p[0], j * s[1] - p[1]
            he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            win = x[:, :, hs:he, ws:we]
            out[:, :, i, j] = win.max(axis=(2, 3)) if pool == "MAX" else win.sum(axis=(2, 3)) / size
    return out


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("hw", [(7, 9), (9, 13), (4, 4)])
def test_spp_is_caffes_pyramid_of_poolings(pool, hw):
    x = torch.randn(2, 3, *hw)
    layer = make(f'name: "spp" type: "SPP" bottom: "x" top: "y" '
                 f'spp_param {{ pyramid_height: 3 pool: {pool} }}', [tuple(x.shape)])
    (y,) = layer(x)
    parts = []
    for level in range(3):
        (kh, ph), (kw, pw) = spp_level_geometry(level, hw[0]), spp_level_geometry(level, hw[1])
        parts.append(_caffe_pool(x.numpy(), (kh, kw), (kh, kw), (ph, pw), pool).reshape(2, -1))
    ref = np.concatenate(parts, axis=1)
    assert y.shape == (2, 3 * (1 + 4 + 16)) and layer.top_shapes([tuple(x.shape)]) == [y.shape]
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-6, atol=1e-6)


def test_spp_of_height_one_is_one_global_pooling_with_a_4d_top():
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    layer = make('name: "spp" type: "SPP" bottom: "x" top: "y" spp_param { pyramid_height: 1 }',
                 [tuple(x.shape)])
    (y,) = layer(x)
    assert y.shape == (2, 3, 1, 1)
    torch.testing.assert_close(y, x.amax(dim=(2, 3), keepdim=True))


def test_spp_gradients_and_a_new_input_size():
    layer = make('name: "spp" type: "SPP" bottom: "x" top: "y" '
                 'spp_param { pyramid_height: 2 pool: AVE }', [(1, 2, 5, 7)])
    x = torch.randn(1, 2, 6, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: layer(v)[0], (x,))
    assert layer(x)[0].shape == (1, 2 * 5)


def test_spp_bad_settings_are_clear_errors():
    with pytest.raises(CaffeFormatError, match="pyramid_height"):
        make('name: "spp" type: "SPP" bottom: "x" top: "y"', [(1, 2, 5, 5)])
    with pytest.raises(CaffeFormatError, match="too small"):
        make('name: "spp" type: "SPP" bottom: "x" top: "y" spp_param { pyramid_height: 3 }',
             [(1, 2, 3, 3)])
    with pytest.raises(CaffeFormatError, match="4-D"):
        make('name: "spp" type: "SPP" bottom: "x" top: "y" spp_param { pyramid_height: 2 }',
             [(2, 5, 5)])


@pytest.mark.parametrize("name", layer_names("layers_more", "SPP"))
def test_spp_matches_real_caffe(name):
    """BVLC 9b891540's SPP on the bottoms it saw in layers_more (forward; the case's
    gradients are checked by the parity tests)."""
    check_layer("layers_more", name)
