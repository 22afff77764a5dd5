"""Running a net as the stored-activation format keys it, and the two public entries on top:
``check_parity`` (our run against a reference) and ``dump`` (our run written as one).

What Caffe holds differs from what a plain PyTorch run exposes in two places, and the checker
follows Caffe:

* an in-place layer (``ReLU`` writing into ``conv1_1``) leaves the *last* writer's value in the
  blob, so ``/blobs`` is compared with the net's final value of each name;
* backward also runs in place, so the diff Caffe holds for such a blob is the gradient with
  respect to the value the *first* layer wrote (the ReLU's input). The checker captures the
  tensor each top name was first written with and differentiates with respect to it.

Caffe never writes a diff for a blob nothing back-propagates into (inputs, labels): it stays at
zero. An autograd gradient that is ``None`` is therefore compared as zeros.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import CaffeFormatError
from ..layers.python_layer import PythonLayerRegistry
from ..net import CaffeNet
from ..precision import PrecisionPolicy, resolve_precision
from ..proto.schema import Schema, resolve_schema
from ..version import __version__
from .compare import ParityReport, ParityRow, Tolerance, compare_arrays
from .reference import StoredActivations, read_reference, write_reference


@dataclass
class RunResult:
    """What one run of a net gives, keyed as the stored-activation format keys it."""

    blobs: "OrderedDict[str, torch.Tensor]"
    params: "OrderedDict[str, list[torch.Tensor]]"
    diffs: "OrderedDict[str, list[torch.Tensor | None]]" = field(default_factory=OrderedDict)
    blob_diffs: "OrderedDict[str, torch.Tensor | None]" = field(default_factory=OrderedDict)


def _declared_tops(net) -> list[str]:
    """Every blob declared as a top by the instantiated net, in order, without repeats."""
    seen: OrderedDict[str, None] = OrderedDict()
    for name in getattr(net, "inputs", []):
        seen.setdefault(name, None)
    for layer in net.net_param.layer:
        for top in layer.top:
            seen.setdefault(top, None)
    return list(seen)


def run_net(net, inputs: Mapping[str, Any], backward: bool = False,
            device: str | torch.device | None = None) -> RunResult:
    """Run ``net`` (a CaffeNet) on ``inputs``; with ``backward`` also the gradients Caffe
    would hold.

    The backward seeds what Caffe's does: the weighted total loss (``net.total_loss``), every
    loss top's diff set to its ``loss_weight``. Blob gradients are the net's own
    ``blob_grads()``: of the tensor each name was *first* written with (in-place layers
    back-propagate in place in Caffe, so that is the diff it ends up holding). The params'
    ``.grad`` are left as they were found.
    """
    device = torch.device(net.device if device is None else device)
    feed = OrderedDict()
    for name, value in inputs.items():
        t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
        feed[name] = t.to(device=device, dtype=torch.float32)
    retain = net.retain_blob_grads
    net.retain_blob_grads = backward
    kept = getattr(net, "keep_blobs", None)
    try:
        if kept is not None:
            net.keep_blobs = True  # every blob is compared, not only the outputs
        with torch.set_grad_enabled(backward):
            blobs = OrderedDict(net(**feed).items())
    finally:
        if kept is not None:
            net.keep_blobs = kept
        net.retain_blob_grads = retain
    for name, value in feed.items():
        blobs.setdefault(name, value)
    params = OrderedDict((layer, list(ps)) for layer, ps in net.params.items())
    result = RunResult(blobs=blobs, params=params)
    if backward:
        result.diffs, result.blob_diffs = _gradients(net, blobs)
        for name, value in feed.items():
            result.blob_diffs.setdefault(name, torch.zeros_like(value))
    return result


def _gradients(net, blobs) -> tuple[OrderedDict, OrderedDict]:
    """``(param_grads, blob_grads)`` of one backward from ``net.total_loss(blobs)``, with the
    params' own ``.grad`` put back afterwards."""
    saved = [(p, p.grad) for p in net.parameters()]
    for p, _ in saved:
        p.grad = None
    try:
        loss = net.total_loss(blobs)
        if loss.requires_grad:  # else no loss depends on a param: every diff stays zero
            loss.backward()
        diffs = OrderedDict((k, [g.detach() for g in gs]) for k, gs in net.param_grads().items())
        blob_diffs = OrderedDict((k, g.detach()) for k, g in net.blob_grads().items())
    finally:
        for p, g in saved:
            p.grad = g
    return diffs, blob_diffs


