"""Input shapes of an export: made-up example inputs, and the shapes every blob takes for them
(each layer's own ``top_shapes``, as Caffe's ``Net::Reshape`` sets them), checked before any
tracing so that a refusal names the layer and its rule."""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..errors import CaffeFormatError

InputSpec = Mapping[str, "torch.Tensor | np.ndarray | Sequence[int]"]


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1x3x500x500"`` (or with commas) -> ``(1, 3, 500, 500)``."""
    compact = re.sub(r"\s+", "", text)
    if not re.fullmatch(r"\d+([x,]\d+)*", compact) or any(
            int(p) <= 0 for p in re.split(r"[x,]", compact)):
        raise CaffeFormatError(f"input shape {text!r}: expected positive sizes like 1x3x500x500")
    return tuple(int(p) for p in re.split(r"[x,]", compact))


def example_inputs(net, inputs: InputSpec | None = None, seed: int = 0,
                   device: str | torch.device | None = None) -> "OrderedDict[str, torch.Tensor]":
    """One tensor per net input, in ``net.inputs`` order.

    ``inputs`` maps a name to a tensor/array (used as is) or a shape (filled with seeded
    normal noise); names left out take the shape the net declares for them (its ``Input``
    layer). Unknown names raise ``CaffeFormatError``.
    """
    inputs = dict(inputs or {})
    unknown = [n for n in inputs if n not in net.inputs]
    if unknown:
        raise CaffeFormatError(f"{unknown} are not inputs of this net; its inputs are "
                               f"{net.inputs}")
    device = torch.device(device) if device is not None else net.device
    gen = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name in net.inputs:
        value = inputs.get(name)
        if isinstance(value, torch.Tensor):
            t = value.detach().float()
        elif isinstance(value, np.ndarray):
            t = torch.from_numpy(np.asarray(value, dtype=np.float32))
        else:
            shape = tuple(value) if value is not None else tuple(net.blob_shapes[name])
            t = _made_up(net, name, shape, gen)
        out[name] = t.to(device)
    return out


def _made_up(net, name: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Seeded noise for input ``name``, unless a layer reading it says what a valid value
    looks like (``example_bottom(index, shape, generator)``: ROIPooling's rois hold batch
    indices and boxes, which noise is not)."""
    for step in net.steps:
        make = getattr(step.module, "example_bottom", None)
        if make is not None and name in step.bottoms:
            t = make(list(step.bottoms).index(name), shape, gen)
            if t is not None:
                return t
    return torch.randn(shape, generator=gen)


Shapes = "OrderedDict[str, tuple[int, ...]]"


def shape_of(value: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in (value.shape if hasattr(value, "shape") else value))


def shapes_of(feed: Mapping[str, Any]) -> "OrderedDict[str, tuple[int, ...]]":
    return OrderedDict((k, tuple(v.shape)) for k, v in feed.items())


def input_shapes(net, inputs: InputSpec | None = None) -> Shapes:
    """The shape of every net input, in ``net.inputs`` order: from ``inputs`` (a tensor,
    array or shape) or, for names left out, the shape the net declares."""
    inputs = dict(inputs or {})
    unknown = [n for n in inputs if n not in net.inputs]
    if unknown:
        raise CaffeFormatError(f"{unknown} are not inputs of this net; its inputs are "
                               f"{net.inputs}")
    return OrderedDict((n, shape_of(inputs[n]) if n in inputs else tuple(net.blob_shapes[n]))
                       for n in net.inputs)


def blob_shapes_for(net, shapes: Mapping[str, Sequence[int]],
                    outputs: Sequence[str] | None = None) -> dict[str, tuple[int, ...]]:
    """Every blob's shape (of the layers ``outputs`` need) for these input shapes, as Caffe's
    ``Net::Reshape`` would set them: each layer's ``top_shapes``, without running anything.
    The first layer that refuses raises ``CaffeFormatError`` naming it."""
    known = {n: tuple(int(d) for d in s) for n, s in shapes.items()}
    for step in net.steps_for(outputs or net.outputs):
        if step.is_input:
            continue
        bottoms = [known[b] for b in step.bottoms]
        try:
            tops = step.module.top_shapes(bottoms)
        except CaffeFormatError:
            raise
        except Exception as exc:  # a layer's own checks, in whatever form it raised them
            raise CaffeFormatError(f"{step.type} cannot take bottoms of shapes {bottoms}: "
                                   f"{exc}", layer=step.name) from exc
        known.update((t, tuple(int(d) for d in s)) for t, s in zip(step.tops, tops))
    return known


def shapes_line(shapes: Mapping[str, Sequence[int]]) -> str:
    return ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in shapes.items())


def check_input_shapes(net, shapes: Mapping[str, Sequence[int]],
                       outputs: Sequence[str] | None = None) -> None:
    """Refuse input shapes the net's layers cannot take before tracing anything, with the
    one line that says why (the layer and its rule), instead of the tracer's report."""
    try:
        blob_shapes_for(net, shapes, outputs)
    except CaffeFormatError as exc:
        cause = " ".join(str(exc).split())
        shown = {n: tuple(int(d) for d in v) for n, v in shapes.items()}
        raise CaffeFormatError(f"input shapes {shown} do not fit the net: {cause}") from exc
