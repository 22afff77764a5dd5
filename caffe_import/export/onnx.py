"""ONNX exports of a deploy net (the dynamo-based exporter), with the Caffe blob names and
named dynamic axes on the graph, and their check against eager (onnxruntime, else ONNX's
reference evaluator)."""
from __future__ import annotations

import contextlib
import io
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..compat import TORCH_FOR_EXPORT, require_torch
from ..errors import CaffeFormatError, UsageError
from ..io.atomic import atomic_path
from .dynamic import FREE_AXES, DynamicPlan, export_dynamic_shapes, plan_dynamic, tracing_feed
from .program import (NEEDS_TORCH_EXPORT, ExportableNet, check_exportable, failure_summary,
                      quiet_tracer, settled, traced_without_leftovers, wrap)
from .shapes import InputSpec, check_input_shapes, input_shapes, shapes_of
from .verify import (VerificationUnavailable, check_diffs, eager_outputs, feeds, max_diffs,
                     run_at, worst_of)

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
        onnx_to(net, tmp, inputs, outputs, opset, dynamic)
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


def onnx_to(net, tmp: str, inputs: InputSpec | None, outputs: Sequence[str] | None,
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
    wrapper = wrap(net, outputs)
    shapes = input_shapes(net, inputs)
    check_input_shapes(net, shapes, outputs)
    plan = plan_dynamic(net, shapes, outputs) if dynamic else None
    trace = lambda: _onnx_program(net, wrapper, tracing_feed(net, inputs, plan),  # noqa: E731
                                  export_dynamic_shapes(net, plan), opset)
    settled(trace, plan, net, lambda p: (onnx_axes(_saved(p, tmp, net, wrapper), net.inputs),
                                          p.exported_program))
    return plan


def _onnx_program(net, wrapper: ExportableNet, feed: Mapping[str, torch.Tensor],
                  dynamic_shapes: tuple | None, opset: int | None) -> Any:
    kwargs: dict[str, Any] = {"dynamo": True, "verbose": False, "dynamic_shapes": dynamic_shapes}
    if opset is not None:
        kwargs["opset_version"] = opset
    with traced_without_leftovers(net), _quiet_exporter(), quiet_tracer(), \
            contextlib.redirect_stdout(io.StringIO()):
        try:
            return torch.onnx.export(wrapper, tuple(feed.values()), **kwargs)
        except CaffeFormatError:
            raise
        except Exception as exc:
            raise CaffeFormatError(f"cannot export the net to ONNX for input shapes "
                                   f"{dict(shapes_of(feed))}: " + failure_summary(exc)) from exc


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
                label = FREE_AXES.get(axis, f"axis{axis}")
                names[dim.dim_param] = (label if label not in names.values()
                                        else f"{value.name}_{label}")
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]


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
    for feed in feeds(net, inputs, second, device="cpu"):
        got = run_at(lambda f=feed: run({k: v.numpy() for k, v in f.items()}), "ONNX model",
                      feed)
        eager_feed = OrderedDict((k, v.to(net.device)) for k, v in feed.items())
        worst = worst_of(worst, max_diffs(got, eager_outputs(net, eager_feed, names), names))
    check_diffs(worst, tol, "ONNX model")
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
