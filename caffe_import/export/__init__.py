"""Deploy nets out of Python: ``torch.export`` programs and ONNX, each checked against eager.

Caffe has no graph export of its own: a deploy net is its prototxt plus its caffemodel, run by
Caffe's interpreter loop, which reshapes the whole net when an input shape changes. An export
does the same where the net allows it: by default the batch, height and width of the inputs
are left free (``torch.export`` dynamic shapes; ONNX dynamic axes), so a fully convolutional
net runs at any image size; an axis the net fixes (an InnerProduct after a fixed-size feature
map, a Reshape with fixed dims, a crop that needs a minimum size...) stays static, and the
reason is given (:func:`plan_dynamic`). ``dynamic=False`` traces the given shapes only.

* ``export_program(net, inputs)`` -> ``torch.export.ExportedProgram`` (``save_program`` writes
  the ``.pt2``);
* ``export_onnx(net, inputs, path)`` writes ``.onnx`` with the dynamo-based exporter;
* ``verify_program`` / ``verify_onnx`` rerun the exported artefact and compare with eager
  (``write_export`` at the traced size and, for a dynamic export, at a second size).

The input shapes are checked against the net first (:func:`check_input_shapes`: the layer that
refuses them, in one line). ONNX holds float32 (or float16) graphs: a net in
``precision="fast"`` (bfloat16, which ONNX runtimes cannot run) is refused before anything is
written; ``.pt2`` exports take any precision.

Inputs are positional in the exported graph, in ``net.inputs`` order; outputs are the net's
output blobs (``net.outputs``: tops no layer consumes) unless named.
"""
from __future__ import annotations

import contextlib
import io
import linecache
import logging
import math
import os
import re
import sys
import traceback
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..compat import TORCH_FOR_EXPORT, require_torch
from ..errors import CaffeFormatError, UsageError
from ..io.atomic import atomic_path
from ..layers.base import CaffeLayer
from ..parity import Tolerance, compare_arrays

InputSpec = Mapping[str, "torch.Tensor | np.ndarray | Sequence[int]"]
#: what each export needs a newer torch for (compat.TORCH_FOR_EXPORT)
NEEDS_TORCH_EXPORT = {".pt2": "torch.export (.pt2)",
                      ".onnx": "ONNX export (torch.onnx's exporter, built on torch.export)"}


class VerificationUnavailable(RuntimeError):
    """The exported artefact was written but could not be rerun here (no runtime for it)."""


class ExportableNet(nn.Module):
    """A ``CaffeNet`` with positional inputs and a tuple of outputs (what exporters trace)."""

    def __init__(self, net, input_names: Sequence[str], output_names: Sequence[str]) -> None:
        super().__init__()
        self.net = net
        self.input_names = list(input_names)
        self.output_names = list(output_names)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with self.net.only_steps_for(self.output_names):
            blobs = self.net(outputs=self.output_names, **dict(zip(self.input_names, inputs)))
        return tuple(blobs[name] for name in self.output_names)


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


# ----------------------------------------------------------------------- input shapes
Shapes = "OrderedDict[str, tuple[int, ...]]"


def _shape_of(value: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in (value.shape if hasattr(value, "shape") else value))


