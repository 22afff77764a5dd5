"""LSTM, RNN and LSTMUnit: Caffe's unrolled arithmetic (checked against a step-by-step
unrolled reference written from Caffe's FillUnrolledNet), gradients (gradcheck in double, and
Caffe's own LSTMUnit backward where it is not the derivative), the state Caffe carries between
forwards, param blob order, clear errors, and a small LSTM net that trains."""
from __future__ import annotations

import time

import h5py
import numpy as np
import pytest
import torch
from torch.func import functional_call

from caffe_import.errors import CaffeFormatError
from caffe_import.export.program import unexportable_layers
from caffe_import.net import CaffeNet
from caffe_import.solver import Solver
from support import case_dir, case_meta
from support.compare import assert_within, rel_l2
from support.layer_fixture import check_layer, layer_names, make, reference_arrays

T, N, D, H = 5, 3, 4, 6
FILLERS = ' weight_filler { type: "gaussian" std: 0.4 } bias_filler { type: "gaussian" std: 0.2 } }'


def _lstm_text(expose=False, static=False, num_output=H, name="lstm"):
    bottoms = (['"x"', '"cont"'] + (['"xs"'] if static else [])
               + (['"h0"', '"c0"'] if expose else []))
    tops = ['"h"'] + (['"hT"', '"cT"'] if expose else [])
    return (f'name: "{name}" type: "LSTM" ' + " ".join(f"bottom: {b}" for b in bottoms) + " "
            + " ".join(f"top: {t}" for t in tops)
            + f' recurrent_param {{ num_output: {num_output} expose_hidden: {str(expose).lower()}'
            + FILLERS)


def _rnn_text(expose=False, static=False):
    bottoms = ['"x"', '"cont"'] + (['"xs"'] if static else []) + (['"h0"'] if expose else [])
    tops = ['"o"'] + (['"hT"'] if expose else [])
    return ('name: "rnn" type: "RNN" ' + " ".join(f"bottom: {b}" for b in bottoms) + " "
            + " ".join(f"top: {t}" for t in tops)
            + f' recurrent_param {{ num_output: {H} expose_hidden: {str(expose).lower()}' + FILLERS)


def _cont(first_zero=True, dtype=torch.float32):
    cont = torch.ones(T, N, dtype=dtype)
    if first_zero:
        cont[0] = 0
    cont[3, 1] = 0  # a stream restarting mid-sequence
    return cont


def _unrolled_lstm(x, cont, blobs, h0, c0, xs=None):
    """Caffe's unrolled LSTM net, layer by layer (x_transform, h_conted, transform, the sum,
    LSTMUnit) with plain torch ops."""
    w_xc, b_c, *rest = blobs
    w_static, w_hc = (rest[0], rest[1]) if xs is not None else (None, rest[0])
    h, c, hs = h0, c0, []
    for t in range(x.shape[0]):
        x_t = x[t].reshape(x.shape[1], -1)
        gate = (h * cont[t, :, None]) @ w_hc.t() + (x_t @ w_xc.t() + b_c)
        if xs is not None:
            gate = gate + xs.reshape(xs.shape[0], -1) @ w_static.t()
        i, f, o, g = gate.chunk(4, dim=1)
        i, o, g = torch.sigmoid(i), torch.sigmoid(o), torch.tanh(g)
        f = cont[t, :, None] * torch.sigmoid(f)
        c = f * c + i * g
        h = o * torch.tanh(c)
        hs.append(h)
    return torch.stack(hs), h, c


def _unrolled_rnn(x, cont, blobs, h0, xs=None):
    w_xh, b_h, *rest = blobs
    w_static = rest[0] if xs is not None else None
    w_hh, w_ho, b_o = rest[-3:]
    h, os_ = h0, []
    for t in range(x.shape[0]):
        x_t = x[t].reshape(x.shape[1], -1)
        pre = (h * cont[t, :, None]) @ w_hh.t() + (x_t @ w_xh.t() + b_h)
        if xs is not None:
            pre = pre + xs.reshape(xs.shape[0], -1) @ w_static.t()
        h = torch.tanh(pre)
        os_.append(torch.tanh(h @ w_ho.t() + b_o))
    return torch.stack(os_), h


