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

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..compat import TORCH_FOR_EXPORT, require_torch
from ..errors import UsageError
from ..io.atomic import atomic_path
from .dynamic import DynamicPlan, plan_dynamic
from .onnx import check_onnx_precision, export_onnx, onnx_axes, onnx_to, verify_onnx
from .program import (NEEDS_TORCH_EXPORT, ExportableNet, check_exportable, export_program,
                      program_axes, save_program, trace_program, wrap)
from .program import EXPORT_UNSUPPORTED, unexportable_layers  # noqa: F401  (the package's face)
from .shapes import (InputSpec, blob_shapes_for, check_input_shapes, example_inputs,
                     input_shapes, parse_shape, shapes_line)
from .verify import VerificationUnavailable, eager_outputs, tol_for, verify_program

EXPORT_SUFFIXES = (".onnx", ".pt2")


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
    say(f"{how} for {shapes_line(shapes)} ...")
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
    at = " and ".join(shapes_line(s) for s in [shapes] + ([plan.second] if free else []))
    return (f"wrote {path} (matches eager at {at}: max abs / max "
            f"{max(diffs.values(), default=0):.2e}; {axes})")


def _export_to(kind: str, net, tmp: str, inputs: InputSpec | None,
               outputs: Sequence[str] | None, opset: int | None, dynamic: bool,
               say: Callable[[str], Any], path: Path
               ) -> tuple[Callable[[InputSpec | None], Any], DynamicPlan | None]:
    """Write the export to ``tmp``; returns its check (taking the second size) and plan."""
    if kind == ".pt2":
        program, plan = trace_program(net, inputs, outputs, dynamic)
        save_program(program, tmp)

        def check(second: InputSpec | None) -> Any:
            say(f"checking {path.name} against the eager net ...")
            return verify_program(program, net, inputs, outputs, second=second, **tol_for(net))
        return check, plan
    plan = onnx_to(net, tmp, inputs, outputs, opset, dynamic)
    return (lambda second: verify_onnx(tmp, net, inputs, outputs, say=say, second=second,
                                       label=path.name, **tol_for(net))), plan


def compile_net(net, **kwargs: Any) -> Callable[..., "OrderedDict[str, torch.Tensor]"]:
    """``torch.compile`` a deploy net; returns a callable with ``CaffeNet.forward``'s
    signature (``compiled(**inputs)`` -> blobs). Shapes are static per compilation, as in
    Caffe, where a new input shape reshapes the whole net."""
    wrapper = wrap(net, kwargs.pop("outputs", None))
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

