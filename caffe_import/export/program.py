"""``torch.export`` programs of a deploy net: what no exported graph can express (refused
with a list), the wrapper exporters trace, the dynamic trace settled against the plan, and
the one-paragraph summary of a failed trace."""
from __future__ import annotations

import contextlib
import io
import linecache
import logging
import os
import re
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..compat import TORCH_FOR_EXPORT, require_torch
from ..errors import CaffeFormatError
from ..io.atomic import atomic_path
from ..layers.base import CaffeLayer
from .dynamic import (DynamicPlan, export_dynamic_shapes, moved_shapes, plan_dynamic, settle,
                      tracing_feed)
from .shapes import (InputSpec, blob_shapes_for, check_input_shapes, example_inputs,
                     input_shapes, shapes_line, shapes_of)

#: what each export needs a newer torch for (compat.TORCH_FOR_EXPORT)
NEEDS_TORCH_EXPORT = {".pt2": "torch.export (.pt2)",
                      ".onnx": "ONNX export (torch.onnx's exporter, built on torch.export)"}


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
        reason = (getattr(step.module, "export_unsupported", None)
                  or EXPORT_UNSUPPORTED.get(step.type))
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


def wrap(net, outputs: Sequence[str] | None) -> ExportableNet:
    if getattr(net, "phase", "test") != "test":
        raise CaffeFormatError("export takes a deploy net: build it with phase='test' (a TRAIN "
                               "net's dropout and loss layers have no place in a deployed graph)")
    names = list(outputs) if outputs else list(net.outputs)
    if not names:
        raise CaffeFormatError("the net has no output blobs to export")
    return ExportableNet(net, net.inputs, names).eval()


@contextlib.contextmanager
def traced_without_leftovers(net) -> Iterator[None]:
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
    return trace_program(net, inputs, outputs, dynamic)[0]


def trace_program(net, inputs: InputSpec | None, outputs: Sequence[str] | None,
                   dynamic: bool) -> tuple[torch.export.ExportedProgram, DynamicPlan | None]:
    wrapper = wrap(net, outputs)
    check_exportable(net, outputs, "torch.export")
    shapes = input_shapes(net, inputs)
    check_input_shapes(net, shapes, outputs)
    require_torch(TORCH_FOR_EXPORT, NEEDS_TORCH_EXPORT[".pt2"])
    plan = plan_dynamic(net, shapes, outputs) if dynamic else None
    trace = lambda: _exported(net, wrapper, tracing_feed(net, inputs, plan),  # noqa: E731
                              export_dynamic_shapes(net, plan))
    program = settled(trace, plan, net, lambda p: (program_axes(p, net.inputs), p))
    return program, plan


def settled(trace: Callable[[], Any], plan: DynamicPlan | None, net,
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
            plan.give_up(f"torch.export cannot leave them free ({failure_summary(cause)})")
            continue
        why = _unsettled(plan, *read(result), net)
        if not why:
            return result
        plan.give_up(why)


def _unsettled(plan: DynamicPlan | None, free: Mapping[str, Sequence[int]],
               program: torch.export.ExportedProgram, net) -> str | None:
    """Settle the plan on what the trace left free (:func:`settle`) and run the program at
    the second size and at one a row and a column larger (made-up inputs): why it cannot
    stay dynamic, or None. torch.export records the sizes its code branched on as guards,
    checked on every call of a ``.pt2`` (ONNX keeps no such checks); a guard failing at a
    size the layers accept means the graph holds only for some sizes."""
    if plan is None or not plan.axes:
        return None
    if settle(plan, free) is None:
        return "torch.export fixed the batch at the traced size (2)"
    odd = moved_shapes(plan.second, {(n, a): plan.second[n][a] + 1
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
                    f"{shapes_line(shapes)}: {first})")
    return None


def _exported(net, wrapper: ExportableNet, feed: Mapping[str, torch.Tensor],
              dynamic_shapes: tuple | None) -> torch.export.ExportedProgram:
    with traced_without_leftovers(net), quiet_tracer() as held:
        try:
            program = torch.export.export(wrapper, tuple(feed.values()),
                                          dynamic_shapes=dynamic_shapes)
        except CaffeFormatError:
            raise
        except Exception as exc:  # a layer refusing these shapes, or an untraceable op
            raise CaffeFormatError(f"cannot export the net for input shapes "
                                   f"{dict(shapes_of(feed))}: " + failure_summary(exc)) from exc
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
def quiet_tracer() -> Iterator[io.StringIO]:
    """Hold what torch writes to stderr while tracing: a failed trace prints the partial
    graph (hundreds of lines) and its symbolic-shape logger a warning, around an error that
    :func:`failure_summary` says in a paragraph. The caller passes the text on after a
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


def failure_summary(exc: BaseException) -> str:
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