# --------------------------------------------------------------------------- blobs
def test_lstm_param_blobs_are_caffes_in_caffes_order():
    layer = make(_lstm_text(static=True), [(T, N, D, 1), (T, N), (N, 2, 3)])
    assert layer.blob_shapes() == [(4 * H, D), (4 * H,), (4 * H, 6), (4 * H, H)]
    layer = make(_lstm_text(), [(T, N, D), (T, N)])
    assert layer.blob_shapes() == [(4 * H, D), (4 * H,), (4 * H, H)]


def test_rnn_param_blobs_are_caffes_in_caffes_order():
    layer = make(_rnn_text(static=True), [(T, N, D), (T, N), (N, 5)])
    assert layer.blob_shapes() == [(H, D), (H,), (H, 5), (H, H), (H, H), (H,)]


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("static", [False, True])
def test_lstm_matches_caffes_unrolled_net(static):
    torch.manual_seed(0)
    bottoms = [(T, N, D), (T, N)] + ([(N, 3)] if static else []) + [(1, N, H), (1, N, H)]
    layer = make(_lstm_text(expose=True, static=static), bottoms)
    x, cont = torch.randn(T, N, D), _cont(first_zero=False)
    xs = torch.randn(N, 3) if static else None
    h0, c0 = torch.randn(1, N, H), torch.randn(1, N, H)
    h, h_t, c_t = layer(x, cont, *([xs] if static else []), h0, c0)
    ref, ref_h, ref_c = _unrolled_lstm(x, cont, layer.blobs, h0[0], c0[0], xs)
    torch.testing.assert_close(h, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_t[0], ref_h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c_t[0], ref_c, rtol=1e-5, atol=1e-6)
    assert layer.top_shapes([tuple(b) for b in bottoms]) == [(T, N, H), (1, N, H), (1, N, H)]


@pytest.mark.parametrize("static", [False, True])
def test_rnn_matches_caffes_unrolled_net(static):
    torch.manual_seed(1)
    layer = make(_rnn_text(expose=True, static=static),
                 [(T, N, D), (T, N)] + ([(N, 2)] if static else []) + [(1, N, H)])
    x, cont, h0 = torch.randn(T, N, D), _cont(first_zero=False), torch.randn(1, N, H)
    xs = torch.randn(N, 2) if static else None
    o, h_t = layer(x, cont, *([xs] if static else []), h0)
    ref, ref_h = _unrolled_rnn(x, cont, layer.blobs, h0[0], xs)
    torch.testing.assert_close(o, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_t[0], ref_h, rtol=1e-5, atol=1e-6)


def test_state_carries_over_between_forwards_without_expose_hidden():
    """Caffe copies h_T, c_T into h_0, c_0 before each forward: two halves of a sequence give
    the whole sequence's outputs; a smaller batch keeps the first streams' state."""
    torch.manual_seed(2)
    whole = make(_lstm_text(), [(2 * T, N, D), (2 * T, N)])
    half = make(_lstm_text(), [(T, N, D), (T, N)])
    for a, b in zip(half.blobs, whole.blobs):
        a.data.copy_(b.data)
    x, cont = torch.randn(2 * T, N, D), torch.ones(2 * T, N)
    with torch.no_grad():
        (ref,) = whole(x, cont)
        first = half(x[:T], cont[:T])[0]
        second = half(x[T:], cont[T:])[0]
    torch.testing.assert_close(torch.cat([first, second]), ref)
    with torch.no_grad():
        (narrow,) = half(x[T:, :2], cont[T:, :2])  # state of streams 0 and 1 only
        half.reset()
        (fresh,) = half(x[:T], cont[:T])
    assert not torch.allclose(narrow, second[:, :2])
    torch.testing.assert_close(fresh, first)


