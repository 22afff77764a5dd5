"""Caffe's solver: lr policies, the six update rules, iter_size, clipping, snapshot/resume.

The references here are written from Caffe's formulas (sgd_solver.cpp and friends) in
float64 numpy, independently of the implementation under test.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.proto import caffe_pb2
from caffe_import.solver import Solver, learning_rate


# ---- a 2-param toy that follows the CaffeNet contract ------------------------------------

@dataclass
class Info:
    layer: str
    index: int
    param: torch.nn.Parameter
    lr_mult: float
    decay_mult: float


class ToyNet(torch.nn.Module):
    """loss = sum(x * a) + 0.5 * sum((b - y)^2): grad_a = x, grad_b = b - y."""

    outputs = ["loss"]

    def __init__(self, lr_mults=(1.0, 2.0), decay_mults=(1.0, 0.0)):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))
        self.b = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.25, 3.0]]))
        self._infos = [Info("a", 0, self.a, lr_mults[0], decay_mults[0]),
                       Info("b", 0, self.b, lr_mults[1], decay_mults[1])]

    def learnable_params(self):
        return self._infos

    def forward(self, x, y):
        return OrderedDict(loss=(x * self.a).sum() + 0.5 * ((self.b - y) ** 2).sum())

    def total_loss(self, blobs):
        return blobs["loss"]

    def weights(self):
        return OrderedDict(a=[self.a.detach().numpy().copy()], b=[self.b.detach().numpy().copy()])

    def save_weights(self, path, h5=False):
        np.savez(open(path, "wb"), a=self.a.detach().numpy(), b=self.b.detach().numpy())

    def load_weights(self, path):
        with np.load(path, allow_pickle=False) as z:
            with torch.no_grad():
                self.a.copy_(torch.from_numpy(z["a"]))
                self.b.copy_(torch.from_numpy(z["b"]))


def feed(k: int) -> dict:
    rng = np.random.default_rng(k)
    return {"x": torch.tensor(rng.standard_normal(3), dtype=torch.float32),
            "y": torch.tensor(rng.standard_normal((2, 2)), dtype=torch.float32)}


def solver_param(**kw) -> caffe_pb2.SolverParameter:
    base = dict(base_lr=0.1, lr_policy="fixed", momentum=0.9, weight_decay=0.01, max_iter=100)
    base.update(kw)
    stepvalue = base.pop("stepvalue", ())
    p = caffe_pb2.SolverParameter(**base)
    p.stepvalue.extend(stepvalue)
    return p


# ---- lr policies ---------------------------------------------------------------------------

def rates(param, n):
    out, cs = [], 0
    for it in range(n):
        r, cs = learning_rate(param, it, cs)
        out.append(r)
    return out


def test_fixed_step_exp_inv_poly_sigmoid_by_hand():
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6)
    close(rates(solver_param(base_lr=0.01), 3), [0.01] * 3)
    close(rates(solver_param(base_lr=0.01, lr_policy="step", gamma=0.1, stepsize=3), 7),
          [0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001])
    close(rates(solver_param(base_lr=1, lr_policy="exp", gamma=0.5), 4), [1, 0.5, 0.25, 0.125])
    close(rates(solver_param(base_lr=0.01, lr_policy="inv", gamma=1e-4, power=0.75), 3),
          [0.01 * (1 + 1e-4 * i) ** -0.75 for i in range(3)])
    close(rates(solver_param(base_lr=0.01, lr_policy="poly", power=0.9, max_iter=10), 4),
          [0.01 * (1 - i / 10) ** 0.9 for i in range(4)])
    close(rates(solver_param(base_lr=0.01, lr_policy="sigmoid", gamma=0.5, stepsize=2), 4),
          [0.01 / (1 + math.exp(-0.5 * (i - 2))) for i in range(4)])


def test_multistep_advances_at_most_one_step_per_iteration():
    p = solver_param(base_lr=1, lr_policy="multistep", gamma=0.1, stepvalue=[2, 2, 5])
    # iter 2 crosses two stepvalues at once, but Caffe advances one step per call
    np.testing.assert_allclose(rates(p, 7), [1, 1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_rate_is_float32_like_caffe():
    r, _ = learning_rate(solver_param(base_lr=0.1), 0)
    assert r == float(np.float32(0.1))


@pytest.mark.parametrize("bad", [dict(lr_policy=""), dict(lr_policy="cosine"),
                                 dict(lr_policy="step", stepsize=0)])
def test_bad_lr_policy_is_a_format_error(bad):
    with pytest.raises(CaffeFormatError):
        learning_rate(solver_param(**bad), 0)


def test_bad_solver_settings_are_format_errors():
    for kw in (dict(type="LBFGS"), dict(regularization_type="L3"), dict(type="AdaGrad", momentum=0.9)):
        with pytest.raises(CaffeFormatError):
            Solver(solver_param(**kw), ToyNet())


# ---- update rules against Caffe's formulas -------------------------------------------------

def reference_run(kind, p, steps, iter_size=1, clip=-1.0, l1=False, lr_mults=(1.0, 2.0),
                  decay_mults=(1.0, 0.0)):
    """Caffe's update in float64 numpy: returns the params after each step."""
    net = ToyNet()
    w = [net.a.detach().double().numpy().copy(), net.b.detach().double().numpy().copy()]
    h = [[np.zeros_like(x) for x in w] for _ in range(2)]
    out = []
    for it in range(steps):
        rate, _ = learning_rate(p, it, 0)
        g = [np.zeros_like(x) for x in w]
        for i in range(iter_size):
            d = feed(it * iter_size + i)
            g[0] += d["x"].double().numpy()
            g[1] += w[1] - d["y"].double().numpy()
        norm = math.sqrt(sum((x ** 2).sum() for x in g))
        if clip >= 0 and norm > clip:
            g = [x * clip / norm for x in g]
        g = [x / iter_size for x in g]
        for k in range(2):
            decay = p.weight_decay * decay_mults[k]
            g[k] = g[k] + decay * (np.sign(w[k]) if l1 else w[k])
            lr = rate * lr_mults[k]
            mu, delta = p.momentum, p.delta
            if kind == "SGD":
                h[0][k] = mu * h[0][k] + lr * g[k]
                upd = h[0][k]
            elif kind == "Nesterov":
                prev = h[0][k].copy()
                h[0][k] = mu * h[0][k] + lr * g[k]
                upd = (1 + mu) * h[0][k] - mu * prev
            elif kind == "AdaGrad":
                h[0][k] = h[0][k] + g[k] ** 2
                upd = lr * g[k] / (np.sqrt(h[0][k]) + delta)
            elif kind == "RMSProp":
                rho = p.rms_decay
                h[0][k] = rho * h[0][k] + (1 - rho) * g[k] ** 2
                upd = lr * g[k] / (np.sqrt(h[0][k]) + delta)
            elif kind == "AdaDelta":
                h[0][k] = mu * h[0][k] + (1 - mu) * g[k] ** 2
                u = g[k] * np.sqrt((h[1][k] + delta) / (h[0][k] + delta))
                h[1][k] = mu * h[1][k] + (1 - mu) * u ** 2
                upd = lr * u
            elif kind == "Adam":
                b1, b2, t = mu, p.momentum2, it + 1
                h[0][k] = b1 * h[0][k] + (1 - b1) * g[k]
                h[1][k] = b2 * h[1][k] + (1 - b2) * g[k] ** 2
                upd = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * h[0][k] / (np.sqrt(h[1][k]) + delta)
            w[k] = w[k] - upd
        out.append([x.copy() for x in w])
    return out