def _build_net(net, weights, phase: str, device, schema: Schema | None = None,
               precision: str | None = None, input_shapes: Mapping[str, Any] | None = None,
               python_layers: PythonLayerRegistry | None = None):
    """A CaffeNet in ``phase``: ``net`` as given when it already is one, else built (with the
    Caffe fork's schema ``fork``/``proto``, ``input_shapes`` and ``python_layers`` when
    given); switched to ``precision`` when one is given."""
    if isinstance(net, CaffeNet):
        built_phase = str(getattr(net, "phase", phase)).lower()
        if built_phase != phase:
            raise CaffeFormatError(
                f"the reference is a {phase.upper()} reference but the net was built in phase "
                f"{built_phase.upper()}: build it with phase='{phase}'")
        if weights is not None:
            net.load_weights(weights)
    else:
        net = CaffeNet(net, weights, phase=phase, schema=schema, input_shapes=input_shapes,
                       python_layers=python_layers)
        unknown = [n for n in input_shapes or {} if n not in net.inputs]
        if unknown:
            raise CaffeFormatError(f"the net has no input blob {', '.join(map(repr, unknown))} "
                                   f"(inputs: {', '.join(net.inputs) or 'none'})")
    if device is not None:
        net.to(device)
    if precision is not None:
        net.set_precision(precision)
    return net


# ----------------------------------------------------------------------------- public API
def check_parity(net, weights, reference: str | os.PathLike, device: str | torch.device = "cpu",
                 rel_l2: float | None = None, max_abs: float | None = None, *,
                 fork: str | None = None, proto: str | os.PathLike | None = None,
                 schema: Schema | None = None, precision: str | None = None,
                 input_shapes: Mapping[str, Any] | None = None,
                 python_layers: PythonLayerRegistry | None = None) -> ParityReport:
    """Run ``net`` on a reference's inputs and compare with what Caffe stored.

    ``net``: a ``CaffeNet`` (used as is, ``weights`` loaded into it when given) or anything
    ``CaffeNet`` accepts (a path, prototxt text, a NetParameter), then built in the reference's
    phase. A TRAIN reference (attr ``phase`` TRAIN, or ``/diffs`` present) also runs backward of
    the weighted total loss and compares param gradients and blob gradients.

    Tolerance: ``rel_l2`` / ``max_abs`` when given; else, for a run in a reduced precision
    (``precision="fast"``: bf16, about 1e-2 relative off Caffe), that mode's own bounds
    (2e-2 / 5e-2, ``compare.FAST_REL_L2`` / ``FAST_MAX_ABS``); else the ``tolerance`` of a
    ``meta.json`` beside the reference; else 1e-5 / 1e-4. The report's table says which. A
    missing blob, a shape mismatch or a NaN makes a failing row; it does not raise.
    ``precision`` ("exact" / "fast"): the net's mode for the run (default: as built, exact).
    ``input_shapes`` / ``python_layers``: passed to ``CaffeNet`` when the net is built here
    (shapes its file leaves open; the registry of its Python layers).
    """
    ref = read_reference(reference)
    tol = Tolerance.for_reference(reference, rel_l2, max_abs,
                                  reduced=_reduced(net, precision))
    phase = ref.phase
    net = _build_net(net, weights, phase, device, resolve_schema(schema, fork, proto), precision,
                     input_shapes, python_layers)
    missing = [n for n in getattr(net, "inputs", []) if n not in ref.inputs]
    if missing:
        raise CaffeFormatError(f"the reference stores no input for {', '.join(missing)}",
                               path=reference)
    inputs = OrderedDict((n, ref.inputs[n]) for n in getattr(net, "inputs", ref.inputs.keys())
                         if n in ref.inputs)
    run = run_net(net, inputs, backward=phase == "train", device=device)
    rows: list[ParityRow] = []
    for layer, blobs in ref.params.items():
        ours = run.params.get(layer, [])
        for i, arr in blobs.items():
            rows.append(compare_arrays("param", layer, ours[i] if i < len(ours) else None,
                                       arr, tol, i))
    order = {name: k for k, name in enumerate(run.blobs)}  # the net's order, not the file's
    for name in sorted(ref.blobs, key=lambda n: order.get(n, len(order))):
        rows.append(compare_arrays("blob", name, run.blobs.get(name), ref.blobs[name], tol))
    for layer, blobs in ref.diffs.items():
        ours_d = run.diffs.get(layer, [])
        for i, arr in blobs.items():
            rows.append(compare_arrays("diff", layer, ours_d[i] if i < len(ours_d) else None,
                                       arr, tol, i))
    for name in sorted(ref.blob_diffs, key=lambda n: order.get(n, len(order))):
        rows.append(compare_arrays("blob_diff", name, run.blob_diffs.get(name),
                                   ref.blob_diffs[name], tol))
    return ParityReport(rows=rows, tolerance=tol, reference=str(reference), phase=phase)


