"""LSTM, RNN and LSTMUnit as calls of the runtime's ``caffe_lstm``, ``caffe_rnn`` and
``caffe_lstm_unit`` (Caffe's LSTMUnit arithmetic and backward). The params are a
``ParameterDict`` named as Caffe's unrolled net names its blobs (``lstm.W_xc``, ``lstm.b_c``,
[``lstm.W_xc_static``], ``lstm.W_hc``; RNN ``W_xh``, ``b_h``, [``W_xh_static``], ``W_hh``,
``W_ho``, ``b_o``). With ``expose_hidden: false`` the final state is kept on the layer's
attribute (``lstm.state``, not in the ``state_dict``) and read by the next forward, as
Caffe's (and ``CaffeNet``'s) layer does; the module's ``reset()`` clears it."""
from __future__ import annotations

from ...layers.recurrent import LSTM, RNN, LSTMUnit
from .base import Emission, LayerContext, ParamMap, emits, literal

_NAMES = {LSTM: ("W_xc", "b_c", "W_xc_static", "W_hc"),
          RNN: ("W_xh", "b_h", "W_xh_static", "W_hh", "W_ho", "b_o")}


def _param_names(layer) -> list[str]:
    names = list(_NAMES[type(layer)])
    if not layer.static_input:
        names.remove(names[2])
    return names


@emits(LSTM, RNN)
def emit_recurrent(layer, ctx: LayerContext) -> Emission:
    names = _param_names(layer)
    items = ", ".join(f'"{n}": nn.Parameter(torch.empty({literal(tuple(b.shape))}))'
                      for n, b in zip(names, layer.blobs))
    init = [f"{ctx.self_attr} = nn.ParameterDict({{{items}}})"]
    p = {n: f"{ctx.self_attr}.{n}" for n in names}
    lstm = isinstance(layer, LSTM)
    weights = ([p["W_xc"], p["b_c"], p["W_hc"]] if lstm else
               [p["W_xh"], p["b_h"], p["W_hh"], p["W_ho"], p["b_o"]])
    if layer.static_input:
        weights += [ctx.bottoms[2], p[names[2]]]
    x, cont = ctx.bottoms[:2]
    count = len(layer.state_names)
    fn = "caffe_lstm" if lstm else "caffe_rnn"
    out = Emission(init=init, params=[ParamMap(n, i) for i, n in enumerate(names)])
    if layer.expose_hidden:
        state = ", ".join(f"{b}.detach()[0]" for b in ctx.bottoms[2 + layer.static_input:])
        call = f"{fn}({x}, {cont}, [{state}], {', '.join(weights)})"
        out.forward = [f"{', '.join(ctx.tops)} = caffe_exposed(*{call})"]
        out.helpers = (fn, "caffe_exposed")
        return out
    stored = f"{ctx.self_attr}.state"
    state = f"caffe_recurrent_state({stored}, {count}, {x}.shape[1], {layer.hidden}, {x})"
    out.init.append(f"{stored} = None  # the final state, read by the next forward "
                    f"(expose_hidden: false); reset() clears it")
    call = f"{fn}({x}, {cont}, {state}, {', '.join(weights)})"
    out.forward = [f"{ctx.y}, {stored} = caffe_carry({stored}, *{call})"]
    out.helpers = (fn, "caffe_recurrent_state", "caffe_carry")
    out.reset = [f"{stored} = None"]
    return out


@emits(LSTMUnit)
def emit_lstm_unit(layer, ctx: LayerContext) -> Emission:
    """``c, h = caffe_lstm_unit(c_prev, gates, cont)`` (Caffe's backward)."""
    call = f"caffe_lstm_unit({', '.join(ctx.bottoms)})"
    return Emission(forward=[f"{ctx.tops[0]}, {ctx.tops[1]} = {call}"],
                    helpers=("caffe_lstm_unit",))