def run_ours(p, steps, **net_kw):
    net = ToyNet(**net_kw)
    s = Solver(p, net, feed=feed)
    out = []
    for _ in range(steps):
        s.step(1)
        out.append([net.a.detach().double().numpy().copy(), net.b.detach().double().numpy().copy()])
    return s, out


def assert_trajectories_close(ours, ref, rtol=2e-5):
    for k, (a, b) in enumerate(zip(ours, ref)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-6, err_msg=f"step {k}")


SOLVERS = {
    "SGD": dict(momentum=0.9),
    "Nesterov": dict(momentum=0.9),
    "AdaGrad": dict(momentum=0.0, base_lr=0.5),
    "RMSProp": dict(momentum=0.0, base_lr=0.05, rms_decay=0.9),
    "AdaDelta": dict(momentum=0.95, base_lr=1.0, delta=1e-6),
    "Adam": dict(momentum=0.9, momentum2=0.999, base_lr=0.05),
}


@pytest.mark.parametrize("kind", list(SOLVERS))
def test_each_solver_type_matches_caffes_formula(kind):
    p = solver_param(type=kind, lr_policy="step", gamma=0.5, stepsize=3, **SOLVERS[kind])
    _, ours = run_ours(p, 8)
    assert_trajectories_close(ours, reference_run(kind, p, 8))


