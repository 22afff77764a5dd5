"""Deploy nets out of Python: ``torch.export`` programs and ONNX, each checked against eager.

Caffe has no graph export of its own: a deploy net is its prototxt plus its caffemodel, run by
Caffe's interpreter loop. Here the ``CaffeNet`` is traced once for fixed input shapes (Caffe
reshapes the whole net when an input shape changes; the traced program has those shapes baked
in, crop offsets and deconvolution output sizes included), so export once per input size.

* ``export_program(net, inputs)`` -> ``torch.export.ExportedProgram`` (``save_program`` writes
  the ``.pt2``);
* ``export_onnx(net, inputs, path)`` writes ``.onnx`` with the dynamo-based exporter;
* ``verify_program`` / ``verify_onnx`` rerun the exported artefact and compare with eager.

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
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .compat import TORCH_FOR_EXPORT, require_torch
from .errors import CaffeFormatError, UsageError
from .io.atomic import atomic_path
from .layers.base import CaffeLayer
from .parity import Tolerance, compare_arrays

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


def export_program(net, inputs: InputSpec | None = None, outputs: Sequence[str] | None = None
                   ) -> torch.export.ExportedProgram:
    """``torch.export`` of a deploy ``CaffeNet`` for the shapes of ``inputs`` (static).
    Layers no fixed-shape graph can express (:func:`unexportable_layers`) are refused."""
    wrapper = _wrap(net, outputs)
    check_exportable(net, outputs, "torch.export")
    require_torch(TORCH_FOR_EXPORT, NEEDS_TORCH_EXPORT[".pt2"])
    args = tuple(example_inputs(net, inputs).values())
    with _traced_without_leftovers(net), _quiet_tracer() as held:
        try:
            program = torch.export.export(wrapper, args)
        except CaffeFormatError:
            raise
        except Exception as exc:  # a layer refusing these shapes, or an untraceable op
            shapes = {n: tuple(a.shape) for n, a in zip(net.inputs, args)}
            raise CaffeFormatError(f"cannot export the net for input shapes {shapes}: "
                                   + _failure_summary(exc)) from exc
        sys.stderr.write(held.getvalue())  # a successful trace's notes are passed on
        return program


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
    type, file:line and that line's code) and the first line of torch's message, without
    its debugging advice."""
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    where = ""
    home = str(Path(__file__).parents[1])
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
                   tol: float = 1e-5) -> "OrderedDict[str, float]":
    """Run ``program`` and the eager net on the same inputs; return, per output,
    ``max|exported - eager| / max|eager|``. Raises ``CaffeFormatError`` above ``tol``."""
    feed = example_inputs(net, inputs, seed=1)
    names = list(outputs) if outputs else list(net.outputs)
    with torch.no_grad():
        got = program.module()(*feed.values())
    diffs = _max_diffs(got, eager_outputs(net, feed, names), names)
    _check(diffs, tol, "torch.export program")
    return diffs


def _check(diffs: Mapping[str, float], tol: float, what: str) -> None:
    bad = {k: v for k, v in diffs.items() if not v <= tol}
    if bad:
        raise CaffeFormatError(f"the {what} does not reproduce the eager net: "
                               + ", ".join(f"{k}: max abs / max = {v:.3g}" for k, v in bad.items())
                               + f" (tolerance {tol:g})")


