"""Pooling: ``nn.MaxPool2d`` / ``nn.AvgPool2d`` where PyTorch's window grid is Caffe's for every
input size (pad at most half the kernel, and with ``pad: 0`` a kernel no smaller than the
stride), global pooling as the adaptive modules, else the runtime's ``caffe_max_pool2d`` /
``caffe_avg_pool2d`` (Caffe's ceil rounding and last-window clip)."""
from __future__ import annotations

from ...layers.pooling import AVE, MAX, Pooling
from .base import Emission, LayerContext, emits, literal, unsupported


def torch_grid_is_caffes(kernel, stride, pad) -> bool:
    """Whether PyTorch's pooling (``ceil_mode``) lays Caffe's windows for any input size."""
    return all(2 * p <= k and (any(pad) or k >= s) for k, s, p in zip(kernel, stride, pad))


def _one(v) -> object:
    return v[0] if v[0] == v[1] else v


@emits(Pooling)
def emit_pooling(layer, ctx: LayerContext) -> Emission:
    if layer.pool not in (MAX, AVE):
        raise unsupported(layer, "STOCHASTIC pooling is not written as code")
    if layer.want_mask:
        raise unsupported(layer, "MAX pooling's mask top is not written as code")
    name = "Max" if layer.pool == MAX else "Avg"
    if layer.global_pooling:
        return Emission(init=[f"{ctx.self_attr} = nn.Adaptive{name}Pool2d(1)"],
                        forward=[f"{ctx.y} = {ctx.self_attr}({ctx.x})"])
    k, s, p = layer.kernel, layer.stride, layer.pad
    if torch_grid_is_caffes(k, s, p):
        args = [f"{literal(_one(k))}", f"stride={literal(_one(s))}"]
        if any(p):
            args.append(f"padding={literal(_one(p))}")
        if layer.ceil_mode:
            args.append("ceil_mode=True")
        return Emission(init=[f"{ctx.self_attr} = nn.{name}Pool2d({', '.join(args)})"],
                        forward=[f"{ctx.y} = {ctx.self_attr}({ctx.x})"])
    fn = f"caffe_{name.lower()}_pool2d"
    call = (f"{ctx.y} = {fn}({ctx.x}, {literal(k)}, {literal(s)}, {literal(p)}"
            f"{'' if layer.ceil_mode else ', ceil_mode=False'})")
    return Emission(forward=[call], helpers=(fn,))
