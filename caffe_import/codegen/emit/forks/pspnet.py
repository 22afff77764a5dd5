"""PSPNet's ``BN``: ``nn.BatchNorm2d`` with its slope and bias as the affine ``weight`` and
``bias`` (Caffe's ``(1, C, 1, 1)`` blobs flattened) and its moving statistics as the running
ones; ``frozen`` layers always use those (the runtime's ``caffe_global_stats_bn``)."""
from __future__ import annotations

import torch

from ....forks.pspnet.layers import PSPNetBN
from ..base import Emission, LayerContext, ParamMap, emits, literal, torch_momentum


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1)


def _column(g: torch.Tensor) -> torch.Tensor:
    return g.reshape(1, -1, 1, 1)


@emits(PSPNetBN)
def emit_pspnet_bn(layer, ctx: LayerContext) -> Emission:
    momentum, eps = literal(torch_momentum(layer.momentum)), literal(layer.eps)
    out = Emission(init=[f"{ctx.self_attr} = nn.BatchNorm2d({layer.channels}, eps={eps}, "
                         f"momentum={momentum})"],
                   params=[ParamMap("weight", 0, _flat, _column),
                           ParamMap("bias", 1, _flat, _column),
                           ParamMap("running_mean", 2, _flat, None),
                           ParamMap("running_var", 3, _flat, None)],
                   extra={"num_batches_tracked": torch.tensor(0, dtype=torch.long)})
    if layer.frozen:
        out.forward.append(f"{ctx.y} = caffe_global_stats_bn({ctx.x}, {ctx.self_attr})  # frozen")
        out.helpers = ("caffe_global_stats_bn",)
    else:
        out.forward.append(f"{ctx.y} = {ctx.self_attr}({ctx.x})")
    return out
