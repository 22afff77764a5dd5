"""``CaffeNet``: a Caffe ``NetParameter`` built the way Caffe's ``Net::Init`` builds it.

What carries over from Caffe (``src/caffe/net.cpp``):

* the net state (phase, level, stages) and the include/exclude ``NetStateRule``s decide which
  layers exist (``filter_net``);
* blobs are named; a top equal to the bottom at the same index is computed in place (later
  readers see the new value), any other reuse of a name is an error;
* a blob read by several layers is simply reused: Caffe's automatic ``Split`` layers are not
  needed (autograd sums the gradients as Split's backward does);
* tops of ``Input`` layers - and of data layers, which read nothing here - are the net's inputs; blobs produced and never consumed are its
  outputs (sorted by name, as Caffe's ``std::set`` yields them);
* ``loss_weight`` per top (``*Loss`` types: 1 for the first top unless given, others 0);
* params shared by ``ParamSpec.name`` are one ``nn.Parameter`` (STRICT: same shape,
  PERMISSIVE: same count); ``lr_mult: 0`` params do not require grad (Caffe skips their diff);
* weights are copied by layer name (``CopyTrainedLayersFrom``).
"""
from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .compat import add_note
from .errors import CaffeFormatError
from .layers import registry
from .layers.base import DTYPE_FLOAT32, DTYPE_REDUCED, CaffeLayer, Shape, tracing
from .precision import PrecisionPolicy, precision_scope, resolve_precision

PathLike = str | os.PathLike
_PHASES = {"train": 0, "test": 1}
_PHASE_NAMES = {0: "train", 1: "test"}
AUTO_TOP = "(automatic)"


@dataclass
class ParamSpecInfo:
    """A learnable param as Caffe's solver sees it (``Net::learnable_params()``)."""

    layer: str
    index: int
    param: nn.Parameter
    lr_mult: float = 1.0
    decay_mult: float = 1.0
    name: str = ""  # ParamSpec.name ("" when not shared)


@dataclass
class _Step:
    """One instantiated layer and its wiring."""

    name: str
    type: str
    module: CaffeLayer
    bottoms: list[str]
    tops: list[str]
    in_place: list[bool]
    is_input: bool


def phase_name(phase: str | int) -> str:
    """``"train"`` or ``"test"`` from a name (any case) or Caffe's enum (TRAIN=0, TEST=1)."""
    if isinstance(phase, str) and phase.lower() in _PHASES:
        return phase.lower()
    if isinstance(phase, int) and not isinstance(phase, bool) and phase in _PHASE_NAMES:
        return _PHASE_NAMES[phase]
    raise ValueError(f"phase must be 'train' or 'test' (or caffe_pb2.TRAIN/TEST), got {phase!r}")