def test_sgd_keeps_the_learning_rate_inside_the_history():
    # after an lr drop the history still carries the old rate: torch.optim.SGD would differ
    p = solver_param(lr_policy="step", gamma=0.1, stepsize=1, momentum=0.9, weight_decay=0)
    s, _ = run_ours(p, 2)
    g0, g1 = feed(0)["x"].double().numpy(), feed(1)["x"].double().numpy()
    lr0, lr1 = float(np.float32(0.1)), float(np.float32(0.1)) * 0.1
    np.testing.assert_allclose(s.history[0].double().numpy(), 0.9 * lr0 * g0 + lr1 * g1, rtol=1e-6)


def test_lr_mult_and_decay_mult_scale_per_param():
    p = solver_param(momentum=0.0, weight_decay=0.1)
    kw = dict(lr_mults=(0.0, 3.0), decay_mults=(2.0, 1.0))
    _, ours = run_ours(p, 3, **kw)
    assert_trajectories_close(ours, reference_run("SGD", p, 3, **kw))
    np.testing.assert_array_equal(ours[-1][0], ToyNet().a.detach().double().numpy())  # lr_mult 0


def test_l1_regularization_adds_sign_of_weights():
    p = solver_param(regularization_type="L1", weight_decay=0.05)
    _, ours = run_ours(p, 4)
    assert_trajectories_close(ours, reference_run("SGD", p, 4, l1=True))


def test_iter_size_sums_passes_then_divides():
    p = solver_param(iter_size=3)
    _, ours = run_ours(p, 4)
    assert_trajectories_close(ours, reference_run("SGD", p, 4, iter_size=3))


def test_clip_gradients_uses_global_norm_of_the_unnormalized_sum():
    p = solver_param(iter_size=2, clip_gradients=0.5)
    _, ours = run_ours(p, 4)
    assert_trajectories_close(ours, reference_run("SGD", p, 4, iter_size=2, clip=0.5))
    # and the clip really fires: without it the trajectory differs
    assert not np.allclose(ours[-1][0], reference_run("SGD", p, 4, iter_size=2)[-1][0])


def test_average_loss_window_smooths_the_displayed_loss():
    p = solver_param(average_loss=3)
    seen = []
    s = Solver(p, ToyNet(), feed=feed, on_iteration=lambda sv, rec: seen.append(rec))
    s.step(5)
    losses = [r["loss"] for r in seen]
    for k, r in enumerate(seen):
        window = losses[max(0, k - 2):k + 1]
        assert r["smoothed_loss"] == pytest.approx(sum(window) / len(window), rel=1e-9)
    assert [r["iter"] for r in seen] == list(range(5))


def test_test_interval_runs_test_nets_and_hook():
    p = solver_param(test_interval=2, test_initialization=False)
    p.test_iter.append(2)
    calls = []
    net = ToyNet()
    s = Solver(p, net, feed=feed, test_nets=[(net, feed)], test_hook=lambda sv: calls.append(sv.iter))
    s.step(5)
    assert calls == [2, 4]
    out = s.test(0)
    assert set(out) == {"loss"}


