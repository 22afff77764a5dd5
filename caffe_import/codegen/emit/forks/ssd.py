"""SSD: ``Normalize`` (the runtime's ``caffe_normalize``, its scale in a ``ParameterDict``),
``Permute`` (``permute`` + ``contiguous``), ``PriorBox`` (the runtime's ``caffe_prior_box``
on the layer's box sizes, written as constants), ``DetectionOutput`` (decoding, per-class
NMS and top-k as plain torch code: the runtime's ``caffe_detection_output``) and its data
layers (inputs)."""
from __future__ import annotations

from ....forks.ssd.layers import (AnnotatedData, DetectionOutput, Normalize, Permute, PriorBox,
                                  VideoData)
from ..base import Emission, LayerContext, ParamMap, emits, literal
from ..input import emit_nothing

emits(AnnotatedData, VideoData)(emit_nothing)


@emits(Normalize)
def emit_normalize(layer, ctx: LayerContext) -> Emission:
    shape = literal(tuple(layer.blobs[0].shape))
    a = ctx.self_attr
    return Emission(init=[f"{a} = nn.ParameterDict({{\"scale\": nn.Parameter(torch.empty({shape}))}})"],
                    forward=[f"{ctx.y} = caffe_normalize({ctx.x}, {a}.scale, "
                             f"{layer.across_spatial}, {literal(layer.eps)})"],
                    params=[ParamMap("scale", 0)], helpers=("caffe_normalize",))


@emits(Permute)
def emit_permute(layer, ctx: LayerContext) -> Emission:
    order = ", ".join(map(str, layer.order))
    if tuple(layer.order) == tuple(range(len(layer.order))):
        return Emission(forward=[f"{ctx.y} = {ctx.x}"])
    return Emission(forward=[f"{ctx.y} = {ctx.x}.permute({order}).contiguous()"])


@emits(PriorBox)
def emit_prior_box(layer, ctx: LayerContext) -> Emission:
    feat, image = ctx.bottoms[:2]
    sizes = literal([tuple(s) for s in layer._sizes()])
    args = [feat, image, sizes, literal(list(layer.variance)), literal(layer.offset),
            literal(layer.clip)]
    if layer.img is not None:
        args.append(f"img={literal((int(layer.img[0]), int(layer.img[1])))}")
    if layer.step is not None:
        args.append(f"step={literal(tuple(float(s) for s in layer.step))}")
    return Emission(forward=[f"{ctx.y} = caffe_prior_box({', '.join(args)})"],
                    helpers=("caffe_prior_box",))


@emits(DetectionOutput)
def emit_detection_output(layer, ctx: LayerContext) -> Emission:
    loc, conf, prior = ctx.bottoms[:3]
    args = [loc, conf, prior, f"num_classes={layer.num_classes}",
            f"share_location={layer.share_location}", f"background={layer.background}",
            f"code_type={layer.code_type}", f"variance_in_target={layer.variance_in_target}",
            f"confidence={literal(layer.confidence)}",
            f"nms_threshold={literal(layer.nms_threshold)}", f"eta={literal(layer.eta)}",
            f"top_k={layer.top_k}", f"keep_top_k={layer.keep_top_k}"]
    return Emission(forward=[f"{ctx.y} = caffe_detection_output({', '.join(args)})"],
                    helpers=("caffe_detection_output",))
