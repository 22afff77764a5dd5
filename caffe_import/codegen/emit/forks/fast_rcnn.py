"""Fast R-CNN: ``ROIPooling`` (the runtime's ``caffe_roi_pooling``, roi by roi in plain
Python), ``SmoothL1Loss`` (the runtime's ``caffe_smooth_l1_loss``) and py-faster-rcnn's
proposal layer where the net is built with the built-in replacement of that Python layer."""
from __future__ import annotations

from ....forks.fast_rcnn.layers import ProposalLayer, ROIPooling, SmoothL1Loss
from ..base import Emission, LayerContext, emits, literal, unsupported


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


@emits(ProposalLayer, subclasses=True)
def emit_proposal(layer, ctx: LayerContext) -> Emission:
    """py-faster-rcnn's proposal layer (the built-in replacement of the Python layer, with
    its phase's settings), through the runtime's ``caffe_proposal``; its anchors are
    constants."""
    if len(ctx.tops) != 1:
        raise unsupported(layer, "the proposal layer's scores top is not written as code")
    cfg = layer.cfg
    anchors = literal([[float(v) for v in row] for row in layer.anchors])
    args = [*ctx.bottoms, anchors, str(layer.feat_stride), str(int(cfg["pre_nms_top_n"])),
            str(int(cfg["post_nms_top_n"])), literal(float(cfg["nms_thresh"])),
            literal(float(cfg["min_size"]))]
    return Emission(forward=[f"{ctx.y} = caffe_proposal({', '.join(args)})"],
                    helpers=("caffe_proposal",))