def test_cont_zero_restarts_a_stream():
    torch.manual_seed(3)
    layer = make(_rnn_text(), [(T, N, D), (T, N)])
    x = torch.randn(T, N, D)
    with torch.no_grad():
        layer(torch.randn(T, N, D), torch.ones(T, N))  # leaves some state behind
        cont = torch.ones(T, N)
        cont[0] = 0
        (a,) = layer(x, cont)
        layer.reset()
        (b,) = layer(x, torch.ones(T, N))
    torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------- backward
def _gradcheck_layer(layer, bottoms, grad_inputs):
    layer = layer.double()
    names = [str(i) for i in range(len(layer.blobs))]
    params = [p.detach().clone().requires_grad_(True) for p in layer.blobs]

    def fn(*args):
        ins = list(bottoms)
        for index, value in zip(grad_inputs, args[:len(grad_inputs)]):
            ins[index] = value
        return functional_call(layer, dict(zip(names, args[len(grad_inputs):])), tuple(ins))[0]

    inputs = [bottoms[i].detach().clone().requires_grad_(True) for i in grad_inputs]
    assert torch.autograd.gradcheck(fn, (*inputs, *params), eps=1e-6, atol=1e-5)


def test_lstm_gradients_are_the_derivative_for_binary_cont():
    torch.manual_seed(4)
    layer = make(_lstm_text(static=True, num_output=3), [(4, 2, 3), (4, 2), (2, 2)])
    cont = torch.tensor([[0, 0], [1, 1], [1, 0], [1, 1]], dtype=torch.float64)
    _gradcheck_layer(layer, [torch.randn(4, 2, 3, dtype=torch.float64), cont,
                             torch.randn(2, 2, dtype=torch.float64)], [0, 2])


def test_rnn_gradients_are_the_derivative():
    torch.manual_seed(5)
    layer = make(_rnn_text(static=True), [(3, 2, D), (3, 2), (2, 2)])
    cont = torch.tensor([[0, 0], [1, 1], [1, 0]], dtype=torch.float64)
    _gradcheck_layer(layer, [torch.randn(3, 2, D, dtype=torch.float64), cont,
                             torch.randn(2, 2, dtype=torch.float64)], [0, 2])


def test_no_gradient_reaches_cont_or_h0_c0_and_exposed_state_diffs_are_dropped():
    layer = make(_lstm_text(expose=True), [(T, N, D), (T, N), (1, N, H), (1, N, H)])
    x = torch.randn(T, N, D, requires_grad=True)
    cont, h0, c0 = (torch.ones(T, N, requires_grad=True), torch.randn(1, N, H, requires_grad=True),
                    torch.randn(1, N, H, requires_grad=True))
    h, h_t, c_t = layer(x, cont, h0, c0)
    (h.sum() + h_t.sum() + c_t.sum()).backward()
    assert cont.grad is None and h0.grad is None and c0.grad is None
    assert torch.equal(h_t.grad, torch.ones_like(h_t))  # the top's diff, which goes no further
    x_grad = x.grad.clone()
    x.grad = None
    layer(x, cont, h0, c0)[0].sum().backward()
    torch.testing.assert_close(x.grad, x_grad)