def export_onnx(net, path: str | os.PathLike, inputs: InputSpec | None = None,
                outputs: Sequence[str] | None = None, opset: int | None = None) -> Path:
    """Write ``net`` as ONNX (dynamo-based exporter; needs ``onnxscript``), atomically.

    Graph inputs and outputs carry the Caffe blob names. Layers ONNX cannot express
    (SSD's DetectionOutput, Python layers ...: :func:`unexportable_layers`) are refused with
    a list of them, never exported as something else.
    """
    check_exportable(net, outputs, "ONNX")
    require_torch(TORCH_FOR_EXPORT, NEEDS_TORCH_EXPORT[".onnx"])
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter imports it lazily; fail early)
    except ImportError as exc:
        raise CaffeFormatError("ONNX export needs the 'onnx' and 'onnxscript' packages "
                               "(pip install caffe-fcn-repro[onnx])") from exc
    wrapper = _wrap(net, outputs)
    args = tuple(example_inputs(net, inputs).values())
    path = Path(path)
    kwargs: dict[str, Any] = {"dynamo": True, "verbose": False}
    if opset is not None:
        kwargs["opset_version"] = opset

    def write(tmp: str) -> None:
        import onnx

        with _traced_without_leftovers(net), _quiet_exporter(), \
                contextlib.redirect_stdout(io.StringIO()):
            try:
                program = torch.onnx.export(wrapper, args, **kwargs)
            except CaffeFormatError:
                raise
            except Exception as exc:
                shapes = {n: tuple(a.shape) for n, a in zip(net.inputs, args)}
                raise CaffeFormatError(f"cannot export the net to ONNX for input shapes "
                                       f"{shapes}: {type(exc).__name__}: {exc}") from exc
        program.save(tmp)
        model = onnx.load(tmp)
        _name_graph_io(model, list(net.inputs), list(wrapper.output_names))
        onnx.save(model, tmp)

    with atomic_path(path) as tmp:
        write(tmp)
    return path


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
                say: Callable[[str], Any] | None = None) -> "OrderedDict[str, float]":
    """Check an ONNX file and run it (onnxruntime when installed, else ONNX's pure-Python
    reference evaluator: slow, fine for small nets) against the eager net; per output
    ``max|onnx - eager| / max|eager|``, ``CaffeFormatError`` above ``tol``. ``say`` gets one
    line naming the runtime before the run."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    feed = example_inputs(net, inputs, seed=1, device="cpu")
    names = list(outputs) if outputs else list(net.outputs)
    got = _run_onnx(model, str(path), names, {k: v.numpy() for k, v in feed.items()},
                    say or (lambda line: None))
    eager_feed = OrderedDict((k, v.to(net.device)) for k, v in feed.items())
    diffs = _max_diffs(got, eager_outputs(net, eager_feed, names), names)
    _check(diffs, tol, "ONNX model")
    return diffs


def _run_onnx(model, path: str, names: Sequence[str], feed: Mapping[str, np.ndarray],
              say: Callable[[str], Any]) -> list[np.ndarray]:
    name = os.path.basename(path)
    try:
        import onnxruntime as ort
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        say(f"checking {name} with ONNX's pure-Python reference evaluator (onnxruntime is not "
            "installed: this can take minutes; pip install onnxruntime) ...")
        try:
            return ReferenceEvaluator(model).run(names, feed)
        except Exception as exc:  # the pure-Python evaluator lacks some ops / attributes
            raise VerificationUnavailable(
                f"ONNX's reference evaluator cannot run this graph ({type(exc).__name__}: "
                f"{exc}); install onnxruntime to check the export") from exc
    say(f"checking {name} with onnxruntime {ort.__version__} against the eager net ...")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(names, dict(feed))


EXPORT_SUFFIXES = (".onnx", ".pt2")


def _shapes_text(net, inputs: InputSpec | None) -> str:
    feed = example_inputs(net, inputs)
    return ", ".join(f"{n} {'x'.join(map(str, t.shape))}" for n, t in feed.items())


def _tol(net) -> dict[str, float]:
    """The export check's tolerance: the defaults for an exact net; for ``precision="fast"``
    5e-2, because the export traces PyTorch's own bf16 kernels where the eager net runs
    oneDNN's fused ones (equal up to bf16 rounding)."""
    return {} if getattr(net, "precision", "exact") == "exact" else {"tol": 5e-2}


def write_export(net, path: str | os.PathLike, inputs: InputSpec | None = None,
                 outputs: Sequence[str] | None = None, opset: int | None = None,
                 verify: bool = True, say: Callable[[str], Any] = print,
                 kind: str | None = None) -> str:
    """Export the deploy ``net`` as ``kind`` (``.onnx`` or ``.pt2``; default: ``path``'s
    ending), then (``verify``) rerun the file against the eager net. ``say`` gets one line
    before each slow step; returns the line that sums the result up."""
    path = Path(path)
    kind = kind or path.suffix.lower()
    if kind not in EXPORT_SUFFIXES:
        raise UsageError(f"{path}: an export is written as .onnx or .pt2, not '{path.suffix}'")
    check_exportable(net, outputs, "torch.export" if kind == ".pt2" else "ONNX", path)
    require_torch(TORCH_FOR_EXPORT, NEEDS_TORCH_EXPORT[kind])
    shapes = _shapes_text(net, inputs)
    if kind == ".pt2":
        say(f"tracing the net with torch.export for {shapes} ...")
        program = export_program(net, inputs, outputs)
        save_program(program, path)
        check = lambda: verify_program(program, net, inputs, outputs, **_tol(net))  # noqa: E731
    else:
        say(f"exporting the net to ONNX for {shapes} ...")
        export_onnx(net, path, inputs, outputs, opset=opset)
        check = lambda: verify_onnx(path, net, inputs, outputs, say=say, **_tol(net))  # noqa: E731
    message = f"wrote {path}"
    if not verify:
        return message + " (not verified: --no-verify)"
    if kind == ".pt2":
        say(f"checking {path.name} against the eager net ...")
    try:
        diffs = check()
    except VerificationUnavailable as exc:
        return message + f" (NOT verified: {exc})"
    return message + f" (matches eager: max abs / max {max(diffs.values(), default=0):.2e})"


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
           "compile_net", "eager_outputs", "write_export", "EXPORT_SUFFIXES"]
