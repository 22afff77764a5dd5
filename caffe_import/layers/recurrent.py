"""Recurrent layers (``recurrent_param``): LSTM, RNN, and LSTM's cell as its own LSTMUnit.

Caffe runs LSTM and RNN as an unrolled net of T steps; here the same arithmetic runs as one
matrix product for the input projection of all T steps (``W x + b``) and a loop over the
recurrence only, so a sequence of T steps costs about T single steps.

Bottoms ``x`` (T, N, ...), ``cont`` (T, N), an optional static input ``x_static`` (N, ...),
and with ``expose_hidden: true`` the initial state ``h_0`` (and ``c_0`` for LSTM), each
(1, N, num_output). ``cont_t`` multiplies ``h_{t-1}`` and LSTM's forget gate (0 starts a new
stream). Tops: the outputs of every step (T, N, num_output), then with ``expose_hidden`` the
final state ``h_T`` (and ``c_T``).

As in Caffe's unrolled net:

* with ``expose_hidden: false`` the state carries over from the previous forward of the same
  layer (zeros at first; the stored state follows the batch size as Caffe's reshaped blobs do:
  a smaller batch keeps the first streams' state, a batch larger than any before starts from
  zeros; see :meth:`_Recurrent.keep_state`);
* no gradient reaches ``cont``, ``h_0``, ``c_0`` or an earlier forward's state, and the
  gradient of a consumer of the exposed ``h_T`` / ``c_T`` tops is dropped;
* the number of time steps is fixed when the layer is built (Caffe's "input number of
  timesteps changed");
* param blobs in Caffe's order (its unrolled net's ``InnerProduct`` layers):
  LSTM ``W_xc (4H, K)``, ``b_c (4H)``, [``W_xc_static (4H, K_s)``], ``W_hc (4H, H)``; RNN
  ``W_xh (H, K)``, ``b_h (H)``, [``W_xh_static (H, K_s)``], ``W_hh (H, H)``, ``W_ho (H, H)``,
  ``b_o (H)``; LSTM's gates are stacked in the order (i, f, o, g).

LSTM's cell is Caffe's LSTMUnit: ``sigmoid(x) = 1 / (1 + exp(-x))`` and
``tanh(x) = 2 sigmoid(2x) - 1`` evaluated in double and rounded; ``f = 0`` where ``cont`` is 0,
else ``cont * sigmoid``; its backward is Caffe's (``f (1 - f)`` with ``f`` already scaled by
``cont``, which is not the derivative when ``cont`` is neither 0 nor 1). RNN:
``h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h)``, ``o_t = tanh(W_ho h_t + b_o)``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import CaffeFormatError
from .base import DTYPE_FLOAT32, CaffeLayer, Shape, check_arity, tracing
from .fillers import fill_or_constant
from .registry import register


def caffe_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """LSTMUnit's ``1. / (1. + exp(-x))``: in double, rounded to ``x``'s dtype."""
    return (1.0 / (1.0 + torch.exp(-x.double()))).to(x.dtype)


def caffe_tanh(x: torch.Tensor) -> torch.Tensor:
    """LSTMUnit's ``2. * sigmoid(2. * x) - 1.``, all in double, rounded once."""
    return (2.0 / (1.0 + torch.exp(-2.0 * x.double())) - 1.0).to(x.dtype)


class _LSTMUnitFn(torch.autograd.Function):
    """``(c_prev (N, H), gates (N, 4H), cont (N,)) -> (c, h)``: Caffe's forward and backward."""

    @staticmethod
    def forward(ctx, c_prev, gates, cont):
        hidden = c_prev.shape[-1]
        pre = gates.reshape(*gates.shape[:-1], 4, hidden)
        i, o = caffe_sigmoid(pre[..., 0, :]), caffe_sigmoid(pre[..., 2, :])
        k = cont.to(gates.dtype).unsqueeze(-1)
        f = torch.where(k == 0, torch.zeros_like(i), k * caffe_sigmoid(pre[..., 1, :]))
        g = caffe_tanh(pre[..., 3, :])
        c = f * c_prev + i * g
        tanh_c = caffe_tanh(c)
        ctx.save_for_backward(c_prev, i, f, o, g, tanh_c)
        return c, o * tanh_c

    @staticmethod
    def backward(ctx, dc, dh):
        c_prev, i, f, o, g, tanh_c = ctx.saved_tensors
        dc = torch.zeros_like(c_prev) if dc is None else dc
        dh = torch.zeros_like(c_prev) if dh is None else dh
        c_term = dc + dh * o * (1 - tanh_c * tanh_c)
        d_gates = torch.stack([c_term * g * i * (1 - i), c_term * c_prev * f * (1 - f),
                               dh * tanh_c * o * (1 - o), c_term * i * (1 - g * g)], dim=-2)
        return c_term * f, d_gates.reshape(*d_gates.shape[:-2], -1), None