def test_lstm_unit_backward_is_caffes_for_fractional_cont():
    """Caffe's f_diff is c_term * c_prev * f * (1 - f) with f = cont * sigmoid: not the
    derivative when cont is fractional."""
    torch.manual_seed(6)
    layer = make('name: "u" type: "LSTMUnit" bottom: "c" bottom: "x" bottom: "cont" '
                 'top: "c1" top: "h1"', [(1, N, H), (1, N, 4 * H), (1, N)])
    c_prev = torch.randn(1, N, H, requires_grad=True)
    gates = torch.randn(1, N, 4 * H, requires_grad=True)
    cont = torch.tensor([[0.5, 0.0, 1.0]])
    c, h = layer(c_prev, gates, cont)
    dc, dh = torch.randn_like(c), torch.randn_like(h)
    torch.autograd.backward([c, h], [dc, dh])
    sig = torch.sigmoid(gates.detach()[0].reshape(N, 4, H))
    i, o, g = sig[:, 0], sig[:, 2], torch.tanh(gates.detach()[0].reshape(N, 4, H)[:, 3])
    f = cont[0, :, None] * sig[:, 1]
    tanh_c = torch.tanh(c.detach()[0])
    c_term = dc[0] + dh[0] * o * (1 - tanh_c ** 2)
    expected = torch.stack([c_term * g * i * (1 - i), c_term * c_prev.detach()[0] * f * (1 - f),
                            dh[0] * tanh_c * o * (1 - o), c_term * i * (1 - g * g)], 1)
    torch.testing.assert_close(gates.grad[0], expected.reshape(N, 4 * H))
    torch.testing.assert_close(c_prev.grad[0], c_term * f)
    assert torch.equal(f[1], torch.zeros(H))  # cont 0: no forget contribution


def test_lstm_unit_matches_the_lstm_step():
    torch.manual_seed(7)
    unit = make('name: "u" type: "LSTMUnit" bottom: "c" bottom: "x" bottom: "cont" '
                'top: "c1" top: "h1"', [(1, N, H), (1, N, 4 * H), (1, N)])
    c_prev, gates, cont = torch.randn(1, N, H), torch.randn(1, N, 4 * H), torch.ones(1, N)
    c, h = unit(c_prev, gates, cont)
    i, f, o, g = gates[0].chunk(4, dim=1)
    ref_c = torch.sigmoid(f) * c_prev[0] + torch.sigmoid(i) * torch.tanh(g)
    torch.testing.assert_close(c[0], ref_c)
    torch.testing.assert_close(h[0], torch.sigmoid(o) * torch.tanh(ref_c))


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("text, shapes, match", [
    (_lstm_text().replace('bottom: "cont" ', ""), [(T, N, D)], "takes 2 or 3 bottom"),
    (_lstm_text(expose=True).replace('bottom: "c0" ', ""), [(T, N, D), (T, N), (1, N, H)],
     "takes 4 or 5 bottom"),
    (_lstm_text(), [(T, N, D), (T, N + 1)], "must be \\(T, N\\)"),
    (_lstm_text(), [(T,), (T, N)], "at least 2 axes"),
    (_lstm_text(static=True), [(T, N, D), (T, N), (N + 1, 2)], "x_static"),
    (_lstm_text(expose=True), [(T, N, D), (T, N), (1, N, H + 1), (1, N, H)], "h_0"),
    (_lstm_text(num_output=0), [(T, N, D), (T, N)], "num_output"),
])
def test_bad_bottoms_are_clear_errors(text, shapes, match):
    with pytest.raises(CaffeFormatError, match=match):
        make(text, shapes)


def test_changed_number_of_steps_is_refused_as_caffe_does():
    layer = make(_lstm_text(), [(T, N, D), (T, N)])
    with pytest.raises(CaffeFormatError, match="time steps"):
        layer(torch.randn(T + 1, N, D), torch.ones(T + 1, N))
    with pytest.raises(CaffeFormatError, match="inputs per step"):
        layer(torch.randn(T, N, D + 1), torch.ones(T, N))
    layer(torch.randn(T, N + 2, D), torch.ones(T, N + 2))  # another batch size is fine


def test_lstm_unit_bad_shapes_are_clear_errors():
    with pytest.raises(CaffeFormatError, match="4 x"):
        make('name: "u" type: "LSTMUnit" bottom: "c" bottom: "x" bottom: "cont" '
             'top: "c1" top: "h1"', [(1, N, H), (1, N, 3 * H), (1, N)])
    with pytest.raises(CaffeFormatError, match="one time step"):
        make('name: "u" type: "LSTMUnit" bottom: "c" bottom: "x" bottom: "cont" '
             'top: "c1" top: "h1"', [(2, N, H), (2, N, 4 * H), (2, N)])