def test_callbacks_run_before_the_passes_and_before_the_update_as_caffes():
    """Solver::Callback: on_start after the diffs are cleared (and the test), before the
    forward/backward passes; on_gradients_ready with the summed diffs, before ApplyUpdate."""
    p = solver_param(iter_size=2)
    net = ToyNet()
    s = Solver(p, net, feed=feed)
    calls = []
    s.add_callback(lambda: calls.append(("start", s.iter, net.a.grad)),
                   lambda: calls.append(("ready", s.iter, net.a.grad.clone())))
    s.step(2)
    assert [(c[0], c[1]) for c in calls] == [("start", 0), ("ready", 0), ("start", 1),
                                              ("ready", 1)]
    assert calls[0][2] is None  # cleared before on_start
    x0, x1 = feed(0)["x"], feed(1)["x"]  # grad_a = x, summed over the iter_size passes
    assert torch.allclose(calls[1][2], x0 + x1)


def test_update_in_diff_leaves_the_update_value_in_the_diff_as_caffe():
    p = solver_param(weight_decay=0.0, momentum=0.0)
    plain, caffe_like = ToyNet(), ToyNet()
    Solver(p, plain, feed=feed).step(1)
    s = Solver(p, caffe_like, feed=feed, update_in_diff=True)
    s.step(1)
    assert torch.equal(plain.a, caffe_like.a)
    assert torch.allclose(caffe_like.a.grad, 0.1 * feed(0)["x"])  # lr * grad: the update
    assert torch.allclose(plain.a.grad, feed(0)["x"])


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_snapshot_and_resume_continue_the_identical_trajectory(tmp_path, kind):
    p = solver_param(type=kind, lr_policy="multistep", gamma=0.5, stepvalue=[2, 4],
                     snapshot=3, snapshot_prefix=str(tmp_path / "toy"), **SOLVERS[kind])
    straight, ours = run_ours(p, 6)
    weights, state = straight.snapshot_paths(3)
    assert weights.is_file() and state.is_file()

    net = ToyNet()
    resumed = Solver(p, net, feed=feed)
    resumed.restore(state)
    assert resumed.iter == 3 and resumed.current_step == 1
    resumed.step(3)
    np.testing.assert_array_equal(net.a.detach().numpy(), straight.net.a.detach().numpy())
    np.testing.assert_array_equal(net.b.detach().numpy(), straight.net.b.detach().numpy())
    for h1, h2 in zip(resumed.history, straight.history):
        torch.testing.assert_close(h1, h2, rtol=0, atol=0)


def test_solver_state_is_safetensors_without_pickle(tmp_path):
    from safetensors import safe_open
    s, _ = run_ours(solver_param(snapshot_prefix=str(tmp_path / "t")), 2)
    _, state = s.snapshot()
    with safe_open(str(state), framework="pt") as f:
        assert f.metadata()["iter"] == "2"
        assert sorted(f.keys()) == ["history.0", "history.1"]
    assert not list(tmp_path.glob("*.tmp"))  # atomic: no temp files left behind


def test_restore_rejects_mismatched_state(tmp_path):
    s, _ = run_ours(solver_param(snapshot_prefix=str(tmp_path / "t")), 1)
    _, state = s.snapshot()
    adam = Solver(solver_param(type="Adam"), ToyNet(), feed=feed)
    with pytest.raises(CaffeFormatError):
        adam.restore(state)  # Adam needs two history blobs per param
    junk = tmp_path / "junk.solverstate.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CaffeFormatError):
        s.restore(junk)


def test_restores_caffes_binary_solverstate(tmp_path):
    net = ToyNet()
    state = caffe_pb2.SolverState(iter=7, current_step=2, learned_net="")
    for x in (np.arange(3), np.arange(4)):
        b = state.history.add()
        b.data.extend(x.astype(np.float32).tolist())
    path = tmp_path / "caffe.solverstate"
    path.write_bytes(state.SerializeToString())
    s = Solver(solver_param(), net, feed=feed)
    s.restore(path)
    assert s.iter == 7 and s.current_step == 2
    np.testing.assert_array_equal(s.history[1].numpy(), np.arange(4, dtype=np.float32).reshape(2, 2))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_trajectory_matches_cpu():
    p = solver_param(type="Adam", **SOLVERS["Adam"])
    _, cpu = run_ours(p, 4)
    net = ToyNet().cuda()
    s = Solver(p, net, feed=feed, device="cuda")
    for _ in range(4):
        s.step(1)
    assert s.history[0].is_cuda
    np.testing.assert_allclose(net.a.detach().cpu().double().numpy(), cpu[-1][0], rtol=1e-5)
