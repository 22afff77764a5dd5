"""Run a generated module against the CaffeNet it came from: every output blob, and for a
TRAIN net every learnable blob's gradient of the weighted loss, within exact-mode bounds
(dropout keeping everything on both sides while they run: random masks cannot agree)."""
from __future__ import annotations

import contextlib
import types
from collections import OrderedDict
from typing import Iterator, Mapping

import torch

from ..errors import CaffeFormatError
from ..layers.neuron import Dropout
from ..parity.compare import ParityRow, Tolerance, compare_arrays
from ..parity.run import run_net
from .generate import Generated


def load_generated(generated: Generated, filename: str = "model.py") -> torch.nn.Module:
    """An instance of the generated class, built from its source in a fresh module namespace
    and loaded (strictly) with its state."""
    module = types.ModuleType("caffe_codegen_model")
    module.__file__ = filename
    exec(compile(generated.source, filename, "exec"), module.__dict__)  # noqa: S102
    model = getattr(module, generated.class_name)()
    model.load_state_dict(generated.state, strict=True)
    return model


def outputs_of(generated: Generated, result) -> "OrderedDict[str, torch.Tensor]":
    """The generated module's return value as an ordered mapping blob name -> tensor."""
    if isinstance(result, torch.Tensor):
        return OrderedDict([(generated.outputs[0], result)])
    return OrderedDict((name, result[name]) for name in generated.outputs)


def total_loss(generated: Generated, outputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Caffe's backward seed: ``sum(loss_weight * top.sum())`` over the loss outputs."""
    total = torch.zeros(())
    for name, weight in generated.loss_weights.items():
        total = total + weight * outputs[name].sum()
    return total


def run_generated(generated: Generated, model: torch.nn.Module, inputs: Mapping[str, torch.Tensor],
                  train: bool) -> tuple[OrderedDict, OrderedDict]:
    """(outputs, param gradients keyed ``(layer, index)``) of one run of ``model``."""
    model.train(train)
    feed = [inputs[name].clone() for name in generated.inputs]
    with torch.set_grad_enabled(train):
        outputs = outputs_of(generated, model(*feed))
        grads: OrderedDict = OrderedDict()
        loss = total_loss(generated, outputs) if train else None
        if loss is not None and loss.requires_grad:
            params = dict(model.named_parameters())
            values = torch.autograd.grad(loss, [params[p.key] for p in generated.places],
                                         allow_unused=True)
            for place, g in zip(generated.places, values):
                if g is not None:
                    grads[(place.layer, place.index)] = place.to_caffe(g)
    return outputs, grads


@contextlib.contextmanager
def _without_dropout(net, model: torch.nn.Module) -> Iterator[None]:
    """For a TRAIN net, dropout keeping everything in the net's layers and the module's
    ``nn.Dropout``s while they are compared: their random masks cannot agree, the rest must."""
    train = net.phase == "train"
    layers = [(m, m.ratio, m.scale) for m in net.layers if train and isinstance(m, Dropout)]
    drops = [(m, m.p) for m in model.modules() if train and isinstance(m, torch.nn.Dropout)]
    try:
        for m, _, _ in layers:
            m.ratio, m.scale = 0.0, 1.0
        for m, _ in drops:
            m.p = 0.0
        yield
    finally:
        for m, ratio, scale in layers:
            m.ratio, m.scale = ratio, scale
        for m, p in drops:
            m.p = p


def verify(generated: Generated, net, inputs: Mapping[str, torch.Tensor],
           tol: Tolerance | None = None) -> list[ParityRow]:
    """Compare the generated module with ``net`` on ``inputs``; the failed rows (empty: the
    module computes what the CaffeNet does)."""
    tol = tol or Tolerance()
    train = net.phase == "train"
    model = load_generated(generated)
    with _without_dropout(net, model):
        ref = run_net(net, inputs, backward=train)
        # tops of layers that read (a net built with data=True): the batch the net read
        fed = {n: ref.blobs[n].detach() for n in generated.inputs if n not in inputs}
        outputs, grads = run_generated(generated, model, {**inputs, **fed}, train)
    rows = [compare_arrays("blob", name, outputs.get(name), ref.blobs[name].detach(), tol)
            for name in generated.outputs]
    if train:
        for place in generated.places:
            theirs = ref.diffs.get(place.layer, [])
            if place.index < len(theirs):
                ours = grads.get((place.layer, place.index))
                if ours is None:
                    ours = torch.zeros_like(theirs[place.index])
                rows.append(compare_arrays("diff", place.layer, ours, theirs[place.index], tol,
                                           index=place.index))
    return [r for r in rows if not r.ok]


def check(generated: Generated, net, inputs: Mapping[str, torch.Tensor],
          tol: Tolerance | None = None) -> None:
    """``verify``, raising a ``CaffeFormatError`` that lists what differs."""
    failed = verify(generated, net, inputs, tol)
    if failed:
        lines = "; ".join(f"{r.label}: {r.note or f'rel_l2 {r.rel_l2:.3g}, max_abs {r.max_abs:.3g}'}"
                          for r in failed[:8])
        raise CaffeFormatError(f"the generated module differs from the CaffeNet: {lines}")
