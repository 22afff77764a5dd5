"""Loss layers and Accuracy as calls of the runtime's ``caffe_*_loss`` functions (Caffe's
normalisation, clamping and gradients); the net's ``loss_weight``s are the module's
``loss_weights``. A user who fine-tunes drops the calls or calls the functions alone."""
from __future__ import annotations

import math

from ...layers.loss import (BATCH_SIZE, FULL, NONE, VALID, Accuracy, ContrastiveLoss,
                            EuclideanLoss, HingeLoss, InfogainLoss, MultinomialLogisticLoss,
                            SigmoidCrossEntropyLoss, SoftmaxWithLoss)
from .base import (Emission, LayerContext, emits, example_input, integers, literal,
                   unsupported)

_MODES = {FULL: "full", VALID: "valid", BATCH_SIZE: "batch_size", NONE: "none"}


def _ignore(layer) -> str:
    return "" if layer.ignore_label is None else f", ignore_label={layer.ignore_label}"


def _one(layer, ctx: LayerContext, fn: str, args: str) -> Emission:
    """``top = fn(bottom 0, bottom 1, args)``; a second top is the softmax along the layer's
    axis (SoftmaxWithLoss, InfogainLoss: Caffe sends no gradient back through it) or
    Accuracy's per-class accuracy."""
    out = Emission(forward=[f"{ctx.y} = {fn}({', '.join(ctx.bottoms[:2])}{args})"],
                   helpers=(fn,))
    if len(ctx.tops) == 1:
        return out
    if isinstance(layer, Accuracy):
        out.forward.append(f"{ctx.tops[1]} = caffe_accuracy_per_class("
                           f"{', '.join(ctx.bottoms[:2])}{args})")
        out.helpers += ("caffe_accuracy_per_class",)
    elif isinstance(layer, (SoftmaxWithLoss, InfogainLoss)):
        out.forward.append(f"{ctx.tops[1]} = caffe_softmax({ctx.x}.detach(), {layer.axis})")
        out.helpers += ("caffe_softmax",)
    else:
        raise unsupported(layer, "a second top of this loss layer is not written as code")
    return out


@emits(SoftmaxWithLoss)
def emit_softmax_loss(layer, ctx: LayerContext) -> Emission:
    axis = "" if layer.axis == 1 else f", axis={layer.axis}"
    mode = "" if layer.mode == VALID else f', normalization="{_MODES[layer.mode]}"'
    return _one(layer, ctx, "caffe_softmax_loss", f"{axis}{_ignore(layer)}{mode}")


@emits(SigmoidCrossEntropyLoss)
def emit_sigmoid_loss(layer, ctx: LayerContext) -> Emission:
    mode = "" if layer.mode == BATCH_SIZE else f', normalization="{_MODES[layer.mode]}"'
    return _one(layer, ctx, "caffe_sigmoid_cross_entropy_loss", f"{_ignore(layer)}{mode}")


@emits(EuclideanLoss)
def emit_euclidean_loss(layer, ctx: LayerContext) -> Emission:
    return _one(layer, ctx, "caffe_euclidean_loss", "")


@emits(MultinomialLogisticLoss)
def emit_multinomial_loss(layer, ctx: LayerContext) -> Emission:
    return _one(layer, ctx, "caffe_multinomial_logistic_loss", "")


@emits(HingeLoss)
def emit_hinge_loss(layer, ctx: LayerContext) -> Emission:
    return _one(layer, ctx, "caffe_hinge_loss", "" if layer.norm == 1 else ", norm=2")


@emits(Accuracy)
def emit_accuracy(layer, ctx: LayerContext) -> Emission:
    args = "" if layer.top_k == 1 else f", top_k={layer.top_k}"
    args += "" if layer.axis == 1 else f", axis={layer.axis}"
    return _one(layer, ctx, "caffe_accuracy", f"{args}{_ignore(layer)}")


@emits(InfogainLoss)
def emit_infogain_loss(layer, ctx: LayerContext) -> Emission:
    """H is the third bottom, or the matrix file ``source`` as a buffer ``<layer>.infogain``."""
    axis = "" if layer.axis == 1 else f", axis={layer.axis}"
    mode = "" if layer.mode == VALID else f', normalization="{_MODES[layer.mode]}"'
    if len(ctx.bottoms) == 3:
        return _one(layer, ctx, "caffe_infogain_loss",
                    f", {ctx.bottoms[2]}{axis}{_ignore(layer)}{mode}")
    c = layer.infogain.shape[0]
    out = _one(layer, ctx, "caffe_infogain_loss",
               f", {ctx.self_attr}.infogain{axis}{_ignore(layer)}{mode}")
    out.init = [f"{ctx.self_attr} = nn.Module()",
                f'{ctx.self_attr}.register_buffer("infogain", torch.empty({c}, {c}))']
    out.extra = {"infogain": layer.infogain.detach().clone()}
    return out


@example_input(SoftmaxWithLoss, InfogainLoss, Accuracy, MultinomialLogisticLoss, HingeLoss,
               SigmoidCrossEntropyLoss)
def example_labels(layer, index: int, shape, generator):
    """Labels of the layer's classes (0 or 1 for sigmoid targets)."""
    if index != 1:
        return None
    if isinstance(layer, SigmoidCrossEntropyLoss):
        return integers(shape, 2, generator)
    scores = layer.bottom_shapes[0]
    axis = getattr(layer, "axis", None)
    classes = scores[axis] if axis is not None else math.prod(scores[1:])
    return integers(shape, int(classes), generator)


@emits(ContrastiveLoss)
def emit_contrastive_loss(layer, ctx: LayerContext) -> Emission:
    """``caffe_contrastive_loss`` (Caffe's backward, ``d + 1e-4``)."""
    legacy = ", legacy=True" if layer.legacy else ""
    return Emission(forward=[f"{ctx.y} = caffe_contrastive_loss({', '.join(ctx.bottoms)}, "
                             f"{literal(layer.margin)}{legacy})"],
                    helpers=("caffe_contrastive_loss",))


@example_input(ContrastiveLoss)
def example_similar(layer, index: int, shape, generator):
    """Similarity labels 0 / 1."""
    return integers(shape, 2, generator) if index == 2 else None