def input_shapes(net, inputs: InputSpec | None = None) -> Shapes:
    """The shape of every net input, in ``net.inputs`` order: from ``inputs`` (a tensor,
    array or shape) or, for names left out, the shape the net declares."""
    inputs = dict(inputs or {})
    unknown = [n for n in inputs if n not in net.inputs]
    if unknown:
        raise CaffeFormatError(f"{unknown} are not inputs of this net; its inputs are "
                               f"{net.inputs}")
    return OrderedDict((n, _shape_of(inputs[n]) if n in inputs else tuple(net.blob_shapes[n]))
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


def _shapes_line(shapes: Mapping[str, Sequence[int]]) -> str:
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


# ----------------------------------------------------------------------- dynamic shapes
#: axes of an input an export leaves free, by name, and the second sizes tried for each
_FREE_AXES = {0: "batch", 2: "height", 3: "width"}
_SPATIAL_STEPS = (32, 16, 8, 64, 1)


@dataclass
class DynamicPlan:
    """Which input axes an export leaves free, the shapes it traces with (a free batch of 1
    traced as 2: torch.export fixes a size it sees as 1), a second set of shapes to verify
    at, and why each other axis stays static (``{label: reason}``); ``given``: the shapes
    asked for."""

    given: Shapes
    axes: dict[str, tuple[int, ...]]
    trace: Shapes
    second: Shapes
    fixed: dict[str, str] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()

    def give_up(self, why: str) -> None:
        """Fewer free axes, for ``why``: height and width static (batch alone stays free),
        or, with batch alone left, every axis; the given sizes are traced on those axes."""
        drop = {a for axes in self.axes.values() for a in axes if a != 0} or {0}
        for axis in drop:
            self.fixed.setdefault(_FREE_AXES[axis], why)
        self.axes = {n: k for n, k in ((n, tuple(a for a in axes if a not in drop))
                                       for n, axes in self.axes.items()) if k}
        self.trace, self.second = (OrderedDict(
            (n, tuple(d if a not in drop else self.given[n][a] for a, d in enumerate(s)))
            for n, s in shapes.items()) for shapes in (self.trace, self.second))

    def labels(self) -> list[str]:
        return [label for a, label in _FREE_AXES.items()
                if any(a in axes for axes in self.axes.values())]

    def note(self) -> str | None:
        """One line saying which axes stay static and why (None when all are free)."""
        if not self.fixed:
            return None
        by_reason: dict[str, list[str]] = {}
        for label, why in self.fixed.items():
            by_reason.setdefault(why, []).append(label)
        return "static " + "; static ".join(f"{', '.join(labels)}: {why}"
                                             for why, labels in by_reason.items())


def _moved(shapes: Shapes, members: Mapping[tuple[str, int], int]) -> Shapes:
    out = OrderedDict((n, list(s)) for n, s in shapes.items())
    for (name, axis), size in members.items():
        out[name][axis] = size
    return OrderedDict((n, tuple(s)) for n, s in out.items())


def plan_dynamic(net, shapes: Shapes, outputs: Sequence[str] | None = None) -> DynamicPlan:
    """Which of batch, height and width (axes 0, 2, 3 of every input that has them, each
    across all inputs at once) the net lets change: each is tried at another size with the
    layers' own shape rules (:func:`blob_shapes_for`); one a layer refuses stays static."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for name, shape in shapes.items():
        for axis, label in _FREE_AXES.items():
            if axis < len(shape) and (axis == 0 or len(shape) >= 3):
                groups.setdefault(label, []).append((name, axis))
    second: dict[tuple[str, int], int] = {}
    fixed: dict[str, str] = {}
    for label, members in groups.items():
        steps = (1,) if label == "batch" else _SPATIAL_STEPS
        why = ""
        for step in steps:
            moved = {m: shapes[m[0]][m[1]] + step for m in members}
            try:
                blob_shapes_for(net, _moved(shapes, moved), outputs)
            except CaffeFormatError as exc:
                why = why or " ".join(str(exc).split())
                continue
            second.update(moved)
            break
        else:
            fixed[label] = why
    try:
        blob_shapes_for(net, _moved(shapes, second), outputs)
    except CaffeFormatError as exc:  # each axis alone is fine, together they are not
        fixed.update((_FREE_AXES[a], " ".join(str(exc).split())) for _, a in second)
        second = {}
    axes: dict[str, tuple[int, ...]] = {}
    for name, axis in second:
        axes[name] = (*axes.get(name, ()), axis)
    trace = _moved(shapes, {(n, 0): 2 for n, a in second if a == 0 and shapes[n][0] == 1})
    return DynamicPlan(shapes, axes, trace, _moved(shapes, second), fixed, tuple(outputs or ()))


def _dynamic_shapes(net, plan: DynamicPlan | None) -> tuple | None:
    """``dynamic_shapes`` for torch.export / the ONNX exporter: ``Dim.AUTO`` on the free axes
    (torch.export then keeps an axis static where the code needs a fixed size)."""
    if plan is None or not plan.axes:
        return None
    auto = torch.export.Dim.AUTO
    # one entry: the wrapper's ``*inputs``, a tuple with one spec per input
    return (tuple({a: auto for a in plan.axes.get(n, ())} or None for n in net.inputs),)


def _tracing_feed(net, inputs: InputSpec | None, plan: DynamicPlan | None
                  ) -> "OrderedDict[str, torch.Tensor]":
    """The tensors to trace with: the given ones, made up where the plan traces another size."""
    if plan is None:
        return example_inputs(net, inputs)
    given = dict(inputs or {})
    spec = {n: (given[n] if n in given and _shape_of(given[n]) == s else s)
            for n, s in plan.trace.items()}
    return example_inputs(net, spec)


def _settle(plan: DynamicPlan | None, free: Mapping[str, Sequence[int]]) -> DynamicPlan | None:
    """The plan after the trace: an axis torch.export kept static is static, with its reason,
    and the second size keeps only the axes still free. None when an axis traced at another
    size than the given one came out static (the caller traces the given shapes instead)."""
    if plan is None:
        return None
    for name, axes in plan.axes.items():
        for axis in axes:
            if axis not in free.get(name, ()):
                if plan.trace[name][axis] != plan.given[name][axis]:
                    return None
                plan.fixed.setdefault(_FREE_AXES[axis], "torch.export fixed it (a layer's "
                                      "code depends on its exact value)")
    kept = {n: tuple(a for a in axes if a in free.get(n, ())) for n, axes in plan.axes.items()}
    plan.axes = {n: a for n, a in kept.items() if a}
    plan.second = OrderedDict(
        (n, tuple(plan.second[n][a] if a in plan.axes.get(n, ()) else d
                  for a, d in enumerate(s))) for n, s in plan.given.items())
    return plan


#: layer types whose output no fixed-shape graph can express, and why (a layer class may say
#: the same with a class attribute ``export_unsupported = "reason"``)
EXPORT_UNSUPPORTED = {
    "DetectionOutput": "SSD's detection output: per-class NMS with a data-dependent number of "
                       "boxes (its top is [1, 1, N, 7] with N known only after running)",
    "Python": "a Python layer runs arbitrary code (py-faster-rcnn's proposal layer: NMS with a "
              "data-dependent number of proposals)",
    "Proposal": "RPN proposals: NMS with a data-dependent number of boxes",
}


def unexportable_layers(net, outputs: Sequence[str] | None = None) -> list[tuple[str, str, str]]:
    """``(layer, type, reason)`` of every layer the requested outputs depend on that a
    fixed-shape exported graph (ONNX, torch.export) cannot express."""
    found = []
    for step in net.steps_for(outputs or net.outputs):
        reason = getattr(step.module, "export_unsupported", None) or EXPORT_UNSUPPORTED.get(step.type)
        if reason:
            found.append((step.name, step.type, str(reason)))
    return found


def check_exportable(net, outputs: Sequence[str] | None, target: str,
                     path: str | os.PathLike | None = None) -> None:
    """Refuse, listing every layer ``target`` cannot express, instead of writing a graph that
    silently differs from the net; the refusal spells out the export of the part before them
    (``path``: the file asked for, shown in that command)."""
    bad = unexportable_layers(net, outputs)
    if not bad:
        return
    bottoms = sorted({b for s in net.steps if s.name in {n for n, _, _ in bad} for b in s.bottoms})
    flag = "--onnx" if target == "ONNX" else "--torch-export"
    out = os.fspath(path) if path is not None else ("OUT.onnx" if target == "ONNX" else "OUT.pt2")
    raise CaffeFormatError(
        f"{target} cannot express {len(bad)} layer(s) this export needs:\n"
        + "\n".join(f"  layer '{n}' ({t}): {why}" for n, t, why in bad)
        + "\nExport the part before them, their inputs, and run those layers with CaffeNet in "
          f"Python:\n  caffe-import export NET WEIGHTS {flag} {out} "
          + " ".join(f"--output {b}" for b in bottoms)
          + f"\n  (in Python: write_export(net, {out!r}, outputs={bottoms!r}); "
          "docs/forks.md, 'Convert and export').")


def _wrap(net, outputs: Sequence[str] | None) -> ExportableNet:
    if getattr(net, "phase", "test") != "test":
        raise CaffeFormatError("export takes a deploy net: build it with phase='test' (a TRAIN "
                               "net's dropout and loss layers have no place in a deployed graph)")
    names = list(outputs) if outputs else list(net.outputs)
    if not names:
        raise CaffeFormatError("the net has no output blobs to export")
    return ExportableNet(net, net.inputs, names).eval()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keep the ONNX exporter's notes about optional packages to itself: it warns, on every
    export, that torchvision's detection ops cannot be registered when torchvision is not
    installed - true, and nothing a Caffe net uses."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _traced_without_leftovers(net) -> Iterator[None]:
    """Trace without leaving tracer tensors behind: ``CaffeNet.forward`` records the last
    run's blobs on the module (pycaffe's ``net.blobs``); those attributes are put back after
    tracing, and the exporter's warning about them is silenced."""
    saved = {k: v for k, v in net.__dict__.items()
             if k not in ("_parameters", "_buffers", "_modules")}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*were assigned during export.*")
            with torch.no_grad():
                yield
    finally:
        net.__dict__.update(saved)


