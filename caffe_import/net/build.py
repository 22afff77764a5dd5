"""Building a net's layers the way Caffe's ``Net::Init`` does (``src/caffe/net.cpp``).

* blobs are named; a top equal to the bottom at the same index is computed in place (later
  readers see the new value), any other reuse of a name is an error;
* a blob read by several layers is simply reused: Caffe's automatic ``Split`` layers are not
  needed (autograd sums the gradients as Split's backward does);
* tops of ``Input`` layers - and of data layers, unless the net is built to read data
  (``data=``: ``caffe_import.layers.data_read``) - are the net's inputs; blobs produced and never consumed are its outputs (sorted by name, as Caffe's
  ``std::set`` yields them);
* ``loss_weight`` per top (``*Loss`` types: 1 for the first top unless given, others 0);
* params shared by ``ParamSpec.name`` are one ``nn.Parameter`` (STRICT: same shape,
  PERMISSIVE: same count); ``lr_mult: 0`` params do not require grad (Caffe skips their diff).

:class:`NetBuilder` does this once per ``CaffeNet``; what it leaves (the :class:`Step` list,
blob shapes, inputs, outputs, loss weights, learnable params) is the net's layout.
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from torch import nn

from ..errors import CaffeFormatError
from ..io import read_weights
from ..io.textscan import problems_error
from ..layers import registry
from ..layers.base import CaffeLayer, Shape
from ..layers.data import READERS, DataInput
from ..layers.data_read import DataReading
from ..layers.python_layer import DEFAULT_PYTHON_LAYERS, PythonLayer, PythonLayerRegistry
from ..proto.schema import schema_of
from .plan import Step, mark_overwritable
from .state import PHASE_NAMES, PHASES

AUTO_TOP = "(automatic)"
_INT_MAX = 2 ** 31 - 1


@dataclass
class ParamSpecInfo:
    """A learnable param as Caffe's solver sees it (``Net::learnable_params()``)."""

    layer: str
    index: int
    param: nn.Parameter
    lr_mult: float = 1.0
    decay_mult: float = 1.0
    name: str = ""  # ParamSpec.name ("" when not shared)


def is_loss_type(type_name: str) -> bool:
    """Caffe's rule for a default loss weight: the type name ends in ``Loss``."""
    return type_name.endswith("Loss")


def check_counts(tops: Sequence[str], shapes: Sequence[Shape], layer: str) -> None:
    """Caffe's ``Blob::Reshape`` refuses blobs of more than INT_MAX values (or a negative
    dimension); so does the net, before any memory is asked for them."""
    for top, shape in zip(tops, shapes):
        count = int(np.prod([int(d) for d in shape], dtype=object))
        if count > _INT_MAX or any(int(d) < 0 for d in shape):
            raise CaffeFormatError(f"top '{top}' would have shape {tuple(shape)}: more than "
                                   f"INT_MAX ({_INT_MAX}) values or a negative dimension, which "
                                   f"Caffe's Blob refuses", layer=layer)


def with_auto_top(lp: Any, auto_count: int) -> tuple[Any, int]:
    """Caffe's AutoTopBlobs: a loss layer without tops gets an anonymous one (a copy of the
    LayerParameter names it); other layers are returned as they are."""
    if not (is_loss_type(lp.type) and not len(lp.top)):
        return lp, auto_count
    param = type(lp)()
    param.CopyFrom(lp)
    param.top.append(AUTO_TOP if not auto_count else f"{AUTO_TOP}_{auto_count}")
    return param, auto_count + 1


