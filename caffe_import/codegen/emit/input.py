"""``Input`` (its tops are ``forward``'s arguments) and ``DummyData`` (its fillers as
tensors)."""
from __future__ import annotations

from ...layers.input import DummyData, Input
from .base import Emission, LayerContext, emits, literal, unsupported


@emits(Input)
def emit_nothing(layer, ctx: LayerContext) -> Emission:
    """Also the emitter of the data layers standing in for inputs (``emit.data``)."""
    return Emission()


def _filled(filler, shape) -> str:
    """A tensor expression for one DummyData top."""
    size = literal(tuple(shape))
    kind = "constant" if filler is None else (filler.type or "constant")
    if kind == "constant":
        return f"torch.full({size}, {literal(float(filler.value) if filler else 0.0)})"
    if kind == "gaussian" and filler.sparse < 0:
        return f"torch.empty({size}).normal_({literal(float(filler.mean))}, {literal(float(filler.std))})"
    if kind == "uniform":
        return f"torch.empty({size}).uniform_({literal(float(filler.min))}, {literal(float(filler.max))})"
    return ""


@emits(DummyData)
def emit_dummy_data(layer, ctx: LayerContext) -> Emission:
    """Constant tops as ``torch.full``; gaussian and uniform ones drawn on every forward, as
    Caffe refills them (torch's random stream, not Caffe's)."""
    lines = []
    for top, filler, shape in zip(ctx.tops, layer.fillers, layer.shapes):
        expr = _filled(filler, shape)
        if not expr:
            raise unsupported(layer, f"a {filler.type} data_filler is not written as code")
        lines.append(f"{top} = {expr}")
    return Emission(forward=lines)