def export_program(net, inputs: InputSpec | None = None, outputs: Sequence[str] | None = None,
                   dynamic: bool = True) -> torch.export.ExportedProgram:
    """``torch.export`` of a deploy ``CaffeNet`` for the shapes of ``inputs``: with
    ``dynamic``, batch, height and width are left free where the net allows it
    (:func:`plan_dynamic`; which ones: :func:`program_axes`), else the shapes are fixed.
    Input shapes the layers refuse (:func:`check_input_shapes`) and layers no exported graph
    can express (:func:`unexportable_layers`) are refused."""
    return _trace_program(net, inputs, outputs, dynamic)[0]


def _trace_program(net, inputs: InputSpec | None, outputs: Sequence[str] | None,
                   dynamic: bool) -> tuple[torch.export.ExportedProgram, DynamicPlan | None]:
    wrapper = _wrap(net, outputs)
    check_exportable(net, outputs, "torch.export")
    shapes = input_shapes(net, inputs)
    check_input_shapes(net, shapes, outputs)
    require_torch(TORCH_FOR_EXPORT, NEEDS_TORCH_EXPORT[".pt2"])
    plan = plan_dynamic(net, shapes, outputs) if dynamic else None
    trace = lambda: _exported(net, wrapper, _tracing_feed(net, inputs, plan),  # noqa: E731
                              _dynamic_shapes(net, plan))
    program = _settled(trace, plan, net, lambda p: (program_axes(p, net.inputs), p))
    return program, plan