def lstm_unit(c_prev: torch.Tensor, gates: torch.Tensor,
              cont: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step as Caffe's LSTMUnit computes it: ``(c_t, h_t)``; gates (i, f, o, g)."""
    return _LSTMUnitFn.apply(c_prev, gates, cont.detach())


@register("LSTMUnit")
class LSTMUnit(CaffeLayer):
    """Bottoms ``c_{t-1}`` (1, N, H), gate inputs (1, N, 4H) in the order (i, f, o, g),
    ``cont`` (1, N); tops ``c_t`` and ``h_t`` (1, N, H). No gradient reaches ``cont``."""

    dtype_policy = DTYPE_FLOAT32

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 3, 2, "c_prev, gate_input, cont")
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        c, x, cont = (tuple(s) for s in bottom_shapes)
        if len(c) != 3 or len(x) != 3 or len(cont) != 2:
            raise CaffeFormatError(f"LSTMUnit takes c_prev and gate_input of 3 axes and cont of "
                                   f"2, got {c}, {x}, {cont}", layer=self.name)
        if c[0] != 1 or x[0] != 1 or cont[0] != 1 or not c[1] == x[1] == cont[1]:
            raise CaffeFormatError(f"LSTMUnit's bottoms must be one time step (1, N, ...) of the "
                                   f"same N, got {c}, {x}, {cont}", layer=self.name)
        if x[2] != 4 * c[2]:
            raise CaffeFormatError(f"gate_input has {x[2]} channels, 4 x the {c[2]} of c_prev "
                                   f"expected", layer=self.name)
        return [c, c]

    def forward(self, c_prev, gates, cont):
        self.top_shapes([tuple(c_prev.shape), tuple(gates.shape), tuple(cont.shape)])
        c, h = lstm_unit(c_prev[0], gates[0], cont[0])
        return c.unsqueeze(0), h.unsqueeze(0)