def state_meets_rule(state, rule) -> bool:
    """Caffe's ``StateMeetsRule``: every condition the rule sets holds for ``state``."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    return not any(s in stages for s in rule.not_stage)


def layer_included(layer, state) -> bool:
    """No rules: included. Exclude rules: out if any is met. Include rules: in if any is met."""
    if len(layer.include) and len(layer.exclude):
        raise CaffeFormatError("a layer may have include rules or exclude rules, not both",
                               layer=layer.name)
    if len(layer.exclude):
        return not any(state_meets_rule(state, r) for r in layer.exclude)
    if len(layer.include):
        return any(state_meets_rule(state, r) for r in layer.include)
    return True


def filter_net(net, phase: str | int = "test", stages: Iterable[str] = (), level: int = 0):
    """The NetParameter Caffe instantiates for this state (``Net(file, phase, level, stages)``:
    phase and level replace the file's ``state``; stages are added to the file's stages)."""
    out = type(net)()
    out.CopyFrom(net)
    out.state.phase = _PHASES[phase_name(phase)]
    out.state.level = int(level)
    out.state.stage.extend(str(s) for s in stages)
    del out.layer[:]
    out.layer.extend(layer for layer in net.layer if layer_included(layer, out.state))
    return out


def _load_net(net, fork=None, proto=None):
    """``(NetParameter, unknown fields, path)`` of a message, path or prototxt text.

    A message given with ``fork``/``proto`` is carried over to that schema by field name."""
    from .io.upgrade import net_needs_upgrade, upgrade_net
    from .proto.schema import get_schema, is_message, schema_of

    if is_message(net, "NetParameter"):
        if fork is not None or proto is not None:
            schema = get_schema(fork, proto)
            if schema_of(net) is not schema:
                from google.protobuf import text_format

                moved = schema.NetParameter()
                text_format.Parse(text_format.MessageToString(net), moved)
                net = moved
        return (upgrade_net(net) if net_needs_upgrade(net) else net), [], None
    if isinstance(net, (str, os.PathLike)):
        from .io.text import parse_net

        parsed, unknown, path, _ = parse_net(net, fork=fork, proto=proto)
        return parsed, unknown, path
    raise TypeError(f"net must be a NetParameter, a path or prototxt text, not {type(net)!r}")


def _escape(name: str) -> str:
    """A layer name as an ``nn.Module`` attribute name (no ``.``; reversible)."""
    return name.replace("%", "%25").replace(".", "%2E").replace("#", "%23") or "%"


def _is_loss_type(type_name: str) -> bool:
    return type_name.endswith("Loss")


class BlobTensors(OrderedDict):
    """``CaffeNet.blobs``: blob name -> its tensor after the last forward (inputs before).

    The net knows every blob and its shape from construction (``net.blob_shapes``); asking for
    one that has no tensor yet says so instead of a bare ``KeyError``. The values are plain
    tensors, so ``.diff`` there is ``torch.Tensor.diff`` (finite differences), not Caffe's
    gradient: use ``net.blob_grads()``, or ``caffe_import.pycaffe.Net`` for pycaffe's
    ``Blob`` objects with ``.data`` and ``.diff``.
    """

    def __init__(self, shapes: Mapping[str, Shape], *args: Any,
                 freed: Iterable[str] = ()) -> None:
        super().__init__(*args)
        self._shapes = shapes
        self.freed: set[str] = set(freed)  # dropped after their last reader (inference)

    def __missing__(self, name: str) -> torch.Tensor:
        if name in self.freed:
            raise KeyError(f"blob {name!r} was released after its last reader to save memory; "
                           f"ask for it (forward(outputs=[...])) or build the net with "
                           f"keep_blobs=True")
        if name in self._shapes:
            raise KeyError(f"blob {name!r} (shape {self._shapes[name]}) has no data yet: "
                           f"forward() computes it; net.blob_shapes lists every blob now")
        known = ", ".join(self._shapes) or "none"
        raise KeyError(f"this net has no blob named {name!r} (its blobs: {known})")

    def __reduce__(self):
        return (OrderedDict, (list(self.items()),))


_INT_MAX = 2 ** 31 - 1


def _check_counts(tops: Sequence[str], shapes: Sequence[Shape], layer: str) -> None:
    """Caffe's ``Blob::Reshape`` refuses blobs of more than INT_MAX values (or a negative
    dimension); so does the net, before any memory is asked for them."""
    for top, shape in zip(tops, shapes):
        count = int(np.prod([int(d) for d in shape], dtype=object))
        if count > _INT_MAX or any(int(d) < 0 for d in shape):
            raise CaffeFormatError(f"top '{top}' would have shape {tuple(shape)}: more than "
                                   f"INT_MAX ({_INT_MAX}) values or a negative dimension, which "
                                   f"Caffe's Blob refuses", layer=layer)


def _with_auto_top(lp, auto_count: int) -> tuple[Any, int]:
    """Caffe's AutoTopBlobs: a loss layer without tops gets an anonymous one (a copy of the
    LayerParameter names it); other layers are returned as they are."""
    if not (_is_loss_type(lp.type) and not len(lp.top)):
        return lp, auto_count
    param = type(lp)()
    param.CopyFrom(lp)
    param.top.append(AUTO_TOP if not auto_count else f"{AUTO_TOP}_{auto_count}")
    return param, auto_count + 1


class CaffeNet(nn.Module):
    """A Caffe net as a ``torch.nn.Module`` (see docs/design.md, "Nets").

    ``CaffeNet(net, weights=None, phase="test", stages=(), level=0, retain_blob_grads=False,
    device=None, input_shapes=None)``: ``net`` is a NetParameter, a path or prototxt text;
    ``weights`` a path (binary or HDF5 caffemodel) or a ``read_weights``-style mapping;
    ``input_shapes`` maps input tops to shapes the file does not fix (data layers of Caffe and
    its forks become inputs of the same tops, see ``caffe_import.layers.data``).

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

    ``precision``: ``"exact"`` (default: float32, TF32 off, scoped to each forward) or
    ``"fast"`` (bf16 where the layers allow, channels_last, fused Convolution+ReLU,
    ``torch.compile`` on CUDA; ``compile=True/False`` overrides); see
    ``caffe_import.precision``. ``set_precision`` switches later.
    """

    def __init__(self, net: Any, weights: PathLike | Mapping[str, Sequence[Any]] | None = None,
                 phase: str | int = "test", stages: Iterable[str] = (), level: int = 0, *,
                 retain_blob_grads: bool = False, device: torch.device | str | None = None,
                 fork: str | None = None, proto: PathLike | None = None,
                 input_shapes: Mapping[str, Sequence[int]] | None = None,
                 precision: str | PrecisionPolicy = "exact", keep_blobs: bool = False,
                 compile: bool | None = None) -> None:
        super().__init__()
        #: shapes of input tops the net file does not fix (data layers, shapeless Input)
        self.given_input_shapes = {str(k): tuple(v) for k, v in (input_shapes or {}).items()}
        source, self._unknown_fields, self._source_path = _load_net(net, fork, proto)
        self.phase: str = phase_name(phase)
        self.net_param = filter_net(source, self.phase, stages, level)
        self.retain_blob_grads = retain_blob_grads
        self.keep_blobs = keep_blobs
        self.policy: PrecisionPolicy = resolve_precision("exact")
        self._compiled: Any = None
        self.keep_graph: bool | None = None
        self.blob_shapes: OrderedDict[str, Shape] = OrderedDict()
        self.blobs: BlobTensors = BlobTensors(self.blob_shapes)
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.layer_names: list[str] = []
        self.layer_types: list[str] = []
        self.loss_weights: OrderedDict[str, float] = OrderedDict()
        self._steps: list[_Step] = []
        self._learnable: list[ParamSpecInfo] = []
        self._first_writer: dict[str, torch.Tensor] = {}
        self._loss_tops: dict[str, torch.Tensor] = {}
        self._mult_seen: dict[str, set[str]] = {"lr_mult": set(), "decay_mult": set()}
        self._first_index: dict[str, int] = {}
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)
        self._build()
        if weights is not None:
            self.load_weights(weights)
        if device is not None:
            self.to(device)
        self.set_precision(precision, compile=compile)

    # ------------------------------------------------------------------ construction
    def _resolve_classes(self) -> list[type[CaffeLayer]]:
        """Every layer's class, or one error listing all layers whose type is unavailable."""
        classes, missing = [], []
        for lp in self.net_param.layer:
            cls = registry.get(lp.type)
            resolve = getattr(cls, "resolve", None)
            if cls is not None and resolve is not None:
                resolved = resolve(lp)
                if resolved is None:
                    describe = getattr(cls, "describe", None)
                    missing.append((lp.name, lp.type,
                                    describe(lp) if describe else f"type '{lp.type}'"))
                cls = resolved
            elif cls is None:
                missing.append((lp.name, lp.type, f"type '{lp.type}'"))
            classes.append(cls)
        if missing or self._unknown_fields:
            from .io.textscan import problems_error
            from .proto.schema import schema_of

            raise problems_error(self._unknown_fields, missing, schema_of(self.net_param),
                                 path=self._source_path)
        return classes

    def _build(self) -> None:
        classes = self._resolve_classes()
        net_phase = _PHASES[self.phase]
        available: set[str] = set()
        owners: dict[str, tuple[str, int, ParamSpecInfo, Shape]] = {}
        auto_count = 0
        for lp, cls in zip(self.net_param.layer, classes):
            if not lp.HasField("phase"):
                lp.phase = net_phase
            bottoms = self._checked_bottoms(lp)
            available.difference_update(bottoms)
            build_param, auto_count = _with_auto_top(lp, auto_count)
            tops = list(build_param.top)
            in_place = self._in_place_flags(lp.name, bottoms, tops)
            bottom_shapes = [self.blob_shapes[b] for b in bottoms]
            module = self._make_layer(cls, build_param, bottom_shapes, _PHASE_NAMES[lp.phase])
            is_input = bool(getattr(module, "feeds_net", False))
            shapes = self._top_shapes_of(module, lp, bottom_shapes, tops, is_input)
            for t, shape in zip(tops, shapes):
                self.blob_shapes[t] = tuple(int(d) for d in shape)
                if build_param is lp or not t.startswith(AUTO_TOP):
                    available.add(t)
            self._set_loss_weights(lp, tops, module)
            self._share_params(lp, module, owners)
            if is_input:
                self.inputs.extend(tops)
            self._steps.append(_Step(lp.name, lp.type, module, bottoms, tops, in_place,
                                     is_input))
            self.layer_names.append(lp.name)
            self.layer_types.append(lp.type)
            self._register_layer(lp.name, module)
        self._finish_build(available)

    def _checked_bottoms(self, lp) -> list[str]:
        """The layer's bottoms, each produced by an earlier layer; propagate_down sized right."""
        if len(lp.propagate_down) not in (0, len(lp.bottom)):
            raise CaffeFormatError(f"propagate_down has {len(lp.propagate_down)} entries for "
                                   f"{len(lp.bottom)} bottoms", layer=lp.name)
        for i, b in enumerate(lp.bottom):
            if b not in self.blob_shapes:
                raise CaffeFormatError(f"unknown bottom blob '{b}' (bottom {i}); no earlier "
                                       f"layer produces it", layer=lp.name)
        return list(lp.bottom)

    def _in_place_flags(self, name: str, bottoms: list[str], tops: list[str]) -> list[bool]:
        """Per top, whether Caffe computes it in place (top j == bottom j); any other top that
        an earlier layer already produced is an error, as in Caffe's AppendTop."""
        flags = []
        for j, t in enumerate(tops):
            same = j < len(bottoms) and t == bottoms[j]
            if not same and t in self.blob_shapes:
                raise CaffeFormatError(f"top blob '{t}' produced by multiple sources", layer=name)
            flags.append(same)
        return flags

    def _top_shapes_of(self, module: CaffeLayer, lp, bottom_shapes: list[Shape],
                       tops: list[str], is_input: bool) -> list[Shape]:
        """The layer's top shapes; whatever its own checks raise becomes a CaffeFormatError
        naming the layer, and so does a top count or size Caffe would refuse."""
        try:
            shapes = (self._input_shapes(module, tops) if is_input
                      else module.top_shapes(bottom_shapes))
        except CaffeFormatError:
            raise
        except Exception as e:  # a layer's own checks, in whatever form it raised them
            raise CaffeFormatError(f"{lp.type} cannot take bottoms of shapes "
                                   f"{bottom_shapes}: {e}", layer=lp.name) from e
        if len(shapes) != len(tops):
            raise CaffeFormatError(f"{lp.type} produces {len(shapes)} tops but the layer "
                                   f"names {len(tops)}", layer=lp.name)
        _check_counts(tops, shapes, lp.name)
        return shapes

    def _finish_build(self, available: set[str]) -> None:
        """After the last layer: in-place rights, frozen params, outputs, input blobs."""
        self._mark_overwritable()
        for info in self._learnable:
            info.param.requires_grad_(info.lr_mult != 0)
        self.outputs = sorted(available)
        for i, n in enumerate(self.layer_names):
            self._first_index.setdefault(n, i)
        for n in self.inputs:
            self.blobs[n] = torch.zeros(self.blob_shapes[n])

    def _input_shapes(self, module: CaffeLayer, tops: list[str]) -> list[Shape]:
        """The shapes of an input layer's tops (``Input``, or a data layer standing in for
        one): ``input_shapes`` given to the net first, then what the layer declares."""
        given = self.given_input_shapes
        if all(t in given for t in tops):
            return [tuple(int(d) for d in given[t]) for t in tops]
        try:
            declared = module.top_shapes([])
        except CaffeFormatError:
            if not given:
                raise
            missing = [t for t in tops if t not in given]
            raise CaffeFormatError(f"no shape for input(s) {missing}: add them to "
                                   f"input_shapes", layer=module.name) from None
        return [tuple(int(d) for d in given.get(t, s)) for t, s in zip(tops, declared)]

    def _mark_overwritable(self) -> None:
        """Let in-place layers (top == bottom, one bottom) overwrite their bottom's tensor
        when nothing else can see it: the blob was written by a layer (not fed as an input,
        which may be the caller's own tensor) and no other layer read it in between."""
        writer: dict[str, int] = {}
        readers: dict[str, list[int]] = {}
        for k, step in enumerate(self._steps):
            for b in step.bottoms:
                readers.setdefault(b, []).append(k)
            if (not step.is_input and len(step.bottoms) == 1 and step.in_place[:1] == [True]):
                b = step.bottoms[0]
                w = writer.get(b)
                seen = [r for r in readers.get(b, []) if w is not None and w < r < k]
                step.module.may_overwrite_bottom = (
                    w is not None and not self._steps[w].is_input and not seen)
            for t in step.tops:
                writer[t] = k

    def _make_layer(self, cls, lp, bottom_shapes, phase) -> CaffeLayer:
        try:
            return cls(lp, bottom_shapes, phase)
        except CaffeFormatError:
            raise
        except Exception as e:
            raise CaffeFormatError(f"cannot build {lp.type} for bottoms of shapes "
                                   f"{bottom_shapes}: {type(e).__name__}: {e}", layer=lp.name) from e

    def _set_loss_weights(self, lp, tops: list[str], module: CaffeLayer) -> None:
        weights = list(lp.loss_weight)
        if weights and len(weights) != len(tops):
            raise CaffeFormatError(f"loss_weight must be given once per top or not at all: "
                                   f"{len(weights)} for {len(tops)} tops", layer=lp.name)
        # a layer may opt out of the *Loss default (``loss_by_default = False``): Faster
        # R-CNN's SmoothL1Loss skips LossLayer's setup, so it is a loss only when told
        if not weights and _is_loss_type(lp.type) and tops and getattr(
                module, "loss_by_default", True):
            weights = [1.0] + [0.0] * (len(tops) - 1)
        for t, w in zip(tops, weights):
            if w != 0:
                self.loss_weights[t] = float(w)

    def _share_params(self, lp, module: CaffeLayer, owners) -> None:
        blobs = module.blobs
        if len(lp.param) > len(blobs):
            raise CaffeFormatError(f"{len(lp.param)} param specs for {len(blobs)} param blobs",
                                   layer=lp.name)
        for j, blob in enumerate(blobs):
            spec = lp.param[j] if j < len(lp.param) else None
            key = spec.name if spec is not None else ""
            shape = tuple(blob.shape)
            if key and key in owners:
                owner_layer, owner_idx, info, owner_shape = owners[key]
                strict = spec.share_mode == 0  # ParamSpec.STRICT
                if strict and owner_shape != shape:
                    raise CaffeFormatError(
                        f"cannot share param '{key}' owned by layer '{owner_layer}' (blob "
                        f"{owner_idx}): shape {shape} differs from the owner's {owner_shape} "
                        f"(share_mode STRICT)", layer=lp.name)
                if int(np.prod(shape)) != int(np.prod(owner_shape)):
                    raise CaffeFormatError(
                        f"cannot share param '{key}' owned by layer '{owner_layer}': "
                        f"{int(np.prod(shape))} elements vs the owner's "
                        f"{int(np.prod(owner_shape))} (share_mode PERMISSIVE)", layer=lp.name)
                module.set_blob(j, info.param, None if shape == owner_shape else shape)
                for field in ("lr_mult", "decay_mult"):
                    if spec.HasField(field):
                        value = float(getattr(spec, field))
                        if key in self._mult_seen[field]:
                            if getattr(info, field) != value:
                                raise CaffeFormatError(f"shared param '{key}' has mismatched "
                                                       f"{field}: {value} vs "
                                                       f"{getattr(info, field)}", layer=lp.name)
                        else:
                            self._mult_seen[field].add(key)
                            setattr(info, field, value)
                continue
            info = ParamSpecInfo(lp.name, j, blob,
                                 float(spec.lr_mult) if spec is not None else 1.0,
                                 float(spec.decay_mult) if spec is not None else 1.0, key)
            self._learnable.append(info)
            if key:
                owners[key] = (lp.name, j, info, shape)
                for field in ("lr_mult", "decay_mult"):
                    if spec.HasField(field):
                        self._mult_seen[field].add(key)

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
            import warnings

            warnings.warn(f"torch.compile failed ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}); running eagerly",
                          RuntimeWarning, stacklevel=3)
            self._compiled = False
            return self._run(inputs, wanted)

    def _feed(self, step: _Step, inputs: Mapping[str, Any], blobs: dict) -> None:
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

    def _call(self, step: _Step, bottoms: list[torch.Tensor], fused: bool
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
                bottoms = self._cast_bottoms(step.module.dtype_policy, bottoms)
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
            for name, value in blobs.items():
                if value.is_floating_point() and value.dtype != torch.float32:
                    blobs[name] = value.float()
        return blobs

    def _cast_bottoms(self, dtype_policy: str, bottoms: list[torch.Tensor]
                      ) -> list[torch.Tensor]:
        """Bottoms as a layer of this ``dtype_policy`` takes them under a reduced policy."""
        if dtype_policy == DTYPE_FLOAT32:
            return [b.float() if b.is_floating_point() and b.dtype != torch.float32 else b
                    for b in bottoms]
        if dtype_policy != DTYPE_REDUCED:
            return bottoms
        low, cl = self.policy.dtype, self.policy.channels_last
        out = []
        for b in bottoms:
            if b.is_floating_point() and b.dtype != low:
                b = b.to(low)
            if cl and b.dim() == 4 and not b.is_contiguous(memory_format=torch.channels_last):
                b = b.contiguous(memory_format=torch.channels_last)
            out.append(b)
        return out

    def _plan(self, wanted: tuple[str, ...] | None, free: bool, fuse: bool
              ) -> list[tuple[_Step, bool, tuple[str, ...]]]:
        """The steps to run: ``(step, fused with the ReLU after it, blobs to drop after it)``.

        A blob is dropped after its last reader unless it is an input (the caller's tensor),
        a net output, or asked for. With ``fuse``, a Convolution whose single top is
        rewritten by the in-place ReLU (slope 0) right after it runs ``forward_relu`` and the
        ReLU step is skipped. Cached per (wanted, free, fuse)."""
        key = (wanted, free, fuse)
        cache = self.__dict__.setdefault("_plans", {})
        if key in cache:
            return cache[key]
        keep = set(self.inputs) | set(self.outputs) | set(wanted or ())
        last: dict[str, int] = {}
        for k, step in enumerate(self._steps):
            for name in (*step.bottoms, *step.tops):
                last[name] = k
        plan, skip = [], set()
        for k, step in enumerate(self._steps):
            if k in skip:
                continue
            fused = fuse and self._fusable(k)
            if fused:
                skip.add(k + 1)
            reach = (k, k + 1) if fused else (k,)
            names = dict.fromkeys((*step.bottoms, *step.tops))
            release = tuple(n for n in names if free and n not in keep and last[n] in reach)
            plan.append((step, fused, release))
        cache[key] = plan
        return plan

    def _fusable(self, k: int) -> bool:
        step = self._steps[k]
        if not getattr(step.module, "fuses_relu", False) or len(step.tops) != 1 \
                or k + 1 >= len(self._steps):
            return False
        nxt = self._steps[k + 1]
        return (nxt.type == "ReLU" and nxt.bottoms == step.tops == nxt.tops
                and getattr(nxt.module, "negative_slope", None) == 0.0
                and nxt.module.may_overwrite_bottom)

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
        fp32_owned = {id(p) for s in self._steps if s.module.dtype_policy == DTYPE_FLOAT32
                      for p in s.module.parameters()}
        with torch.no_grad():
            for step in self._steps:
                if step.module.dtype_policy != DTYPE_REDUCED:
                    continue
                for p in step.module.parameters():
                    if id(p) in fp32_owned:
                        continue
                    fmt = (torch.channels_last if policy.channels_last and p.dim() == 4
                           else torch.contiguous_format)
                    p.data = p.data.to(policy.dtype).contiguous(memory_format=fmt)
        for step in self._steps:
            step.module.set_precision(policy)
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

    def steps_for(self, outputs: Iterable[str]) -> list[_Step]:
        """The steps (layers, in order) the blobs ``outputs`` depend on."""
        wanted = set(outputs)
        kept = []
        for step in reversed(self._steps):
            if wanted.intersection(step.tops):
                wanted.update(step.bottoms)
                kept.append(step)
        return kept[::-1]

    @contextlib.contextmanager
    def only_steps_for(self, outputs: Iterable[str]) -> Iterator[None]:
        """Run only :meth:`steps_for` ``outputs`` while inside (an export of part of a net:
        Caffe always runs every layer, so this is never the default). Run plans are rebuilt
        on entry and exit."""
        steps = self._steps
        self.__dict__.pop("_plans", None)
        self._steps = self.steps_for(outputs)
        try:
            yield
        finally:
            self._steps = steps
            self.__dict__.pop("_plans", None)

    def learnable_params(self) -> list[ParamSpecInfo]:
        """Params the solver updates, in Caffe's ``learnable_params_`` order; a param shared
        by ``ParamSpec.name`` appears once, under the layer that owns it."""
        return list(self._learnable)

    # ------------------------------------------------------------------ weights
    def weights(self) -> OrderedDict[str, list[np.ndarray]]:
        """Layer name -> param blobs as float32 arrays (for ``caffe_import.io.write_weights``)."""
        return OrderedDict((name, [b.detach().to("cpu", torch.float32).numpy().copy()
                                   for b in blobs]) for name, blobs in self.params.items())

    def _forks_hint(self, layer_type: str) -> str:
        """Where Caffe forks gave one layer type different layers (PSPNet's and SegNet's
        ``BN``) and no fork was named: which forks, and that naming one picks its layer."""
        from .proto.schema import FORKS, schema_of

        if schema_of(self.net_param).fork is not None:
            return ""
        forks = [f.name for f in FORKS.values() if layer_type in f.layers]
        if len(forks) < 2:
            return ""
        return (f"; type '{layer_type}' is a different layer in the Caffe forks "
                f"{', '.join(forks[:-1])} and {forks[-1]}, and the fields this layer sets did "
                f"not say whose it is: name the net's fork (fork=NAME, --fork NAME)")

    def load_weights(self, source: PathLike | Mapping[str, Sequence[Any]]) -> None:
        """Copy weights in by layer name, as Caffe's ``CopyTrainedLayersFrom``: layers of the
        file absent from the net are ignored, net layers absent from the file keep their
        values; the first net layer of a name is the target; blob counts must agree and
        shapes match (legacy 4-D shapes by ``match_blob_shape``)."""
        from .io.shapes import match_blob_shape

        path = None
        if isinstance(source, Mapping):
            mapping = source
        else:
            from .io import read_weights

            path = source
            mapping = read_weights(source)
        for lname, arrays in mapping.items():
            idx = self._first_index.get(lname)
            if idx is None:
                continue
            targets = self._steps[idx].module.blobs
            arrays = list(arrays)
            if len(arrays) != len(targets):
                raise CaffeFormatError(f"the weights hold {len(arrays)} param blob(s) but the "
                                       f"net's {self._steps[idx].type} layer has "
                                       f"{len(targets)} (shapes "
                                       f"{[tuple(t.shape) for t in targets]})"
                                       + self._forks_hint(self._steps[idx].type),
                                       layer=lname, path=path)
            for j, (arr, target) in enumerate(zip(arrays, targets)):
                if isinstance(arr, torch.Tensor):
                    arr = arr.detach().cpu().numpy()
                arr = np.asarray(arr, dtype=np.float32)
                arr = match_blob_shape(arr, tuple(target.shape), layer=lname, path=path, index=j)
                _copy_blob(arr, target)

    def save_weights(self, path: PathLike, h5: bool = False) -> None:
        """Write a caffemodel (binary, or Caffe's HDF5 layout with ``h5=True``), atomically."""
        from . import io as cio

        writer = cio.write_weights_h5 if h5 else cio.write_weights
        writer(path, self.net_param, self.weights())

    def extra_repr(self) -> str:
        return (f"name={self.net_param.name!r}, phase={self.phase!r}, "
                f"inputs={self.inputs}, outputs={self.outputs}")


def _copy_blob(arr: np.ndarray, target: torch.Tensor) -> None:
    """Copy a weights array into a param blob, holding at most one extra chunk in memory.

    Arrays from ``read_weights`` are views of the mapped file: they are copied chunk by chunk
    and their pages released behind the copy (see ``io.binary.copy_and_release``), so a net
    built from a 540 MB caffemodel peaks at one copy of the weights, not two."""
    from .io.binary import copy_and_release

    with torch.no_grad():
        if target.device.type == "cpu" and target.dtype == torch.float32 and target.is_contiguous():
            copy_and_release(np.asarray(arr, dtype=np.float32), target.detach().numpy())
        else:
            target.copy_(torch.from_numpy(np.array(arr, dtype=np.float32, order="C")))