class NetBuilder:
    """Instantiates the layers of a filtered NetParameter in order and wires them.

    ``python_layers``: where ``type: "Python"`` layers find their class (by default the
    registry ``register_python_layer`` fills; pycaffe's ``Net`` passes its own).

    ``data``: data layers that can read (those with an ``open_source()`` method, such as
    ``HDF5Data``) open their sources while the net is built, so a missing file is an error
    now, and read a batch each forward; otherwise they are net inputs."""

    def __init__(self, net_param: Any, phase: str,
                 given_input_shapes: Mapping[str, Shape] | None = None,
                 python_layers: PythonLayerRegistry | None = None,
                 weights: Any = None, data: DataReading | None = None) -> None:
        self.net_param = net_param
        self.data = data  # None: data layers are net inputs; else they read (data_read)
        self.weights = weights  # the net's weights (path or mapping): they may pick a class
        self._blob_counts: dict[str, int] | None = None
        self.phase = phase
        self.given_input_shapes = dict(given_input_shapes or {})
        self.python_layers = python_layers if python_layers is not None \
            else DEFAULT_PYTHON_LAYERS
        self.blob_shapes: OrderedDict[str, Shape] = OrderedDict()
        self.steps: list[Step] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.layer_names: list[str] = []
        self.layer_types: list[str] = []
        self.loss_weights: OrderedDict[str, float] = OrderedDict()
        self.learnable: list[ParamSpecInfo] = []
        self.first_index: dict[str, int] = {}
        self._mult_seen: dict[str, set[str]] = {"lr_mult": set(), "decay_mult": set()}

    def resolve_classes(self, unknown_fields: Sequence[Any] = (),
                        source_path: Any = None) -> list[type[CaffeLayer]]:
        """Every layer's class, or one error listing all layers whose type is unavailable
        (with the fields the file set that the schema does not know)."""
        classes, missing = [], []
        fork = schema_of(self.net_param).fork
        for lp in self.net_param.layer:
            cls = registry.get(lp.type, fork=fork)
            resolve = getattr(cls, "resolve", None)
            if cls is PythonLayer:
                resolve = self.python_layers.resolve
            elif registry.is_chooser(cls):  # forks' classes for one type: fields, then weights
                resolve = functools.partial(cls.resolve, blob_count=self._weight_blob_count)
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
        if missing or unknown_fields:
            raise problems_error(unknown_fields, missing, schema_of(self.net_param),
                                 path=source_path, known_types=registry.known_types())
        return classes

    def _weight_blob_count(self, layer: str) -> int | None:
        """How many blobs the net's weights hold for ``layer`` (None: no weights, or none
        for it); the weights are read once, when a layer's class first needs it."""
        if self.weights is None:
            return None
        if self._blob_counts is None:
            source = self.weights if isinstance(self.weights, Mapping) \
                else read_weights(self.weights)
            self._blob_counts = {name: len(list(blobs)) for name, blobs in source.items()}
        return self._blob_counts.get(layer)

    def build(self, unknown_fields: Sequence[Any] = (), source_path: Any = None) -> "NetBuilder":
        """Instantiate every layer (see the module doc); returns the builder that did.

        Where no fork is named and the net's shapes do not fit BVLC's layers, a fork that
        gives a BVLC type its own rule is tried (the YOLO ports' Pooling, whose extra output
        cell darknet's size-2 stride-1 max pooling needs before a Concat): the net is built
        with the first such fork's classes for those types that fits, else BVLC's error is
        raised."""
        classes = self.resolve_classes(unknown_fields, source_path)
        try:
            return self._build_with(classes)
        except CaffeFormatError as error:
            if schema_of(self.net_param).fork is not None:
                raise
            forks = registry.variant_forks({lp.type for lp in self.net_param.layer})
            for fork in forks:
                retry = NetBuilder(self.net_param, self.phase, self.given_input_shapes,
                                   self.python_layers, self.weights, self.data)
                variants = [registry.variant(lp.type, fork) or cls
                            for lp, cls in zip(self.net_param.layer, classes)]
                try:
                    return retry._build_with(variants)
                except CaffeFormatError:
                    continue
            raise

    def _build_with(self, classes: Sequence[type[CaffeLayer]]) -> "NetBuilder":
        """Instantiate every layer with its class; returns the builder."""
        net_phase = PHASES[self.phase]
        available: set[str] = set()
        owners: dict[str, tuple[str, int, ParamSpecInfo, Shape]] = {}
        auto_count = 0
        for lp, cls in zip(self.net_param.layer, classes):
            if not lp.HasField("phase"):
                lp.phase = net_phase
            bottoms = self._checked_bottoms(lp)
            available.difference_update(bottoms)
            build_param, auto_count = with_auto_top(lp, auto_count)
            tops = list(build_param.top)
            in_place = self._in_place_flags(lp.name, bottoms, tops)
            bottom_shapes = [self.blob_shapes[b] for b in bottoms]
            if self.data is not None and cls is DataInput and lp.type in READERS:
                cls = functools.partial(READERS[lp.type], reading=self.data)
            module = _make_layer(cls, build_param, bottom_shapes, PHASE_NAMES[lp.phase])
            if self.data is not None and hasattr(module, "open_source"):
                module.open_source(self.data)  # a layer that reads: its files are checked now
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
            self.steps.append(Step(lp.name, lp.type, module, tuple(bottoms), tuple(tops),
                                   tuple(in_place), is_input))
            self.layer_names.append(lp.name)
            self.layer_types.append(lp.type)
        self._finish(available)
        return self

    def _checked_bottoms(self, lp: Any) -> list[str]:
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

    def _top_shapes_of(self, module: CaffeLayer, lp: Any, bottom_shapes: list[Shape],
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
        check_counts(tops, shapes, lp.name)
        return shapes

    def _finish(self, available: set[str]) -> None:
        """After the last layer: in-place rights, frozen params, outputs, first layer names."""
        mark_overwritable(self.steps)
        for info in self.learnable:
            info.param.requires_grad_(info.lr_mult != 0)
        self.outputs = sorted(available)
        for i, n in enumerate(self.layer_names):
            self.first_index.setdefault(n, i)

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

    def _set_loss_weights(self, lp: Any, tops: list[str], module: CaffeLayer) -> None:
        weights = list(lp.loss_weight)
        if weights and len(weights) != len(tops):
            raise CaffeFormatError(f"loss_weight must be given once per top or not at all: "
                                   f"{len(weights)} for {len(tops)} tops", layer=lp.name)
        # a layer may opt out of the *Loss default (``loss_by_default = False``): Faster
        # R-CNN's SmoothL1Loss skips LossLayer's setup, so it is a loss only when told
        if not weights and is_loss_type(lp.type) and tops and getattr(
                module, "loss_by_default", True):
            weights = [1.0] + [0.0] * (len(tops) - 1)
        for t, w in zip(tops, weights):
            if w != 0:
                self.loss_weights[t] = float(w)

    def _share_params(self, lp: Any, module: CaffeLayer, owners: dict) -> None:
        """Caffe's ``AppendParam``: a named param seen before becomes the owner's parameter;
        any other param is a new learnable one."""
        blobs = module.blobs
        if len(lp.param) > len(blobs):
            raise CaffeFormatError(f"{len(lp.param)} param specs for {len(blobs)} param blobs",
                                   layer=lp.name)
        for j, blob in enumerate(blobs):
            spec = lp.param[j] if j < len(lp.param) else None
            key = spec.name if spec is not None else ""
            if key and key in owners:
                self._share_one(lp, module, j, spec, owners[key])
                continue
            info = ParamSpecInfo(lp.name, j, blob,
                                 float(spec.lr_mult) if spec is not None else 1.0,
                                 float(spec.decay_mult) if spec is not None else 1.0, key)
            self.learnable.append(info)
            if key:
                owners[key] = (lp.name, j, info, tuple(blob.shape))
                for field in ("lr_mult", "decay_mult"):
                    if spec.HasField(field):
                        self._mult_seen[field].add(key)

    def _share_one(self, lp: Any, module: CaffeLayer, j: int, spec: Any, owner: tuple) -> None:
        """Blob ``j`` of ``module`` becomes the owner's param (shapes checked by share_mode);
        the ``lr_mult``/``decay_mult`` it sets must agree with the owner's."""
        key, shape = spec.name, tuple(module.blobs[j].shape)
        owner_layer, owner_idx, info, owner_shape = owner
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
            if not spec.HasField(field):
                continue
            value = float(getattr(spec, field))
            if key in self._mult_seen[field]:
                if getattr(info, field) != value:
                    raise CaffeFormatError(f"shared param '{key}' has mismatched "
                                           f"{field}: {value} vs "
                                           f"{getattr(info, field)}", layer=lp.name)
            else:
                self._mult_seen[field].add(key)
                setattr(info, field, value)


def _make_layer(cls: type[CaffeLayer], lp: Any, bottom_shapes: list[Shape],
                phase: str) -> CaffeLayer:
    try:
        return cls(lp, bottom_shapes, phase)
    except CaffeFormatError:
        raise
    except Exception as e:
        raise CaffeFormatError(f"cannot build {lp.type} for bottoms of shapes "
                               f"{bottom_shapes}: {type(e).__name__}: {e}", layer=lp.name) from e