# --------------------------------------------------------------------------- cost
def test_a_long_sequence_costs_about_as_many_single_steps():
    """T = 100 in one forward is not slower than 100 forwards of one step (the input
    projection is one product for all steps; only the recurrence loops)."""
    torch.manual_seed(8)
    long = make(_lstm_text(num_output=32), [(100, 8, 64), (100, 8)])
    step = make(_lstm_text(num_output=32), [(1, 8, 64), (1, 8)])
    x, cont = torch.randn(100, 8, 64), torch.ones(100, 8)

    def timed(fn):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        return best

    with torch.no_grad():
        whole = timed(lambda: long(x, cont))
        steps = timed(lambda: [step(x[t:t + 1], cont[t:t + 1]) for t in range(100)])
    assert whole < 1.5 * steps, (whole, steps)


# --------------------------------------------------------------------------- training
LSTM_NET = """
name: "seq"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 20 dim: 4 dim: 3 } } }
layer { name: "cont" type: "Input" top: "cont" input_param { shape { dim: 20 dim: 4 } } }
layer { name: "target" type: "Input" top: "target" input_param { shape { dim: 20 dim: 4 dim: 1 } } }
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
  recurrent_param { num_output: 8 weight_filler { type: "uniform" min: -0.3 max: 0.3 }
                    bias_filler { type: "constant" value: 0 } } }
layer { name: "ip" type: "InnerProduct" bottom: "h" top: "y"
  inner_product_param { num_output: 1 axis: 2 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "target" top: "loss" }
"""


def test_a_recurrent_net_of_20_steps_trains_on_cpu(tmp_path):
    """The target at step t is the running sum of the inputs' first channel (memory needed):
    the loss falls with Caffe's SGD."""
    (tmp_path / "net.prototxt").write_text(LSTM_NET)
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt" base_lr: 0.1 momentum: 0.9 lr_policy: "fixed" max_iter: 150 '
        'display: 0 snapshot: 0 solver_mode: CPU random_seed: 1 clip_gradients: 5')
    torch.manual_seed(9)
    solver = Solver(tmp_path / "solver.prototxt")
    rng = np.random.default_rng(0)
    cont = np.ones((20, 4), np.float32)
    cont[0] = 0
    losses = []
    for _ in range(150):
        x = rng.uniform(-1, 1, (20, 4, 3)).astype(np.float32)
        target = 0.3 * np.cumsum(x[:, :, :1], axis=0)
        losses.append(solver.step(1, inputs={"x": x, "cont": cont, "target": target}))
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20]), losses[::10]
    assert isinstance(solver.net, CaffeNet)


def test_export_refuses_the_state_carrying_form_only():
    net = CaffeNet(LSTM_NET)
    assert [(n, t) for n, t, _ in unexportable_layers(net)] == [("lstm", "LSTM")]
    state = ('layer { name: "h0" type: "Input" top: "h0" top: "c0" input_param { '
             'shape { dim: 1 dim: 4 dim: 8 } shape { dim: 1 dim: 4 dim: 8 } } }\n')
    exposed = (LSTM_NET.replace('recurrent_param { num_output: 8',
                                'bottom: "h0" bottom: "c0" top: "hT" top: "cT" '
                                'recurrent_param { num_output: 8 expose_hidden: true')
               .replace('layer { name: "lstm"', state + 'layer { name: "lstm"'))
    exposed = CaffeNet(exposed)
    assert unexportable_layers(exposed) == []
    assert exposed.blob_shapes["hT"] == (1, 4, 8)