class _Recurrent(CaffeLayer):
    """What LSTM and RNN share: the bottoms, the carried state and the input projections."""

    dtype_policy = DTYPE_FLOAT32
    #: recurrent state blobs (LSTM: h and c; RNN: h) and the width of the gate input
    state_names: tuple[str, ...] = ("h",)
    gate_factor = 1

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        p = param.recurrent_param
        self.hidden = int(p.num_output)
        if self.hidden <= 0:
            raise CaffeFormatError("recurrent_param.num_output must be given and positive",
                                   layer=param.name)
        self.expose_hidden = bool(p.expose_hidden)
        exposed = len(self.state_names) if self.expose_hidden else 0
        roles = "x, cont, [x_static]" + "".join(f", {s}_0" for s in self.state_names[:exposed])
        check_arity(param, (2 + exposed, 3 + exposed), 1 + exposed, roles)
        self.static_input = len(param.bottom) == 3 + exposed
        x = self.bottom_shapes[0]
        if len(x) < 2:
            raise CaffeFormatError(f"bottom x must have at least 2 axes (T, N, ...), got {x}",
                                   layer=param.name)
        self.steps, self.k = x[0], math.prod(x[2:])
        self.k_static = math.prod(self.bottom_shapes[2][1:]) if self.static_input else 0
        self._state: tuple[torch.Tensor, ...] | None = None
        if not self.expose_hidden:
            self.export_unsupported = ("the state carries over from one forward to the next "
                                       "(expose_hidden: false); a graph cannot hold it")
        self.top_shapes(self.bottom_shapes)
        self.add_blobs()
        self.reset_parameters()

    def add_blobs(self) -> None:
        """Caffe's param blobs, in its order (subclasses add the rest)."""
        width = self.gate_factor * self.hidden
        self.add_blob((width, self.k))
        self.add_blob((width,))
        if self.static_input:
            self.add_blob((width, self.k_static))
        self.add_blob((width, self.hidden))

    def reset_parameters(self) -> None:
        """``weight_filler`` for the weights, ``bias_filler`` for the biases (absent:
        constant 0)."""
        p = self.param.recurrent_param
        for blob in self.blobs:
            field = "bias_filler" if blob.dim() == 1 else "weight_filler"
            fill_or_constant(blob.data, p, field, 0.0, self.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shapes = [tuple(s) for s in bottom_shapes]
        x, cont = shapes[0], shapes[1]
        if len(x) < 2 or x[0] != self.steps:
            raise CaffeFormatError(f"bottom x {x} must be (T, N, ...) with the T = {self.steps} "
                                   f"time steps the layer was built for", layer=self.name)
        n = x[1]
        if math.prod(x[2:]) != self.k:
            raise CaffeFormatError(f"bottom x {x} has {math.prod(x[2:])} inputs per step, the "
                                   f"layer was built for {self.k}", layer=self.name)
        if cont != (self.steps, n):
            raise CaffeFormatError(f"bottom cont {cont} must be (T, N) = {(self.steps, n)}",
                                   layer=self.name)
        if self.static_input and (len(shapes[2]) < 1 or shapes[2][0] != n
                                  or math.prod(shapes[2][1:]) != self.k_static):
            raise CaffeFormatError(f"bottom x_static {shapes[2]} must be (N, ...) with N = {n} "
                                   f"and {self.k_static} inputs", layer=self.name)
        state = (1, n, self.hidden)
        for name, shape in zip(self.state_names, shapes[2 + self.static_input:]):
            if shape != state:
                raise CaffeFormatError(f"bottom {name}_0 {shape} must be {state}",
                                       layer=self.name)
        exposed = [state] * len(self.state_names) if self.expose_hidden else []
        return [(self.steps, n, self.hidden)] + exposed

    def reset(self) -> None:
        """Caffe's ``RecurrentLayer::Reset``: the carried state back to zeros."""
        self._state = None

    def initial_state(self, bottoms: Sequence[torch.Tensor], n: int,
                      like: torch.Tensor) -> list[torch.Tensor]:
        """``h_0`` (and ``c_0``) as (N, H), no gradient: the exposed bottoms, else the state
        the previous forward left (its first ``n`` streams; zeros where it has none)."""
        if self.expose_hidden:
            return [b.detach()[0] for b in bottoms[2 + self.static_input:]]
        return self.stored_state(n, like)

    @torch.compiler.disable  # the carried state is the module's: eager even in a compiled net
    def stored_state(self, n: int, like: torch.Tensor) -> list[torch.Tensor]:
        """The state the previous forward left, as (N, H) copies (zeros where none)."""
        if self._state is None or self._state[0].shape[0] < n:
            return [like.new_zeros((n, self.hidden)) for _ in self.state_names]
        return [s[:n].to(device=like.device, dtype=like.dtype, copy=True) for s in self._state]

    @torch.compiler.disable  # eager even in a compiled net (see stored_state)
    def keep_state(self, final: Sequence[torch.Tensor]) -> None:
        """Store the final state as Caffe's ``h_T`` (``c_T``) blobs hold it: a blob keeps its
        memory when the batch shrinks (rows past the batch keep older values, which a later
        larger batch within that size reads back) and starts from zeros when it grows. Nothing
        is stored from meta tensors or while tracing."""
        n = final[0].shape[0]
        if final[0].device.type == "meta" or tracing():
            return
        if self._state is None or self._state[0].shape[0] < n:
            self._state = tuple(s.detach().clone() for s in final)
            return
        kept = []
        for old, new in zip(self._state, final):
            buffer = old.to(device=new.device, dtype=new.dtype, copy=True)
            buffer[:n] = new.detach()
            kept.append(buffer)
        self._state = tuple(kept)

    def projections(self, x: torch.Tensor, x_static: torch.Tensor | None):
        """``W x_t + b`` for all T steps in one product (T, N, width), and the static input's
        ``W_static x_static`` (N, width) or None."""
        blobs = self.blobs
        t, n = x.shape[:2]
        xw = (x.reshape(t * n, self.k) @ blobs[0].t() + blobs[1]).reshape(t, n, -1)
        if x_static is None:
            return xw, None
        return xw, x_static.reshape(n, self.k_static) @ blobs[2].t()

    def forward(self, *bottoms: torch.Tensor):
        self.top_shapes([tuple(b.shape) for b in bottoms])
        x, cont = bottoms[0], bottoms[1].detach().to(bottoms[0].dtype)
        xw, static = self.projections(x, bottoms[2] if self.static_input else None)
        state = self.initial_state(bottoms, x.shape[1], xw)
        out, final = self.run(xw, static, cont, state)
        if not self.expose_hidden:
            self.keep_state(final)
        # Caffe's exposed h_T / c_T share data, not diff, with the unrolled net: a consumer's
        # gradient lands in them (a leaf here) and goes no further
        exposed = ([s.detach().unsqueeze(0).requires_grad_(torch.is_grad_enabled()) for s in final]
                   if self.expose_hidden else [])
        return (out, *exposed)

    def run(self, xw, static, cont, state):
        """The recurrence: ``(outputs (T, N, H), final state)``."""
        raise NotImplementedError


@register("LSTM")
class LSTM(_Recurrent):
    """Caffe's LSTM (see the module docstring): tops ``h`` (T, N, H) [, ``h_T``, ``c_T``]."""

    state_names = ("h", "c")
    gate_factor = 4

    def run(self, xw, static, cont, state):
        w_hc = self.blobs[-1]
        h, c = state
        hs = []
        for t in range(xw.shape[0]):
            gates = (h * cont[t].unsqueeze(-1)) @ w_hc.t() + xw[t]
            if static is not None:
                gates = gates + static
            c, h = lstm_unit(c, gates, cont[t])
            hs.append(h)
        return torch.stack(hs), (h, c)


@register("RNN")
class RNN(_Recurrent):
    """Caffe's RNN (see the module docstring): tops ``o`` (T, N, H) [, ``h_T``]."""

    def add_blobs(self) -> None:
        super().add_blobs()
        self.add_blob((self.hidden, self.hidden))
        self.add_blob((self.hidden,))

    def run(self, xw, static, cont, state):
        blobs = self.blobs
        w_hh, w_ho, b_o = blobs[-3], blobs[-2], blobs[-1]
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
        out = torch.tanh(hidden.reshape(t * n, -1) @ w_ho.t() + b_o).reshape(t, n, -1)
        return out, (h,)