def dump(net, weights, inputs: Mapping[str, Any], out_h5: str | os.PathLike,
         phase: str | None = None, device: str | torch.device | None = None,
         include_params: bool = False, *, fork: str | None = None,
         proto: str | os.PathLike | None = None, schema: Schema | None = None,
         precision: str | None = None, input_shapes: Mapping[str, Any] | None = None,
         python_layers: PythonLayerRegistry | None = None) -> StoredActivations:
    """Run our net and store what it computed, in the format ``check_parity`` reads.

    ``phase``: ``"test"`` or ``"train"`` (default: the net's own phase, else test); a TRAIN
    dump also runs backward and stores ``/diffs`` and ``/blob_diffs``. ``include_params`` also
    stores ``/params`` (then a later check verifies the weights too). Written atomically.
    ``precision``: the net's mode for the run (default: as built, exact). A net built here
    takes ``input_shapes`` (default: the shapes of the given ``inputs``, so a data layer
    that leaves its shape open builds) and ``python_layers``. Returns what was written.
    """
    if phase is None:
        phase = str(getattr(net, "phase", "test"))
    phase = phase.lower()
    if phase not in ("train", "test"):
        raise CaffeFormatError(f"phase must be 'train' or 'test', got {phase!r}")
    if input_shapes is None:
        input_shapes = {name: np.shape(value) for name, value in inputs.items()}
    net = _build_net(net, weights, phase, device, resolve_schema(schema, fork, proto), precision,
                     input_shapes, python_layers)
    declared = list(getattr(net, "inputs", []))
    unknown = [n for n in inputs if n not in declared]
    if unknown:
        raise CaffeFormatError(f"the net has no input blob {', '.join(map(repr, unknown))} "
                               f"(inputs: {', '.join(declared) or 'none'})")
    missing = [n for n in declared if n not in inputs]
    if missing:
        shapes = getattr(net, "blob_shapes", {})
        given = ", ".join(f"'{n}' ({'x'.join(map(str, shapes[n]))})" if n in shapes else repr(n)
                          for n in missing)
        raise CaffeFormatError(f"no value given for input blob(s) {given}: give each input an "
                               "array of its shape (inputs={name: array}; on the command line "
                               "--input NAME=FILE.npy or NAME=SHAPE, once per input)")
    run = run_net(net, inputs, backward=phase == "train", device=device)
    ref = StoredActivations()
    ref.attrs = {"caffe": f"caffe_import {__version__} (torch {torch.__version__}), not Caffe",
                 "phase": phase.upper()}
    for name in declared:
        ref.inputs[name] = _np(run.blobs[name])
    for name in _declared_tops(net):
        if name in run.blobs:
            ref.blobs[name] = _np(run.blobs[name])
    if include_params:
        for layer, ps in run.params.items():
            if ps:
                ref.params[layer] = {i: _np(p) for i, p in enumerate(ps)}
    for layer, ds in run.diffs.items():
        if ds:
            ref.diffs[layer] = {i: _np(d) for i, d in enumerate(ds)}
    for name in _declared_tops(net):
        if name in run.blob_diffs:
            ref.blob_diffs[name] = _np(run.blob_diffs[name])
    write_reference(out_h5, ref)
    return ref


def _reduced(net, precision: str | PrecisionPolicy | None) -> bool:
    """Whether the run computes below float32 (``precision`` given, else a built net's own)."""
    if precision is not None:
        return resolve_precision(precision).reduced
    return isinstance(net, CaffeNet) and net.policy.reduced


def _np(t: torch.Tensor) -> np.ndarray:
    return np.array(t.detach().to("cpu", torch.float32).numpy(), order="C")  # keeps 0-d shapes
