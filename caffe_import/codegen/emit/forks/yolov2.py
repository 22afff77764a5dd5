"""YOLOv2's ``Reorg`` in darknet's element order (the layer module's own ``reorg_index``)."""
from __future__ import annotations

from ....forks.yolov2.layers import Reorg
from ..base import Emission, LayerContext, emits


@emits(Reorg)
def emit_reorg(layer, ctx: LayerContext) -> Emission:
    x, s = ctx.x, layer.stride
    index = f"reorg_index(*{x}.shape, {s}, device={x}.device)"
    if not layer.reverse:
        shape = (f"{x}.shape[0], {x}.shape[1] * {s * s}, {x}.shape[2] // {s}, "
                 f"{x}.shape[3] // {s}")
        return Emission(forward=[f"{ctx.y} = {x}.reshape(-1)[{index}].reshape({shape})"],
                        helpers=("reorg_index",))
    shape = f"{x}.shape[0], {x}.shape[1] // {s * s}, {x}.shape[2] * {s}, {x}.shape[3] * {s}"
    return Emission(forward=[
        f"index = {index}",
        f"index = torch.empty_like(index).scatter(0, index, torch.arange(index.numel(), "
        f"device={x}.device))  # reverse: the inverse map",
        f"{ctx.y} = {x}.reshape(-1)[index].reshape({shape})"], helpers=("reorg_index",))