def _settled(trace: Callable[[], Any], plan: DynamicPlan | None, net,
             read: Callable[[Any], tuple[Mapping[str, Sequence[int]], Any]]) -> Any:
    """``trace()`` until the plan holds (``read``: the traced result's free axes and its
    ``ExportedProgram``): a failed dynamic trace, or one whose graph does not hold at the
    second size, leaves fewer axes free (:meth:`DynamicPlan.give_up`) and traces again; an
    error of the static trace is the export's error."""
    while True:
        try:
            result = trace()
        except CaffeFormatError as exc:
            if plan is None or not plan.axes:
                raise
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            plan.give_up(f"torch.export cannot leave them free ({_failure_summary(cause)})")
            continue
        why = _unsettled(plan, *read(result), net)
        if not why:
            return result
        plan.give_up(why)


def _unsettled(plan: DynamicPlan | None, free: Mapping[str, Sequence[int]],
               program: torch.export.ExportedProgram, net) -> str | None:
    """Settle the plan on what the trace left free (:func:`_settle`) and run the program at
    the second size and at one a row and a column larger (made-up inputs): why it cannot
    stay dynamic, or None. torch.export records the sizes its code branched on as guards,
    checked on every call of a ``.pt2`` (ONNX keeps no such checks); a guard failing at a
    size the layers accept means the graph holds only for some sizes."""
    if plan is None or not plan.axes:
        return None
    if _settle(plan, free) is None:
        return "torch.export fixed the batch at the traced size (2)"
    odd = _moved(plan.second, {(n, a): plan.second[n][a] + 1
                               for n, axes in plan.axes.items() for a in axes if a != 0})
    for shapes in (plan.second, odd):
        try:
            blob_shapes_for(net, shapes, plan.outputs or None)
        except CaffeFormatError:
            continue  # not a size the net takes: nothing to probe
        feed = example_inputs(net, shapes, seed=2)
        try:
            with torch.no_grad():
                program.module()(*feed.values())
        except Exception as exc:  # noqa: BLE001 - a guard of the traced graph, any form
            first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
            return (f"the traced graph holds only for some sizes ({type(exc).__name__} at "
                    f"{_shapes_line(shapes)}: {first})")
    return None


def _exported(net, wrapper: ExportableNet, feed: Mapping[str, torch.Tensor],
              dynamic_shapes: tuple | None) -> torch.export.ExportedProgram:
    with _traced_without_leftovers(net), _quiet_tracer() as held:
        try:
            program = torch.export.export(wrapper, tuple(feed.values()),
                                          dynamic_shapes=dynamic_shapes)
        except CaffeFormatError:
            raise
        except Exception as exc:  # a layer refusing these shapes, or an untraceable op
            raise CaffeFormatError(f"cannot export the net for input shapes "
                                   f"{dict(_shapes_of(feed))}: " + _failure_summary(exc)) from exc
    sys.stderr.write(held.getvalue())  # a successful trace's notes are passed on
    return program


def program_axes(program: torch.export.ExportedProgram, input_names: Sequence[str]
                 ) -> dict[str, tuple[int, ...]]:
    """Per input (``input_names``: the net's inputs, in order), the axes the exported
    program leaves free (symbolic sizes)."""
    values = {n.name: n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"}
    out = {}
    for name, node in zip(input_names, program.graph_signature.user_inputs):
        shape = getattr(values.get(node), "shape", ())
        out[name] = tuple(i for i, d in enumerate(shape) if isinstance(d, torch.SymInt))
    return out


@contextlib.contextmanager
def _quiet_tracer() -> Iterator[io.StringIO]:
    """Hold what torch writes to stderr while tracing: a failed trace prints the partial
    graph (hundreds of lines) and its symbolic-shape logger a warning, around an error that
    :func:`_failure_summary` says in a paragraph. The caller passes the text on after a
    trace that worked."""
    logger = logging.getLogger("torch.fx.experimental.symbolic_shapes")
    level = logger.level
    logger.setLevel(logging.ERROR)
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            yield held
    finally:
        logger.setLevel(level)


def _failure_summary(exc: BaseException) -> str:
    """One paragraph for a failed trace: the innermost layer of ours it happened in (name,
    type, file:line and that line's code) and the first line of the innermost error's
    message, without torch's debugging advice or colour codes."""
    while exc.__cause__ is not None:  # the ONNX exporter wraps torch.export's error
        exc = exc.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # no terminal colour codes
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    where = ""
    home = str(Path(__file__).parents[2])
    for frame, lineno in reversed(list(traceback.walk_tb(exc.__traceback__))):
        layer = frame.f_locals.get("self")
        if isinstance(layer, CaffeLayer):
            file = frame.f_code.co_filename
            code = linecache.getline(file, lineno).strip()
            shown = os.path.relpath(file, home) if file.startswith(home + os.sep) else file
            where = (f"layer '{layer.name}' ({type(layer).__name__}), {shown}:{lineno} "
                     f"`{code}`: ")
            break
    return f"{where}{type(exc).__name__}: {first}"


def save_program(program: torch.export.ExportedProgram, path: str | os.PathLike) -> None:
    """Write an exported program (``.pt2``) atomically; ``torch.export.load`` reads it.

    torch's archive writer warns "No complete tensor found in the group" for a fast-mode
    program (seen with torch 2.14); the written program is verified against eager right after
    (``write_export``), so that note is not passed on to the user."""
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"No complete tensor found in the group")
        torch.export.save(program, tmp)


