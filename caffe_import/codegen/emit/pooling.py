"""Pooling: ``nn.MaxPool2d`` / ``nn.AvgPool2d`` where PyTorch's window grid is Caffe's for every
input size (pad at most half the kernel, and with ``pad: 0`` a kernel no smaller than the
stride), global pooling as the adaptive modules, else the runtime's ``caffe_max_pool2d`` /
``caffe_avg_pool2d`` (Caffe's ceil rounding and last-window clip)."""
from __future__ import annotations

from ...layers.pooling import MAX, SPP, STOCHASTIC, Pooling
from .base import Emission, LayerContext, emits, literal, unsupported


def torch_grid_is_caffes(kernel, stride, pad) -> bool:
    """Whether PyTorch's pooling (``ceil_mode``) lays Caffe's windows for any input size."""
    return all(2 * p <= k and (any(pad) or k >= s) for k, s, p in zip(kernel, stride, pad))


def _one(v) -> object:
    return v[0] if v[0] == v[1] else v


@emits(Pooling)
def emit_pooling(layer, ctx: LayerContext) -> Emission:
    """Also the emitter of a fork's Pooling subclass whose ``extra_cells`` adds output cells
    (registered by its fork's emitter module)."""
    if layer.pool == STOCHASTIC:
        return _stochastic(layer, ctx)
    name = "Max" if layer.pool == MAX else "Avg"
    k, s, p = layer.kernel, layer.stride, layer.pad
    args = f"{literal(k)}, {literal(s)}, {literal(p)}{'' if layer.ceil_mode else ', ceil_mode=False'}"
    if layer.want_mask:
        return Emission(forward=[f"{ctx.tops[0]}, {ctx.tops[1]} = "
                                 f"caffe_max_pool2d_with_mask({ctx.x}, {args})"],
                        helpers=("caffe_max_pool2d_with_mask",))
    if layer.global_pooling:
        return Emission(init=[f"{ctx.self_attr} = nn.Adaptive{name}Pool2d(1)"],
                        forward=[f"{ctx.y} = {ctx.self_attr}({ctx.x})"])
    extra = layer.extra_cells(k)
    if torch_grid_is_caffes(k, s, p) and not extra:
        return _torch_pooling(layer, ctx, name)
    fn = f"caffe_{name.lower()}_pool2d"
    if extra:
        args += f", extra={extra}"
    return Emission(forward=[f"{ctx.y} = {fn}({ctx.x}, {args})"], helpers=(fn,))


def _torch_pooling(layer, ctx: LayerContext, name: str) -> Emission:
    args = [f"{literal(_one(layer.kernel))}", f"stride={literal(_one(layer.stride))}"]
    if any(layer.pad):
        args.append(f"padding={literal(_one(layer.pad))}")
    if layer.ceil_mode:
        args.append("ceil_mode=True")
    return Emission(init=[f"{ctx.self_attr} = nn.{name}Pool2d({', '.join(args)})"],
                    forward=[f"{ctx.y} = {ctx.self_attr}({ctx.x})"])


def _stochastic(layer, ctx: LayerContext) -> Emission:
    """STOCHASTIC pooling: the module's ``training`` is Caffe's phase (sampling in TRAIN)."""
    kernel = "tuple(" + ctx.x + ".shape[2:])" if layer.global_pooling else literal(layer.kernel)
    ceil = "" if layer.ceil_mode else ", ceil_mode=False"
    return Emission(forward=[f"{ctx.y} = caffe_stochastic_pool2d({ctx.x}, {kernel}, "
                             f"{literal(layer.stride)}, self.training{ceil})"],
                    helpers=("caffe_stochastic_pool2d",))


def _spp_level(pool, ctx: LayerContext) -> tuple[str, str]:
    """One SPP level as a call of the runtime's Caffe pooling (its geometry fixed by the
    bottom's size the net was built with): (expression, helper)."""
    args = f"{literal(pool.kernel)}, {literal(pool.stride)}"
    ceil = "" if pool.ceil_mode else ", ceil_mode=False"
    if pool.pool == STOCHASTIC:
        if any(pool.pad):
            raise unsupported(pool, "STOCHASTIC SPP with padding is not written as code")
        return (f"caffe_stochastic_pool2d({ctx.x}, {args}, self.training{ceil})",
                "caffe_stochastic_pool2d")
    fn = "caffe_max_pool2d" if pool.pool == MAX else "caffe_avg_pool2d"
    return f"{fn}({ctx.x}, {args}, {literal(pool.pad)}{ceil})", fn


@emits(SPP)
def emit_spp(layer, ctx: LayerContext) -> Emission:
    """Each level a Caffe pooling whose kernel, stride and pad come from the bottom's size
    the net was built with (a module for that input size, as Caffe's reshape fixes them);
    the levels flattened and concatenated (one level: its (N, C, 1, 1))."""
    levels = [_spp_level(pool, ctx) for pool in layer.levels(ctx.bottom_shapes[0])]
    helpers = tuple(dict.fromkeys(h for _, h in levels))
    if len(levels) == 1:
        return Emission(forward=[f"{ctx.y} = {levels[0][0]}"], helpers=helpers)
    lines = [f"{ctx.y} = torch.cat(["]
    lines += [f"    {expr}.flatten(1)," for expr, _ in levels]
    lines.append("], dim=1)")
    return Emission(forward=lines, helpers=helpers)
