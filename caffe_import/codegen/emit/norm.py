"""LRN (``nn.LocalResponseNorm`` across channels, with Caffe's ``k``; the runtime's
``caffe_lrn_within`` within a channel, where Caffe ignores ``k``), BatchNorm (``nn.BatchNorm*d``
without affine part; Caffe's scale factor is folded into the running statistics when the
weights are written) and MVN (the runtime's ``caffe_mvn``)."""
from __future__ import annotations

import torch

from ...layers.norm import ACROSS_CHANNELS, MVN, LRN, BatchNorm
from .base import Emission, LayerContext, ParamMap, emits, literal, torch_momentum


@emits(LRN)
def emit_lrn(layer, ctx: LayerContext) -> Emission:
    if layer.region == ACROSS_CHANNELS:
        return Emission(init=[f"{ctx.self_attr} = nn.LocalResponseNorm({layer.size}, "
                              f"alpha={literal(layer.alpha)}, beta={literal(layer.beta)}, "
                              f"k={literal(layer.k)})"],
                        forward=[f"{ctx.y} = {ctx.self_attr}({ctx.x})"])
    return Emission(forward=[f"{ctx.y} = caffe_lrn_within({ctx.x}, {layer.size}, "
                             f"{literal(layer.alpha)}, {literal(layer.beta)})"],
                    helpers=("caffe_lrn_within",))


def _factor(blob: torch.Tensor) -> torch.Tensor:
    s = blob.reshape(())
    return torch.where(s == 0, torch.zeros_like(s), 1.0 / s)


class _Folded:
    """Caffe's accumulator blob -> the statistic (``blob / scale factor``, 0 for factor 0)."""

    def __init__(self, layer) -> None:
        self.layer = layer

    def __call__(self, blob: torch.Tensor) -> torch.Tensor:
        return blob * _factor(self.layer.blobs[2].detach())


@emits(BatchNorm)
def emit_batchnorm(layer, ctx: LayerContext) -> Emission:
    rank = len(ctx.bottom_shapes[0])
    kind = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}[rank]
    momentum = literal(torch_momentum(layer.fraction))
    init = [f"{ctx.self_attr} = nn.{kind}({layer.channels}, eps={literal(layer.eps)}, "
            f"momentum={momentum}, affine=False)"]
    folded = _Folded(layer)
    out = Emission(init=init, params=[ParamMap("running_mean", 0, folded, None),
                                      ParamMap("running_var", 1, folded, None)],
                   extra={"num_batches_tracked": torch.tensor(0, dtype=torch.long)})
    given = layer.param.batch_norm_param.HasField("use_global_stats")
    if given and layer.use_global_stats:
        out.forward.append(f"{ctx.y} = caffe_global_stats_bn({ctx.x}, {ctx.self_attr})  "
                           "# use_global_stats: true")
        out.helpers = ("caffe_global_stats_bn",)
    elif given:
        a = ctx.self_attr
        out.forward.append(f"{ctx.y} = F.batch_norm({ctx.x}, {a}.running_mean, {a}.running_var, "
                           f"training=True, momentum={momentum}, eps={literal(layer.eps)})  "
                           "# use_global_stats: false")
    else:
        out.forward.append(f"{ctx.y} = {ctx.self_attr}({ctx.x})")
    return out


@emits(MVN)
def emit_mvn(layer, ctx: LayerContext) -> Emission:
    return Emission(forward=[f"{ctx.y} = caffe_mvn({ctx.x}, {layer.across_channels}, "
                             f"{layer.normalize_variance}, {literal(layer.eps)})"],
                    helpers=("caffe_mvn",))