def _max_diffs(ours: Sequence[Any], eager: Sequence[torch.Tensor], names: Sequence[str]
               ) -> "OrderedDict[str, float]":
    """Per output, ``max|ours - eager| / max|eager|`` as the parity check measures it (NaN
    where either side holds a NaN or inf the other does not)."""
    out: OrderedDict[str, float] = OrderedDict()
    anything = Tolerance(rel_l2=math.inf, max_abs=math.inf)
    for name, a, b in zip(names, ours, eager):
        row = compare_arrays("blob", name, a, b.detach().cpu().numpy(), anything)
        if row.ours_shape != row.shape:
            raise CaffeFormatError(f"exported output '{name}' has shape {row.ours_shape}, "
                                   f"eager gives {row.shape}")
        out[name] = row.max_abs
    return out


def eager_outputs(net, inputs: Mapping[str, torch.Tensor], outputs: Sequence[str] | None = None
                  ) -> tuple[torch.Tensor, ...]:
    wrapper = _wrap(net, outputs)
    with torch.no_grad():
        return wrapper(*inputs.values())


def verify_program(program: torch.export.ExportedProgram, net,
                   inputs: InputSpec | None = None, outputs: Sequence[str] | None = None,
                   tol: float = 1e-5, second: InputSpec | None = None
                   ) -> "OrderedDict[str, float]":
    """Run ``program`` and the eager net on the same inputs (and, given ``second``, on
    inputs of those shapes too: a dynamic program at another size); return, per output, the
    largest ``max|exported - eager| / max|eager|``. Raises ``CaffeFormatError`` above ``tol``."""
    names = list(outputs) if outputs else list(net.outputs)
    worst: OrderedDict[str, float] = OrderedDict()
    for feed in _feeds(net, inputs, second):
        with torch.no_grad():
            got = _run_at(lambda f=feed: program.module()(*f.values()), "torch.export program",
                          feed)
        worst = _worst(worst, _max_diffs(got, eager_outputs(net, feed, names), names))
    _check(worst, tol, "torch.export program")
    return worst


def _feeds(net, inputs: InputSpec | None, second: InputSpec | None,
           device: str | None = None) -> list["OrderedDict[str, torch.Tensor]"]:
    feeds = [example_inputs(net, inputs, seed=1, device=device)]
    if second is not None:
        feeds.append(example_inputs(net, second, seed=2, device=device))
    return feeds


def _run_at(run: Callable[[], Any], what: str, feed: Mapping[str, Any]) -> Any:
    """``run()``; an exported graph refusing these inputs (a size outside what it was
    traced for) is a ``CaffeFormatError`` saying so in one line."""
    try:
        return run()
    except (CaffeFormatError, VerificationUnavailable):
        raise
    except Exception as exc:  # the runtime's own error, in whatever form
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        sizes = _shapes_line({k: tuple(v.shape) for k, v in feed.items()})
        raise CaffeFormatError(f"the {what} cannot run at {sizes} ({type(exc).__name__}: "
                               f"{first}); export it with --static (dynamic=False)") from exc


def _worst(a: Mapping[str, float], b: Mapping[str, float]) -> "OrderedDict[str, float]":
    out = OrderedDict(b)
    for k, v in a.items():
        out[k] = math.nan if math.isnan(v) or math.isnan(b.get(k, 0.0)) else max(v, b.get(k, v))
    return out


def _check(diffs: Mapping[str, float], tol: float, what: str) -> None:
    bad = {k: v for k, v in diffs.items() if not v <= tol}
    if bad:
        raise CaffeFormatError(f"the {what} does not reproduce the eager net: "
                               + ", ".join(f"{k}: max abs / max = {v:.3g}" for k, v in bad.items())
                               + f" (tolerance {tol:g})")


