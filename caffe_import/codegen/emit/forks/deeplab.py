"""DeepLab v2's ``Interp`` (the runtime's ``caffe_interp``; the output size written out from
the layer's zoom / shrink / height and width), its data layer (an input) and ``MatWrite``
(writes nothing: its bottoms are dropped)."""
from __future__ import annotations

from ....forks.deeplab.layers import ImageSegData, Interp, MatWrite
from ..base import Emission, LayerContext, emits
from ..input import emit_nothing
from ..misc import emit_silence

emits(ImageSegData)(emit_nothing)
emits(MatWrite)(emit_silence)


def _size(p, axis: int, x: str) -> str:
    """The output length along spatial ``axis`` (0: height) as an expression of ``x``'s."""
    shrink, zoom = p.HasField("shrink_factor"), p.HasField("zoom_factor")
    if shrink == zoom and p.HasField("height") and p.HasField("width"):
        return str(int(p.width if axis else p.height))
    size = f"{x}.shape[{2 + axis}]"
    if shrink:
        size = f"(({size} - 1) // {int(p.shrink_factor)} + 1)"
    if zoom:
        size = f"{size} + ({size} - 1) * {int(p.zoom_factor) - 1}"
    return size


@emits(Interp)
def emit_interp(layer, ctx: LayerContext) -> Emission:
    x, p = ctx.x, layer.param.interp_param
    lines = []
    if layer.pad_beg or layer.pad_end:
        b, e = -layer.pad_beg, layer.pad_end
        lines.append(f"{ctx.y} = {x}[:, :, {b}:{x}.shape[2] + {e}, {b}:{x}.shape[3] + {e}]")
        x = ctx.y
    lines.append(f"{ctx.y} = caffe_interp({x}, {_size(p, 0, x)}, {_size(p, 1, x)})")
    return Emission(forward=lines, helpers=("caffe_interp",))