def test_the_state_carried_into_a_second_forward_is_caffes():
    """layers_recurrent/second_forward.h5: real Caffe ran the case's net a second time with
    cont_0 = 1, so LSTM and RNN started from the h_T (c_T) of the first forward."""
    case = case_dir("layers_recurrent")
    meta = case_meta("layers_recurrent")
    net = CaffeNet(case / "net.prototxt", case / "weights.caffemodel", phase="train",
                   keep_blobs=True)
    first, _ = reference_arrays("layers_recurrent")
    with h5py.File(case / "second_forward.h5", "r") as f:
        second = {k: f["inputs"][k][()] for k in f["inputs"]}
        caffe = {k: f["blobs"][k][()] for k in f["blobs"]}
    with torch.no_grad():
        net(**first)
        out = net(**second)
    for blob in ("h", "o", "h2", "o2", "h1"):
        assert_within(out[blob], caffe[blob], meta["tolerance"], blob)
    with torch.no_grad():
        fresh = CaffeNet(case / "net.prototxt", case / "weights.caffemodel", phase="train",
                         keep_blobs=True)
        assert rel_l2(fresh(**second)["h"], caffe["h"]) > 1e-3  # the carried state matters


@pytest.mark.parametrize("name", layer_names("layers_recurrent", "LSTM", "RNN", "LSTMUnit"))
def test_each_recurrent_layer_matches_real_caffe(name):
    """BVLC 9b891540's layers on the bottoms they saw in layers_recurrent (forward; the case's
    param and blob gradients are checked by the parity tests)."""
    check_layer("layers_recurrent", name)


def test_the_carried_state_follows_caffes_blob_memory_across_batch_sizes():
    """Caffe's h_T blob keeps its memory when the batch shrinks and reallocates (zeros) when
    it grows past it: N = 3, then 2, then 3 again reads stream 2's state from the first
    forward; N = 4 starts from zeros."""
    torch.manual_seed(10)
    layer = make(_rnn_text(), [(T, 3, D), (T, 3)])
    probe = make(_rnn_text(expose=True), [(T, 3, D), (T, 3), (1, 3, H)])
    for a, b in zip(probe.blobs, layer.blobs):
        a.data.copy_(b.data)
    x3, x2, ones = torch.randn(T, 3, D), torch.randn(T, 2, D), torch.ones(T, 3)
    with torch.no_grad():
        layer(x3, ones)
        _, h_a = probe(x3, ones, torch.zeros(1, 3, H))
        layer(x2, ones[:, :2])
        _, h_b = probe(x2, ones[:, :2], h_a[:, :2])
        (again,) = layer(x3, ones)
        (ref, _) = probe(x3, ones, torch.cat([h_b, h_a[:, 2:]], dim=1))
        torch.testing.assert_close(again, ref)
        x4 = torch.randn(T, 4, D)
        (grown,) = layer(x4, torch.ones(T, 4))
        layer.reset()
        torch.testing.assert_close(grown, layer(x4, torch.ones(T, 4))[0])


def test_the_carried_state_across_batch_sizes_is_real_caffes():
    """layers_recurrent/batch_sizes.h5: real Caffe ran an LSTM at batch sizes 3, 2, 3, 4, 3
    (cont 1 throughout), its state following its blobs' memory."""
    case = case_dir("layers_recurrent")
    with h5py.File(case / "batch_sizes.h5", "r") as f:
        weights = {"lstm": [f["params"][str(i)][()] for i in range(len(f["params"]))]}
        steps = [(f["x"][str(i)][()], f["h"][str(i)][()]) for i in range(len(f["x"]))]
    net = CaffeNet(case / "batch_sizes.prototxt", weights=weights)
    for x, h in steps:
        out = net(x=x, cont=np.ones(x.shape[:2], np.float32))
        assert_within(out["h"], h, case_meta("layers_recurrent")["tolerance"], f"N={x.shape[1]}")


def test_the_state_carries_over_in_a_compiled_forward_too():
    torch.manual_seed(11)
    eager = make(_lstm_text(), [(T, N, D), (T, N)])
    compiled = make(_lstm_text(), [(T, N, D), (T, N)])
    compiled.load_state_dict(eager.state_dict())
    run = torch.compile(compiled, backend="eager")
    xs, cont = [torch.randn(T, N, D) for _ in range(3)], torch.ones(T, N)
    with torch.no_grad():
        for x in xs:
            torch.testing.assert_close(run(x, cont)[0], eager(x, cont)[0])