def export_onnx(net, path: str | os.PathLike, inputs: InputSpec | None = None,
                outputs: Sequence[str] | None = None, opset: int | None = None,
                dynamic: bool = True) -> Path:
    """Write ``net`` as ONNX (dynamo-based exporter; needs ``onnxscript``), atomically.

    Graph inputs and outputs carry the Caffe blob names; with ``dynamic``, batch, height and
    width are dynamic axes where the net allows it (see :func:`export_program`). Layers ONNX
    cannot express (SSD's DetectionOutput, Python layers ...: :func:`unexportable_layers`) are
    refused with a list of them, never exported as something else; so is a bfloat16 net
    (:func:`check_onnx_precision`).
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        _onnx_to(net, tmp, inputs, outputs, opset, dynamic)
    return path


def check_onnx_precision(net) -> None:
    """Refuse a net computing in bfloat16 (``precision="fast"``) before an ONNX export:
    onnxruntime (like most ONNX runtimes) has no bfloat16 convolution, so the file could not
    be loaded. float32 and float16 policies export as they are."""
    policy = getattr(net, "policy", None)
    if policy is not None and policy.dtype == torch.bfloat16:
        raise UsageError(
            f"precision '{policy.name}' computes in bfloat16, which ONNX runtimes cannot run "
            "(onnxruntime has no bfloat16 Conv): export ONNX with --precision exact (float32), "
            "or write the fast net as a torch.export program (.pt2)")


def _onnx_to(net, tmp: str, inputs: InputSpec | None, outputs: Sequence[str] | None,
             opset: int | None, dynamic: bool) -> DynamicPlan | None:
    """Export to the file ``tmp``; returns the settled dynamic plan (None: static)."""
    check_exportable(net, outputs, "ONNX")
    check_onnx_precision(net)
    require_torch(TORCH_FOR_EXPORT, NEEDS_TORCH_EXPORT[".onnx"])
    try:
        import onnx  # noqa: F401  # lazy: optional dependency, checked before any work
        import onnxscript  # noqa: F401  (the dynamo exporter imports it lazily; fail early)
    except ImportError as exc:
        raise CaffeFormatError("ONNX export needs the 'onnx' and 'onnxscript' packages "
                               "(pip install caffe-fcn-repro[onnx])") from exc
    wrapper = _wrap(net, outputs)
    shapes = input_shapes(net, inputs)
    check_input_shapes(net, shapes, outputs)
    plan = plan_dynamic(net, shapes, outputs) if dynamic else None
    trace = lambda: _onnx_program(net, wrapper, _tracing_feed(net, inputs, plan),  # noqa: E731
                                  _dynamic_shapes(net, plan), opset)
    _settled(trace, plan, net, lambda p: (onnx_axes(_saved(p, tmp, net, wrapper), net.inputs),
                                          p.exported_program))
    return plan


def _onnx_program(net, wrapper: ExportableNet, feed: Mapping[str, torch.Tensor],
                  dynamic_shapes: tuple | None, opset: int | None) -> Any:
    kwargs: dict[str, Any] = {"dynamo": True, "verbose": False, "dynamic_shapes": dynamic_shapes}
    if opset is not None:
        kwargs["opset_version"] = opset
    with _traced_without_leftovers(net), _quiet_exporter(), _quiet_tracer(), \
            contextlib.redirect_stdout(io.StringIO()):
        try:
            return torch.onnx.export(wrapper, tuple(feed.values()), **kwargs)
        except CaffeFormatError:
            raise
        except Exception as exc:
            raise CaffeFormatError(f"cannot export the net to ONNX for input shapes "
                                   f"{dict(_shapes_of(feed))}: " + _failure_summary(exc)) from exc


def _saved(program: Any, tmp: str, net, wrapper: ExportableNet) -> Any:
    """Save the exporter's ONNX program to ``tmp`` with the blob names on the graph's inputs
    and outputs; returns the model."""
    import onnx  # lazy: optional dependency (the [onnx] extra)

    program.save(tmp)
    model = onnx.load(tmp)
    _name_graph_io(model, list(net.inputs), list(wrapper.output_names))
    _name_dynamic_axes(model, list(net.inputs))
    onnx.save(model, tmp)
    return model


def _name_dynamic_axes(model, input_names: Sequence[str]) -> None:
    """Call the exporter's size symbols (``s21``...) of the inputs' dynamic axes ``batch``,
    ``height`` and ``width`` (``<input>_<axis>`` where two inputs' sizes are independent),
    wherever the graph's inputs and outputs carry them."""
    names: dict[str, str] = {}
    graph = model.graph
    for value in graph.input:
        if value.name not in input_names:
            continue
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_param") and dim.dim_param not in names:
                label = _FREE_AXES.get(axis, f"axis{axis}")
                names[dim.dim_param] = (label if label not in names.values()
                                        else f"{value.name}_{label}")
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]


