"""Fast R-CNN: ``ROIPooling`` (the runtime's ``caffe_roi_pooling``, roi by roi in plain
Python) and ``SmoothL1Loss`` (the runtime's ``caffe_smooth_l1_loss``)."""
from __future__ import annotations

from ....forks.fast_rcnn.layers import ROIPooling, SmoothL1Loss
from ..base import Emission, LayerContext, emits, literal


@emits(ROIPooling)
def emit_roi_pooling(layer, ctx: LayerContext) -> Emission:
    x, rois = ctx.bottoms
    ph, pw = layer.pooled
    return Emission(forward=[f"{ctx.y} = caffe_roi_pooling({x}, {rois}, {ph}, {pw}, "
                             f"{literal(layer.spatial_scale)})"],
                    helpers=("caffe_roi_pooling",))


@emits(SmoothL1Loss)
def emit_smooth_l1_loss(layer, ctx: LayerContext) -> Emission:
    args = ", ".join(ctx.bottoms[:2])
    weights = "".join(f", {w}" for w in ctx.bottoms[2:4])
    return Emission(forward=[f"{ctx.y} = caffe_smooth_l1_loss({args}, "
                             f"{literal(layer.sigma2)}{weights})"],
                    helpers=("caffe_smooth_l1_loss",))
