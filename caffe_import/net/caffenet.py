"""``CaffeNet``: a Caffe ``NetParameter`` built the way Caffe's ``Net::Init`` builds it, as a
``torch.nn.Module``.

The net's concerns live beside this module: which layers exist in a state (``state.py``,
``filter_net``), building and wiring them (``build.py``), how a forward runs them
(``plan.py``: liveness, fusion, in-place rights), weights by layer name (``weights.py``) and
precision (``caffe_import.precision``). This class holds them together: construction, forward,
gradients as Caffe holds them, and the pycaffe-like surface.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from collections import OrderedDict
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from google.protobuf import text_format
from torch import nn

from ..compat import add_note
from ..device import resolve_device
from ..errors import CaffeFormatError
from ..io import write_weights, write_weights_h5
from ..io.text import ParsedNet, parse_net
from ..io.upgrade import net_needs_upgrade, upgrade_net
from ..layers.base import CaffeLayer, Shape, tracing
from ..layers.data_read import DataReading
from ..layers.python_layer import PythonLayerRegistry
from ..precision import (PrecisionPolicy, cast_bottoms, cast_layer_params, float32_results,
                         precision_scope, resolve_precision)
from ..proto.schema import Schema, is_message, resolve_schema, schema_of
from . import plan as run_plans
from . import weights as net_weights
from .blobs import BlobTensors
from .build import NetBuilder, ParamSpecInfo
from .plan import Step
from .state import filter_net, phase_name

PathLike = str | os.PathLike


def _load_net(net, schema=None):
    """``(NetParameter, unknown fields, path)`` of a message, path, prototxt text or a net
    :func:`~caffe_import.io.text.parse_net` has read already.

    A message given with a ``schema`` is carried over to that schema by field name."""
    if isinstance(net, ParsedNet):
        if schema is None or net.schema is schema:
            return net.net_param, list(net.unknown), net.path
        net = net.net_param
    if is_message(net, "NetParameter"):
        if schema is not None and schema_of(net) is not schema:
            moved = schema.NetParameter()
            text_format.Parse(text_format.MessageToString(net), moved)
            net = moved
        return (upgrade_net(net) if net_needs_upgrade(net) else net), [], None
    if isinstance(net, (str, os.PathLike)):
        parsed = parse_net(net, schema=schema)
        return parsed.net_param, parsed.unknown, parsed.path
    raise TypeError(f"net must be a NetParameter, a path or prototxt text, not {type(net)!r}")


def _escape(name: str) -> str:
    """A layer name as an ``nn.Module`` attribute name (no ``.``; reversible)."""
    return name.replace("%", "%25").replace(".", "%2E").replace("#", "%23") or "%"


class CaffeNet(nn.Module):
    """A Caffe net as a ``torch.nn.Module`` (see docs/design.md, "Nets").

    ``CaffeNet(net, weights=None, phase="test", stages=(), level=0, retain_blob_grads=False,
    device=None, input_shapes=None, python_layers=None)``: ``net`` is a NetParameter, a path or
    prototxt text; ``weights`` a path (binary or HDF5 caffemodel) or a ``read_weights``-style
    mapping; ``device`` any name ``caffe_import.device.resolve_device`` reads (``"auto"``...);
    ``input_shapes`` maps input tops to shapes the file does not fix (data layers of Caffe and
    its forks become inputs of the same tops, see ``caffe_import.layers.data``).

    ``data``: False (default) keeps Caffe's data layers as net inputs; True (or a
    ``caffe_import.net.DataReading(seed=, prefetch=)``) builds ``Data``, ``ImageData`` and ``WindowData`` to
    read their sources as Caffe does (``caffe_import.layers.data_read``): each ``forward()``
    then serves the next batch, and a missing or unreadable source is an error now.

    ``forward(outputs=None, **inputs)`` feeds the ``Input`` blobs (tensors or arrays, any shape:
    layers re-derive shapes on every call, as Caffe's ``Reshape`` does; an input not given keeps
    the tensor in ``net.blobs``, or zeros of its declared shape) and returns every blob, or the
    named ones. In phase "train" (or with ``force_backward`` or ``keep_graph = True``) the
    autograd graph is kept; otherwise forward runs under ``torch.no_grad()``.

    Gradients as Caffe holds them: ``net.total_loss().backward()`` seeds each loss top with its
    weight, as Caffe's backward does, and leaves param gradients in ``p.grad``
    (``param_grads()`` returns them with zeros where Caffe's diff stays 0). For blob gradients set
    ``retain_blob_grads=True`` (constructor argument or attribute) before ``forward``; then
    ``net.blob_grads()`` returns, per blob, the gradient with respect to the blob *as its first
    writer produced it* — what Caffe's in-place backward leaves in the blob's diff (for
    ``conv1_1`` rewritten by ``relu1_1``: the gradient w.r.t. the convolution's output) — and
    zeros for blobs Caffe does not back-propagate into (inputs, labels).

    Inference memory: a forward that records no gradient drops each blob after its last reader
    (liveness from the step list), so the net holds its weights plus the live activations; the
    result (and ``net.blobs``) then holds the inputs, the net's outputs and the blobs named in
    ``outputs``. ``keep_blobs=True`` (constructor argument or attribute) keeps every blob, as
    pycaffe's ``net.blobs`` does; so does any forward that records a graph.

    ``data``: data layers that can read (``HDF5Data``, ``caffe_import.layers.hdf5_data``) open
    their sources (relative paths from the working directory, as Caffe) and read a batch each
    forward; without it they are net inputs (``caffe_import.layers.data``).

    ``strict``: weights that leave a net layer with params without values are a
    ``CaffeFormatError`` naming the layers and the file, not a ``MissingWeightsWarning``
    (Caffe copies silently; see ``load_weights``).

    ``python_layers``: the registry ``type: "Python"`` layers are looked up in
    (``caffe_import.layers.python_layer``; default: the one ``register_python_layer`` fills).

    ``precision``: ``"exact"`` (default: float32, TF32 off, scoped to each forward) or
    ``"fast"`` (bf16 where the layers allow, channels_last, fused Convolution+ReLU,
    ``torch.compile`` on CUDA; ``compile=True/False`` overrides); see
    ``caffe_import.precision``. ``set_precision`` switches later.
    """

    def __init__(self, net: Any, weights: PathLike | Mapping[str, Sequence[Any]] | None = None,
                 phase: str | int = "test", stages: Iterable[str] = (), level: int = 0, *,
                 retain_blob_grads: bool = False, device: torch.device | str | None = None,
                 fork: str | None = None, proto: PathLike | None = None,
                 schema: Schema | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None,
                 precision: str | PrecisionPolicy = "exact", keep_blobs: bool = False,
                 compile: bool | None = None,
                 python_layers: PythonLayerRegistry | None = None,
                 strict: bool | None = None, data: bool | DataReading = False) -> None:
        super().__init__()
        #: shapes of input tops the net file does not fix (data layers, shapeless Input)
        self.given_input_shapes = {str(k): tuple(v) for k, v in (input_shapes or {}).items()}
        source, unknown_fields, source_path = _load_net(
            net, resolve_schema(schema, fork, proto))
        self.phase: str = phase_name(phase)
        self.net_param = filter_net(source, self.phase, stages, level)
        self.retain_blob_grads = retain_blob_grads
        self.keep_blobs = keep_blobs
        self.policy: PrecisionPolicy = resolve_precision("exact")
        self._compiled: Any = None
        self.keep_graph: bool | None = None
        self._first_writer: dict[str, torch.Tensor] = {}
        self._loss_tops: dict[str, torch.Tensor] = {}
        self._plans: dict[tuple, list[run_plans.PlannedStep]] = {}
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)
        reading = data if isinstance(data, DataReading) else (DataReading() if data else None)
        layout = NetBuilder(self.net_param, self.phase, self.given_input_shapes,
                            python_layers, weights, reading).build(unknown_fields, source_path)
        self._adopt(layout)
        if weights is not None:
            self.load_weights(weights, strict=strict)
        if device is not None:
            self.to(resolve_device(device))
        self.set_precision(precision, compile=compile)

    # ------------------------------------------------------------------ construction
    def _adopt(self, layout: NetBuilder) -> None:
        """Take the built layers and their wiring; register each layer as a submodule."""
        self.blob_shapes: OrderedDict[str, Shape] = layout.blob_shapes
        self.blobs: BlobTensors = BlobTensors(self.blob_shapes)
        self.inputs: list[str] = layout.inputs
        self.outputs: list[str] = layout.outputs
        self.layer_names: list[str] = layout.layer_names
        self.layer_types: list[str] = layout.layer_types
        self.loss_weights: OrderedDict[str, float] = layout.loss_weights
        self._steps: list[Step] = layout.steps
        self._learnable: list[ParamSpecInfo] = layout.learnable
        self._first_index: dict[str, int] = layout.first_index
        for step in self._steps:
            self._register_layer(step.name, step.module)
        for n in self.inputs:
            self.blobs[n] = torch.zeros(self.blob_shapes[n])

    def _register_layer(self, name: str, module: CaffeLayer) -> None:
        attr = _escape(name)
        if attr in self._modules:  # a later layer with the same name (Caffe allows it)
            k = 1
            while f"{attr}#{k}" in self._modules:
                k += 1
            attr = f"{attr}#{k}"
        elif hasattr(self, attr):  # the name of a CaffeNet attribute: escape its first char
            attr = f"%{ord(attr[0]):02X}{attr[1:]}"
        self.add_module(attr, module)

    # ------------------------------------------------------------------ running
    @property
    def device(self) -> torch.device:
        return self._device_probe.device

    def _input_tensor(self, name: str, value: Any) -> torch.Tensor:
        t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
        if t.is_floating_point() and t.dtype != torch.float32:
            t = t.float()
        elif not t.is_floating_point():
            t = t.float()  # Caffe holds labels and indices as float blobs
        return t.to(self.device)

    def forward(self, outputs: Iterable[str] | None = None, **inputs: Any
                ) -> OrderedDict[str, torch.Tensor]:
        unknown = sorted(set(inputs) - set(self.inputs))
        if unknown:
            raise CaffeFormatError(f"{unknown} are not inputs of this net; its inputs are "
                                   f"{self.inputs}")
        wanted = None if outputs is None else (
            [outputs] if isinstance(outputs, str) else list(outputs))
        missing = [n for n in wanted or () if n not in self.blob_shapes]
        if missing:
            raise CaffeFormatError(f"no blobs named {missing} in this net")
        keep = self.keep_graph
        if keep is None:
            keep = self.phase == "train" or self.net_param.force_backward
        with torch.set_grad_enabled(keep and torch.is_grad_enabled()), \
                precision_scope(self.policy, self.device):
            blobs = self._dispatch(inputs, wanted)
        self.blobs = blobs
        if wanted is None:
            return BlobTensors(self.blob_shapes, blobs, freed=blobs.freed)
        return BlobTensors(self.blob_shapes, ((n, blobs[n]) for n in wanted), freed=blobs.freed)

    def _dispatch(self, inputs: Mapping[str, Any], wanted: list[str] | None) -> "BlobTensors":
        """``_run``, through ``torch.compile`` when the precision policy asks for it (falling
        back to eager, with one warning, when compiling fails)."""
        use = (self._compiled is not False and not torch.is_grad_enabled()
               and self.policy.compiles_on(self.device))
        if not use:
            return self._run(inputs, wanted)
        if self._compiled is None:
            # dynamic=None: static first, dynamic shapes after a size changes (an evaluation
            # feeds images of many sizes; a static graph per size would recompile each time)
            self._compiled = torch.compile(self._run, dynamic=None)
        try:
            return self._compiled(inputs, wanted)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: run eagerly instead
            warnings.warn(f"torch.compile failed ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}); running eagerly",
                          RuntimeWarning, stacklevel=3)
            self._compiled = False
            return self._run(inputs, wanted)

    def _feed(self, step: Step, inputs: Mapping[str, Any], blobs: dict) -> None:
        # force_backward with blob gradients: Caffe back-propagates into the inputs too
        want_input_grads = (self.retain_blob_grads and torch.is_grad_enabled()
                            and self.net_param.force_backward)
        for t in step.tops:
            if t in inputs:
                value = self._input_tensor(t, inputs[t])
            elif t in self.blobs:
                value = self.blobs[t].to(self.device)
            else:
                value = torch.zeros(self.blob_shapes[t], device=self.device)
            if want_input_grads and value.is_floating_point():
                value = value.detach().requires_grad_(True)
            blobs[t] = value

    def _call(self, step: Step, bottoms: list[torch.Tensor], fused: bool
              ) -> tuple[torch.Tensor, ...]:
        try:
            tops = step.module.forward_relu(*bottoms) if fused else step.module(*bottoms)
        except CaffeFormatError:
            raise
        except Exception as e:
            add_note(e, f"in Caffe layer '{step.name}' (type {step.type}), bottoms "
                        f"{[tuple(b.shape) for b in bottoms]}")
            raise
        if len(tops) != len(step.tops):
            raise CaffeFormatError(f"{step.type} returned {len(tops)} tops, the layer "
                                   f"names {len(step.tops)}", layer=step.name)
        return tops

    def _run(self, inputs: Mapping[str, Any], wanted: list[str] | None = None) -> "BlobTensors":
        blobs = BlobTensors(self.blob_shapes)
        first: dict[str, torch.Tensor] = {}
        losses: dict[str, torch.Tensor] = {}
        grad = torch.is_grad_enabled()
        retain = self.retain_blob_grads and grad
        free = not grad and not self.keep_blobs
        plan = self._plan(tuple(wanted) if free and wanted is not None else None, free,
                          self.policy.fuse and not grad and not tracing())
        for step, fused, release in plan:
            if step.is_input:
                self._feed(step, inputs, blobs)
                if grad:
                    first.update((t, blobs[t]) for t in step.tops)
                continue
            bottoms = [blobs[b] for b in step.bottoms]
            if self.policy.reduced:
                bottoms = cast_bottoms(self.policy, step.module.dtype_policy, bottoms)
            tops = self._call(step, bottoms, fused)
            del bottoms
            for name, value, in_place in zip(step.tops, tops, step.in_place):
                blobs[name] = value
                if not in_place and grad:
                    first[name] = value
                    if retain and value.requires_grad:
                        value.retain_grad()
                if name in self.loss_weights:
                    losses[name] = value
            for name in release:
                del blobs[name]
                blobs.freed.add(name)
        self._first_writer = first
        self._loss_tops = losses
        if self.policy.reduced:
            float32_results(blobs)
        return blobs

    def _plan(self, wanted: tuple[str, ...] | None, free: bool, fuse: bool
              ) -> list[run_plans.PlannedStep]:
        """The steps to run: ``(step, fused with the ReLU after it, blobs to drop after it)``
        (``plan.run_plan``; the net's inputs and outputs and ``wanted`` are kept). Cached per
        (wanted, free, fuse)."""
        key = (wanted, free, fuse)
        if key not in self._plans:
            keep = (*self.inputs, *self.outputs, *(wanted or ()))
            self._plans[key] = run_plans.run_plan(self._steps, keep, free, fuse)
        return self._plans[key]

    # ------------------------------------------------------------------ precision
    @property
    def precision(self) -> str:
        """The precision mode's name: ``"exact"`` or ``"fast"``."""
        return self.policy.name

    def set_precision(self, precision: str | PrecisionPolicy = "exact",
                      compile: bool | None = None) -> "CaffeNet":
        """Switch the precision mode (see the class doc). Params of ``"reduced"`` layers are
        cast to the mode's dtype (and 4-D ones to channels_last) in place; going back to
        ``"exact"`` casts them to float32, but values rounded to bf16 stay rounded: reload the
        weights (``load_weights``) for Caffe's numbers. Returns the net."""
        policy = resolve_precision(precision, compile)
        cast_layer_params(self.layers, policy)
        self.policy = policy
        self._compiled = None
        return self

    def total_loss(self, blobs: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``sum(weight * top.sum())`` over the loss tops: Caffe's net loss, and the value whose
        ``backward()`` seeds each loss top's gradient with its weight, as Caffe does. Without
        ``blobs``, the loss tops of the last forward (as their layers produced them)."""
        source = self._loss_tops if blobs is None else blobs
        total = torch.zeros((), device=self.device)
        for name, w in self.loss_weights.items():
            if name not in source:
                raise CaffeFormatError(f"loss blob '{name}' was not computed; run forward first")
            total = total + w * source[name].sum()
        return total

    def blob_grads(self) -> OrderedDict[str, torch.Tensor]:
        """Per blob, the gradient Caffe would hold in its diff after backward (needs
        ``retain_blob_grads=True`` before forward; zeros where no gradient reaches)."""
        out = OrderedDict()
        for name, t in self._first_writer.items():
            g = t.grad if t.requires_grad else None
            out[name] = g if g is not None else torch.zeros_like(t.detach())
        return out

    def param_grads(self) -> OrderedDict[str, list[torch.Tensor]]:
        """Per layer with params, each blob's gradient (zeros where Caffe's diff stays 0)."""
        out = OrderedDict()
        for name, blobs in self.params.items():
            out[name] = [b.grad if getattr(b, "grad", None) is not None
                         else torch.zeros_like(b.detach()) for b in blobs]
        return out

    # ------------------------------------------------------------------ pycaffe surface
    @property
    def layers(self) -> list[CaffeLayer]:
        """The layer modules in Caffe's order (pycaffe's ``net.layers``)."""
        return [s.module for s in self._steps]

    def layer(self, name: str) -> CaffeLayer:
        """The (first) layer called ``name``."""
        if name not in self._first_index:
            raise KeyError(f"no layer named {name!r}")
        return self._steps[self._first_index[name]].module

    @property
    def params(self) -> OrderedDict[str, list[torch.Tensor]]:
        """Layer name -> param blobs in Caffe's order, for layers that have any."""
        out = OrderedDict()
        for step in self._steps:
            if step.module.blobs:
                out[step.name] = step.module.blobs
        return out

    @property
    def steps(self) -> tuple[Step, ...]:
        """The built layers in Caffe's order, each with its name, type, module, bottoms, tops,
        in-place flags and whether it feeds the net (read-only: a tuple of frozen records)."""
        return tuple(self._steps)

    def steps_for(self, outputs: Iterable[str]) -> list[Step]:
        """The steps (layers, in order) the blobs ``outputs`` depend on."""
        return run_plans.steps_for(self._steps, outputs)

    @contextlib.contextmanager
    def only_steps_for(self, outputs: Iterable[str]) -> Iterator[None]:
        """Run only :meth:`steps_for` ``outputs`` while inside (an export of part of a net:
        Caffe always runs every layer, so this is never the default). Run plans are rebuilt
        on entry and exit."""
        steps = self._steps
        self._plans = {}
        self._steps = self.steps_for(outputs)
        try:
            yield
        finally:
            self._steps = steps
            self._plans = {}

    def learnable_params(self) -> list[ParamSpecInfo]:
        """Params the solver updates, in Caffe's ``learnable_params_`` order; a param shared
        by ``ParamSpec.name`` appears once, under the layer that owns it."""
        return list(self._learnable)

    # ------------------------------------------------------------------ weights
    def weights(self) -> OrderedDict[str, list[np.ndarray]]:
        """Layer name -> param blobs as float32 arrays (for ``caffe_import.io.write_weights``)."""
        return net_weights.weight_arrays(self._steps)

    def load_weights(self, source: PathLike | Mapping[str, Sequence[Any]],
                     strict: bool | None = None) -> list[str]:
        """Copy weights in by layer name, as Caffe's ``CopyTrainedLayersFrom``: layers of the
        file absent from the net are ignored, net layers absent from the file keep their
        values; the first net layer of a name is the target; blob counts must agree and
        shapes match (legacy 4-D shapes by ``match_blob_shape``). Net layers with params
        that got no weights are returned and warned about (``MissingWeightsWarning``; Caffe
        is silent); ``strict=True`` (default: inside ``strict_weights()``) makes them a
        ``CaffeFormatError``. See ``weights.load_weights``."""
        return net_weights.load_weights(self._steps, self._first_index, self.net_param, source,
                                        strict)

    def share_trained_layers_with(self, other: "CaffeNet") -> None:
        """Caffe's ``ShareTrainedLayersWith``: this net's layers use ``other``'s param storage,
        by layer name (a test net sharing its train net's weights); see
        ``weights.share_trained_layers``."""
        net_weights.share_trained_layers(self._steps, self._learnable, other.steps)
        self._compiled = None

    def save_weights(self, path: PathLike, h5: bool = False) -> None:
        """Write a caffemodel (binary, or Caffe's HDF5 layout with ``h5=True``), atomically."""
        writer = write_weights_h5 if h5 else write_weights
        writer(path, self.net_param, self.weights())

    def extra_repr(self) -> str:
        return (f"name={self.net_param.name!r}, phase={self.phase!r}, "
                f"inputs={self.inputs}, outputs={self.outputs}")