def _shapes_of(feed: Mapping[str, Any]) -> "OrderedDict[str, tuple[int, ...]]":
    return OrderedDict((k, tuple(v.shape)) for k, v in feed.items())


def onnx_axes(model, input_names: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Per graph input named in ``input_names``, its dynamic axes (``dim_param``)."""
    out = {}
    for value in model.graph.input:
        if value.name in input_names:
            dims = value.type.tensor_type.shape.dim
            out[value.name] = tuple(i for i, d in enumerate(dims) if d.HasField("dim_param"))
    return out


def _name_graph_io(model, input_names: Sequence[str], output_names: Sequence[str]) -> None:
    """Give the graph's inputs and outputs the Caffe blob names.

    (The exporter's own ``input_names``/``output_names`` can clash with the names it gives
    intermediate values, e.g. an output blob called ``tanh``; here a clashing value is renamed
    out of the way first, so the graph stays in SSA form.)
    """
    graph = model.graph
    used: set[str] = set()
    for node in graph.node:
        used.update(node.input)
        used.update(node.output)
    used.update(i.name for i in graph.initializer)
    used.update(v.name for v in [*graph.input, *graph.output, *graph.value_info])

    def rename(old: str, new: str) -> None:
        for node in graph.node:
            node.input[:] = [new if n == old else n for n in node.input]
            node.output[:] = [new if n == old else n for n in node.output]
        for v in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
            if v.name == old:
                v.name = new
        used.discard(old)
        used.add(new)

    real_inputs = [v for v in graph.input if v.name not in {i.name for i in graph.initializer}]
    pairs = list(zip([v.name for v in real_inputs], input_names))
    pairs += list(zip([v.name for v in graph.output], output_names))
    targets = {new for _, new in pairs}
    for old, new in pairs:
        if old == new:
            continue
        if new in used:  # an intermediate value already carries the blob's name
            k = 1
            while f"{new}__{k}" in used or f"{new}__{k}" in targets:
                k += 1
            rename(new, f"{new}__{k}")
        rename(old, new)


def verify_onnx(path: str | os.PathLike, net, inputs: InputSpec | None = None,
                outputs: Sequence[str] | None = None, tol: float = 1e-4,
                say: Callable[[str], Any] | None = None, second: InputSpec | None = None,
                label: str | None = None) -> "OrderedDict[str, float]":
    """Check an ONNX file and run it (onnxruntime when installed, else ONNX's pure-Python
    reference evaluator: slow, fine for small nets) against the eager net, at ``inputs`` and
    (given) at ``second``'s shapes; per output the largest ``max|onnx - eager| / max|eager|``,
    ``CaffeFormatError`` above ``tol``. ``say`` gets one line naming the runtime (and the
    file as ``label``, default its name) before the run."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    names = list(outputs) if outputs else list(net.outputs)
    run = _onnx_runner(model, str(path), names, say or (lambda line: None),
                       label or os.path.basename(path))
    worst: OrderedDict[str, float] = OrderedDict()
    for feed in _feeds(net, inputs, second, device="cpu"):
        got = _run_at(lambda f=feed: run({k: v.numpy() for k, v in f.items()}), "ONNX model",
                      feed)
        eager_feed = OrderedDict((k, v.to(net.device)) for k, v in feed.items())
        worst = _worst(worst, _max_diffs(got, eager_outputs(net, eager_feed, names), names))
    _check(worst, tol, "ONNX model")
    return worst


def _onnx_runner(model, path: str, names: Sequence[str], say: Callable[[str], Any],
                 label: str) -> Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]:
    """A function running the model on a feed: onnxruntime's CPU session, else ONNX's
    reference evaluator (``VerificationUnavailable`` where it lacks an op)."""
    try:
        import onnxruntime as ort
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        say(f"checking {label} with ONNX's pure-Python reference evaluator (onnxruntime is "
            "not installed: this can take minutes; pip install onnxruntime) ...")

        def evaluate(feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
            try:
                return ReferenceEvaluator(model).run(names, dict(feed))
            except Exception as exc:  # the pure-Python evaluator lacks some ops / attributes
                raise VerificationUnavailable(
                    f"ONNX's reference evaluator cannot run this graph ({type(exc).__name__}: "
                    f"{exc}); install onnxruntime to check the export") from exc
        return evaluate
    say(f"checking {label} with onnxruntime {ort.__version__} against the eager net ...")
    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own error: the graph is not one it can load
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise CaffeFormatError(f"onnxruntime cannot load the exported graph: {first}") from exc
    return lambda feed: session.run(names, dict(feed))


EXPORT_SUFFIXES = (".onnx", ".pt2")


def _tol(net) -> dict[str, float]:
    """The export check's tolerance: the defaults for an exact net; for ``precision="fast"``
    5e-2, because the export traces PyTorch's own bf16 kernels where the eager net runs
    oneDNN's fused ones (equal up to bf16 rounding)."""
    return {} if getattr(net, "precision", "exact") == "exact" else {"tol": 5e-2}


def write_export(net, path: str | os.PathLike, inputs: InputSpec | None = None,
                 outputs: Sequence[str] | None = None, opset: int | None = None,
                 verify: bool = True, say: Callable[[str], Any] = print,
                 kind: str | None = None, dynamic: bool = True) -> str:
    """Export the deploy ``net`` as ``kind`` (``.onnx`` or ``.pt2``; default: ``path``'s
    ending), dynamic where the net allows it unless ``dynamic=False`` (``say`` hears one
    line naming the axes that stay static, and why); then (``verify``) rerun the file against
    the eager net at the traced size and, when dynamic, at a second size. The file appears
    at ``path`` only once written and verified. ``say`` gets one line before each slow step;
    returns the line that sums the result up."""
    path = Path(path)
    kind = kind or path.suffix.lower()
    if kind not in EXPORT_SUFFIXES:
        raise UsageError(f"{path}: an export is written as .onnx or .pt2, not '{path.suffix}'")
    check_exportable(net, outputs, "torch.export" if kind == ".pt2" else "ONNX", path)
    if kind == ".onnx":
        check_onnx_precision(net)
    shapes = input_shapes(net, inputs)
    check_input_shapes(net, shapes, outputs)  # the net's own refusals before the torch's
    require_torch(TORCH_FOR_EXPORT, NEEDS_TORCH_EXPORT[kind])
    how = "tracing the net with torch.export" if kind == ".pt2" else "exporting the net to ONNX"
    say(f"{how} for {_shapes_line(shapes)} ...")
    with atomic_path(path) as tmp:
        check, plan = _export_to(kind, net, tmp, inputs, outputs, opset, dynamic, say, path)
        if plan is not None and plan.note():
            say(plan.note())
        free = plan is not None and bool(plan.axes)
        axes = (f"dynamic {', '.join(plan.labels())}" if free
                else "static" + ("" if dynamic else ": --static"))
        if not verify:
            return f"wrote {path} (not verified: --no-verify; {axes})"
        try:
            diffs = check(plan.second if free else None)
        except VerificationUnavailable as exc:
            return f"wrote {path} (NOT verified: {exc}; {axes})"
    at = " and ".join(_shapes_line(s) for s in [shapes] + ([plan.second] if free else []))
    return (f"wrote {path} (matches eager at {at}: max abs / max "
            f"{max(diffs.values(), default=0):.2e}; {axes})")


def _export_to(kind: str, net, tmp: str, inputs: InputSpec | None,
               outputs: Sequence[str] | None, opset: int | None, dynamic: bool,
               say: Callable[[str], Any], path: Path
               ) -> tuple[Callable[[InputSpec | None], Any], DynamicPlan | None]:
    """Write the export to ``tmp``; returns its check (taking the second size) and plan."""
    if kind == ".pt2":
        program, plan = _trace_program(net, inputs, outputs, dynamic)
        save_program(program, tmp)

        def check(second: InputSpec | None) -> Any:
            say(f"checking {path.name} against the eager net ...")
            return verify_program(program, net, inputs, outputs, second=second, **_tol(net))
        return check, plan
    plan = _onnx_to(net, tmp, inputs, outputs, opset, dynamic)
    return (lambda second: verify_onnx(tmp, net, inputs, outputs, say=say, second=second,
                                       label=path.name, **_tol(net))), plan


def compile_net(net, **kwargs: Any) -> Callable[..., "OrderedDict[str, torch.Tensor]"]:
    """``torch.compile`` a deploy net; returns a callable with ``CaffeNet.forward``'s
    signature (``compiled(**inputs)`` -> blobs). Shapes are static per compilation, as in
    Caffe, where a new input shape reshapes the whole net."""
    wrapper = _wrap(net, kwargs.pop("outputs", None))
    compiled = torch.compile(wrapper, **kwargs)

    def run(**inputs: Any) -> "OrderedDict[str, torch.Tensor]":
        feed = example_inputs(net, inputs)
        with torch.no_grad():
            tops = compiled(*feed.values())
        return OrderedDict(zip(wrapper.output_names, tops))

    return run


__all__ = ["ExportableNet", "VerificationUnavailable", "parse_shape", "example_inputs",
           "export_program", "save_program", "verify_program", "export_onnx", "verify_onnx",
           "compile_net", "eager_outputs", "write_export", "EXPORT_SUFFIXES", "input_shapes",
           "blob_shapes_for", "check_input_shapes", "check_onnx_precision", "DynamicPlan",
           "plan_dynamic", "program_axes", "onnx_axes"]
