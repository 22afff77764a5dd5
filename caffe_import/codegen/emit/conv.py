"""Convolution and Deconvolution as ``nn.Conv{1,2,3}d`` / ``nn.ConvTranspose{1,2,3}d``: Caffe's
weight layouts are PyTorch's, and so is the output size wherever the padded input holds a
whole kernel."""
from __future__ import annotations

from ...layers.conv import Convolution, Deconvolution, Im2col
from .base import Emission, LayerContext, ParamMap, emits, literal, unsupported


def _value(values: tuple[int, ...]) -> str:
    """One number where every spatial axis has it (``3``), else the tuple (``(3, 1)``)."""
    return literal(values[0] if len(set(values)) == 1 else values)


def _geometry(g) -> str:
    parts = [f"kernel_size={_value(g.kernel)}"]
    for name, value, default in (("stride", g.stride, 1), ("padding", g.pad, 0),
                                 ("dilation", g.dilation, 1)):
        if any(v != default for v in value):
            parts.append(f"{name}={_value(value)}")
    return ", ".join(parts)


@emits(Convolution, Deconvolution)
def emit_conv(layer, ctx: LayerContext) -> Emission:
    if layer.axis != 1:
        raise unsupported(layer, f"convolution over axis {layer.axis} (only axis 1 is written "
                                 "as torch.nn code)")
    n = len(layer.geom.kernel)
    kind = f"ConvTranspose{n}d" if layer.transposed else f"Conv{n}d"
    args = [str(layer.channels), str(layer.num_output), _geometry(layer.geom)]
    if layer.group != 1:
        args.append(f"groups={layer.group}")
    if not layer.bias_term:
        args.append("bias=False")
    out = Emission(init=[f"{ctx.self_attr} = nn.{kind}({', '.join(args)})"],
                   params=[ParamMap("weight", 0)] + ([ParamMap("bias", 1)] if layer.bias_term
                                                     else []))
    for x, y in zip(ctx.bottoms, ctx.tops):
        out.forward.append(f"{y} = {ctx.self_attr}({x})")
    return out


@emits(Im2col)
def emit_im2col(layer, ctx: LayerContext) -> Emission:
    """``caffe_im2col`` (any number of spatial axes) with the output size the net was built
    with; axes before ``axis`` are folded into the batch and back."""
    g, a = layer.geom, layer.axis
    (top,) = layer.top_shapes(ctx.bottom_shapes)
    out = tuple(top[a + 1:])
    args = ", ".join(literal(tuple(v)) for v in (g.kernel, g.stride, g.pad, g.dilation))
    if a == 1:
        return Emission(forward=[f"{ctx.y} = caffe_im2col({ctx.x}, {args}, {literal(out)})"],
                        helpers=("caffe_im2col",))
    flat = f"{ctx.x}.reshape((-1,) + tuple({ctx.x}.shape[{a}:]))"
    return Emission(forward=[f"{ctx.y} = caffe_im2col({flat}, {args}, {literal(out)})"
                             f".reshape(tuple({ctx.x}.shape[:{a}]) + (-1,) + {literal(out)})"],
                    helpers=("caffe_im2col",))
