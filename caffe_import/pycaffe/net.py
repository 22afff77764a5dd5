"""pycaffe's ``caffe.Net`` over :class:`caffe_import.net.CaffeNet`.

The ``CaffeNet`` builds the layers exactly as Caffe's ``Net::Init`` does; this class adds
Caffe's storage model on top: every blob exists from construction with its shape, holds its
data and diff in buffers that forward and backward fill in place (``blob.py``), and layers run
one by one so ``forward(start=, end=)`` and ``backward(start=, end=)`` can start and stop at
any layer, reading the other blobs from their buffers, as Caffe's ``ForwardFromTo`` does.

Gradients: in phase TRAIN, or with ``force_backward: true``, forward records the autograd graph
and ``backward`` seeds it with the diffs of the blobs no later layer reads (the outputs; loss
blobs hold their ``loss_weight`` in their diff from construction, as Caffe's
``SetLossWeights`` does). Param diffs accumulate across backward calls (the solver clears
them, as Caffe's ``ClearParamDiffs``); blob diffs are overwritten, each holding the gradient
with respect to the blob as its first writer produced it (Caffe's in-place layers share the
diff). A TEST net without ``force_backward`` records nothing, and ``backward`` leaves its
diffs alone, as Caffe skips layers that need no backward.
"""
from __future__ import annotations

import contextlib
import difflib
import os
from collections import OrderedDict
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..compat import add_note
from ..errors import CaffeFormatError
from ..net import CaffeNet
from ..proto.schema import Schema
from . import mode
from .blob import DEVICE, Blob, BlobVec, Memory, ParamBlob
from .python_layer import ImportingPythonLayers, PythonLayerAdapter, PythonLayerSetupError

_SHOWN_LAYERS = 8  # layer names an unknown-layer error lists

TRAIN, TEST = 0, 1


class LayerView:
    """``net.layers[i]`` for a built-in layer: ``.type``, ``.blobs`` (its param blobs),
    ``.name``; ``.module`` is the torch module computing it."""

    def __init__(self, name: str, type_name: str, module, blobs: BlobVec) -> None:
        self.name = name
        self.type = type_name
        self.module = module
        self.blobs = blobs

    def __repr__(self) -> str:
        return f"<Layer {self.name!r} ({self.type})>"


@dataclass
class _Entry:
    """One layer as pycaffe lists it: a ``CaffeNet`` step with Caffe's split-renamed bottoms,
    or a ``Split`` layer Caffe inserts (``InsertSplits``) where a blob has several readers."""

    name: str
    type: str
    module: Any
    bottoms: list[str]
    tops: list[str]
    in_place: list[bool]
    is_input: bool = False
    is_split: bool = False


class _SplitModule(torch.nn.Module):
    """Stands for Caffe's Split layer: no params; the net aliases the blob per reader."""

    blobs: list = []


def _caffe_entries(steps, net_param) -> list[_Entry]:
    """Caffe's ``InsertSplits``: a top read by more than one bottom (a loss weight counts as a
    reader) gets a Split layer ``<blob>_<layer>_<top index>_split`` right after its producer,
    with tops ``..._split_<k>``, one per reader in order; readers' bottoms are renamed."""
    last_top: dict[str, tuple[int, int]] = {}
    source: dict[tuple[int, int], tuple[int, int]] = {}
    count: dict[tuple[int, int], int] = {}
    for i, step in enumerate(steps):
        for j, b in enumerate(step.bottoms):
            src = last_top[b]
            source[(i, j)] = src
            count[src] = count.get(src, 0) + 1
        for j, t in enumerate(step.tops):
            last_top[t] = (i, j)
        weights = list(net_param.layer[i].loss_weight)
        for j in range(len(step.tops)):
            if j < len(weights) and weights[j] != 0:
                count[(i, j)] = count.get((i, j), 0) + 1
    entries, used = [], {}
    for i, step in enumerate(steps):
        bottoms = []
        for j, b in enumerate(step.bottoms):
            src = source[(i, j)]
            if count[src] > 1:
                k = used.get(src, 0)
                used[src] = k + 1
                bottoms.append(f"{b}_{steps[src[0]].name}_{src[1]}_split_{k}")
            else:
                bottoms.append(b)
        in_place = [j < len(bottoms) and bottoms[j] == t for j, t in enumerate(step.tops)]
        entries.append(_Entry(step.name, step.type, step.module, bottoms, list(step.tops), in_place,
                           step.is_input))
        for j, t in enumerate(step.tops):
            n = count.get((i, j), 0)
            if n > 1:
                entries.append(_Entry(f"{t}_{step.name}_{j}_split", "Split", _SplitModule(), [t],
                                   [f"{t}_{step.name}_{j}_split_{k}" for k in range(n)],
                                   [False] * n, is_split=True))
    return entries


def _check_file(path: Any, what: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} '{path}' not found (Caffe: Could not open file)")
    return path


def _parse_args(args: Sequence[Any], kwargs: dict) -> tuple[Any, int, str | None, int, tuple]:
    """``Net(file, phase, level=0, stages=None, weights=None)`` or the old
    ``Net(file, weights, phase)``."""
    kw = dict(kwargs)
    names = ["network_file", "phase", "level", "stages", "weights"]
    args = list(args)
    if len(args) >= 2 and isinstance(args[1], (str, os.PathLike)):  # Net(file, weights, phase)
        if len(args) != 3 or kw:
            raise TypeError("the old form is Net(network_file, weights_file, phase)")
        return args[0], args[2], os.fspath(args[1]), 0, ()
    if len(args) > len(names):
        raise TypeError(f"Net takes at most {len(names)} arguments")
    for name, value in zip(names, args):
        if name in kw:
            raise TypeError(f"Net got two values for '{name}'")
        kw[name] = value
    unknown = set(kw) - set(names)
    if unknown:
        raise TypeError(f"Net got unexpected arguments {sorted(unknown)}")
    if "network_file" not in kw or "phase" not in kw:
        raise TypeError("Net needs network_file and phase (caffe.TRAIN or caffe.TEST)")
    stages = tuple(kw.get("stages") or ())
    weights = kw.get("weights")
    return kw["network_file"], kw["phase"], (None if weights is None else os.fspath(weights)), \
        int(kw.get("level", 0)), stages


class Net:
    """``caffe.Net(network_file, phase, level=0, stages=None, weights=None)`` (or the old
    ``caffe.Net(network_file, weights, phase)``): see the module docstring.

    ``schema``: the Caffe fork schema the net is read with (None: chosen by the file's
    content); a keyword here (not pycaffe's), or the class attribute of the subclass that
    ``caffe-import run --fork NAME`` gives its script
    (:func:`caffe_import.pycaffe.bound.caffe_modules`)."""

    schema: Schema | None = None
    #: how the data layers (Data, ImageData, WindowData, HDF5Data) read their sources, as in
    #: Caffe (``CaffeNet(data=...)``: True, or a ``DataReading`` with a seed)
    read_data: Any = True

    def __init__(self, *args: Any, schema: Schema | None = None, **kwargs: Any) -> None:
        if schema is not None:
            self.schema = schema
        source, phase, weights, level, stages = _parse_args(args, kwargs)
        if isinstance(source, (str, os.PathLike)):
            source = _check_file(source, "network file")
        if weights is not None:
            _check_file(weights, "weights file")
        if phase not in (TRAIN, TEST):
            raise ValueError(f"phase must be caffe.TRAIN (0) or caffe.TEST (1), got {phase!r}")
        try:
            self._net = CaffeNet(source, weights, phase=phase, stages=stages, level=level,
                                 keep_blobs=True, python_layers=ImportingPythonLayers(),
                                 schema=self.schema,  # weights given: they may pick fork layers
                                 data=self.read_data)
        except PythonLayerSetupError as exc:  # the user's own exception, as pycaffe raises it
            cause = exc.__cause__
            cause.__suppress_context__ = True
            raise cause
        self._phase = phase
        self._live: dict[str, torch.Tensor] = {}
        self._first: dict[str, torch.Tensor] = {}
        self._from_buffers = False  # the recorded pass is backward's own, not a forward's
        self._build_views()
        self._place(mode.current_device())

    # ------------------------------------------------------------------ construction
    def _build_views(self) -> None:
        net = self._net
        self._entries = _caffe_entries(net.steps, net.net_param)
        self._blob_map: OrderedDict[str, Blob] = OrderedDict()
        for entry in self._entries:
            for t in entry.tops:
                if t in self._blob_map:
                    continue
                if entry.is_split:  # Split shares its bottom's data, has its own diff
                    src = self._blob_map[entry.bottoms[0]]
                    blob = Blob(src._data_memory, Memory(torch.zeros(src.shape)), t)
                else:
                    blob = Blob.zeros(net.blob_shapes[t], t)
                blob._on_reshape = self._blob_reshaped
                self._blob_map[t] = blob
        for name, w in net.loss_weights.items():  # Caffe's SetLossWeights
            self._blob_map[name].diff[...] = w
        self._layers: list[Any] = []
        self._param_blobs: list[ParamBlob] = []
        for step in self._entries:
            module = step.module
            if isinstance(module, PythonLayerAdapter):
                self._layers.append(module.user)
                self._param_blobs.extend(module.param_blobs)
                continue
            blobs = BlobVec(ParamBlob(module, i, step.name) for i in range(len(module.blobs)))
            self._param_blobs.extend(blobs)
            self._layers.append(LayerView(step.name, step.type, module, blobs))
        self._device = torch.device("cpu")

    def _blob_reshaped(self, blob: Blob, shape: tuple[int, ...]) -> None:
        pass  # the next forward (or reshape()) re-derives every later shape, as Caffe does

    def _place(self, device: torch.device) -> None:
        """Move params and blobs to ``device`` (the mode changed since the last run)."""
        if device == self._device:
            return
        self._net.to(device)
        for blob in self._blob_map.values():
            for mem in (blob._data_memory, blob._diff_memory):
                mem.rebind(mem.tensor().to(device))
        self._live, self._first = {}, {}
        self._device = device

    def _prepare(self) -> None:
        self._place(mode.current_device())
        for pb in self._param_blobs:  # host writes to params reach the device
            for mem in pb.memories():
                mem.tensor()

    def _device_changed_params(self) -> None:
        if self._device.type != "cpu":
            for pb in self._param_blobs:
                for mem in pb.memories():
                    mem.head = DEVICE

    # ------------------------------------------------------------------ pycaffe surface
    @property
    def blobs(self) -> OrderedDict[str, Blob]:
        """Every blob, in Caffe's order (inputs first), complete from construction."""
        return self._blob_map

    @property
    def params(self) -> OrderedDict[str, BlobVec]:
        """Layer name -> its param blobs, for layers that have any."""
        return OrderedDict((self._layer_names[i], layer.blobs)
                           for i, layer in enumerate(self._layers) if len(layer.blobs))

    @property
    def layers(self) -> list[Any]:
        return list(self._layers)

    @property
    def layer_dict(self) -> OrderedDict[str, Any]:
        return OrderedDict(zip(self._layer_names, self._layers))

    @property
    def _layer_names(self) -> list[str]:
        return [s.name for s in self._entries]

    @property
    def _blob_names(self) -> list[str]:
        return list(self._blob_map)

    @property
    def _blobs(self) -> list[Blob]:
        """The blobs as a list, in ``_blob_names`` order (pycaffe's ``net._blobs``)."""
        return list(self._blob_map.values())

    @property
    def inputs(self) -> list[str]:
        return list(self._net.inputs)

    @property
    def outputs(self) -> list[str]:
        return list(self._net.outputs)

    @property
    def _inputs(self) -> list[int]:
        return [self._blob_names.index(n) for n in self.inputs]

    @property
    def _outputs(self) -> list[int]:
        return [self._blob_names.index(n) for n in self.outputs]

    @property
    def top_names(self) -> OrderedDict[str, list[str]]:
        return OrderedDict((s.name, list(s.tops)) for s in self._entries)

    @property
    def bottom_names(self) -> OrderedDict[str, list[str]]:
        return OrderedDict((s.name, list(s.bottoms)) for s in self._entries)

    @property
    def blob_loss_weights(self) -> OrderedDict[str, float]:
        lw = self._net.loss_weights
        return OrderedDict((n, float(lw.get(n, 0.0))) for n in self._blob_map)

    @property
    def _blob_loss_weights(self) -> list[float]:
        return list(self.blob_loss_weights.values())

    @property
    def caffe_net(self) -> CaffeNet:
        """The underlying ``CaffeNet`` (a ``torch.nn.Module``)."""
        return self._net

    @contextlib.contextmanager
    def params_on_device(self) -> Iterator[CaffeNet]:
        """Not pycaffe's: ``with net.params_on_device() as caffe_net:`` gives the
        ``CaffeNet`` whose parameters hold every write made through the param blobs (moved
        to the current device), and what the block writes to those parameters (a broadcast,
        a load) is what the param blobs read afterwards."""
        self._prepare()
        yield self._net
        self._device_changed_params()

    def _layer_index(self, name: str, what: str) -> int:
        """The index of layer ``name`` (``what``: the call and argument, ``"forward(end"``),
        else one ValueError naming the call, the closest layer
        name and the first few (Caffe's pycaffe fails in ``list.index``)."""
        names = list(self._layer_names)
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            shown = ", ".join(names[:_SHOWN_LAYERS]) + (
                f", ... ({len(names)} in all: net._layer_names)"
                if len(names) > _SHOWN_LAYERS else "")
            raise ValueError(f"{what}={name!r}): no layer named {name!r}{hint} (layers: {shown})")
        return names.index(name)

    def _graph_enabled(self) -> bool:
        return self._phase == TRAIN or bool(self._net.net_param.force_backward)

    # ------------------------------------------------------------------ running
    def _forward(self, start: int, end: int) -> float:
        """Caffe's ``ForwardFromTo(start, end)``; returns the loss of the layers run."""
        self._prepare()
        graph = self._graph_enabled()
        if start == 0 or self._from_buffers:
            self._live, self._first = {}, {}
        self._from_buffers = False
        force = bool(self._net.net_param.force_backward)
        self._fresh: set[str] = set()
        with torch.set_grad_enabled(graph):
            for k in range(start, end + 1):
                self._forward_step(self._entries[k], graph, force)
        loss = 0.0
        for k in range(start, end + 1):
            for t in self._entries[k].tops:
                w = self._net.loss_weights.get(t)
                if w:
                    loss += w * float(self._blob_map[t].data.sum(dtype=np.float64))
        return loss

    def _forward_step(self, step, graph: bool, force: bool) -> None:
        blobs, live = self._blob_map, self._live
        if step.is_split:
            src = step.bottoms[0]
            for t in step.tops:
                if blobs[t]._diff_memory.shape != blobs[src].shape:
                    blobs[t]._diff_memory.reshape(blobs[src].shape)
                if graph and src in self._fresh:  # one alias per reader: its own gradient
                    live[t] = self._first[t] = live[src].view_as(live[src])
                    self._fresh.add(t)
            return
        if step.is_input:
            for t in step.tops:
                leaf = blobs[t]._data_memory.tensor()
                if graph:
                    leaf = leaf.detach().requires_grad_(force)
                    live[t] = self._first[t] = leaf
                    self._fresh.add(t)
            return
        if graph:
            ins = [self._graph_input(b) for b in step.bottoms]
        else:
            ins = [blobs[b]._data_memory.tensor() for b in step.bottoms]
        module = step.module
        try:
            if isinstance(module, PythonLayerAdapter):
                outs = module.run_forward([blobs[b] for b in step.bottoms],
                                          [blobs[t] for t in step.tops], ins if graph else None)
            else:
                outs = module(*ins)
        except CaffeFormatError:
            raise
        except Exception as e:
            add_note(e, f"in Caffe layer '{step.name}' (type {step.type}), bottoms "
                       f"{[tuple(t.shape) for t in ins]}")
            raise
        for name, value, in_place in zip(step.tops, outs, step.in_place):
            blob = blobs[name]
            blob._data_memory.write(value)
            if blob._diff_memory.shape != blob._data_memory.shape:
                blob._diff_memory.reshape(blob._data_memory.shape)
            if graph:
                if force and not value.requires_grad:  # a data layer's top: Caffe's
                    value = value.detach().requires_grad_()  # force_backward gives it a diff
                live[name] = value
                self._fresh.add(name)
                if not in_place:
                    self._first[name] = value

    def _graph_input(self, name: str) -> torch.Tensor:
        """A bottom when gradients are recorded. Computed in this pass: its autograd tensor.
        Left by an earlier pass (``forward(start=...)``): the blob's buffer, which the user may
        have changed, as its value, still connected to the earlier graph for backward."""
        live = self._live.get(name)
        if name in self._fresh:
            return live
        buf = self._blob_map[name]._data_memory.tensor().detach()
        if live is None or not live.requires_grad or live.shape != buf.shape:
            return buf
        return buf + (live - live.detach())

    def _backward(self, start: int, end: int) -> None:
        """Caffe's ``BackwardFromTo(start, end)`` (start >= end) through autograd."""
        if not self._graph_enabled():
            return  # Caffe: no layer of a TEST net without force_backward needs backward
        self._prepare()
        if not self._live or self._from_buffers:  # no forward since: read the buffers again
            self._record_from_buffers(end, start)
        steps = self._entries[end:start + 1]
        seeds, seed_grads, touched = self._seeds(steps)
        if not seeds:
            return
        params, blob_names = self._grad_targets(steps, touched, seeds)
        inputs = [p for p in params] + [self._first[n] for n in blob_names]
        if not inputs:
            return
        grads = torch.autograd.grad(seeds, inputs, seed_grads, retain_graph=True,
                                    allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, grads[:len(params)]):
                if g is not None:
                    if p.grad is None or p.grad.shape != p.shape:
                        p.grad = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    p.grad.add_(g)
            for n, g in zip(blob_names, grads[len(params):]):
                if g is not None:
                    self._blob_map[n]._diff_memory.write(g)
        self._device_changed_params()

    def _record_from_buffers(self, first: int, last: int) -> None:
        """Caffe's ``Backward`` reads the blobs as they are, with or without a forward: with no
        recorded pass, record layers ``first..last`` from the current buffers, then put the
        tops' data back. Exact for layers whose gradient reads only bottoms, params and top
        diffs (Convolution, InnerProduct, ReLU, Python layers, which see the net's blobs); one
        that reads its own top or its last forward's state (Softmax, Sigmoid, MAX pooling's
        argmax) gets them recomputed from the bottoms, where Caffe reads stale buffers."""
        steps = self._entries[first:last + 1]
        force = bool(self._net.net_param.force_backward)
        need = self._need_backward(first, force)
        self._live, self._first, self._fresh = {}, {}, set()
        self._from_buffers = True
        made: set[str] = set()
        for step in steps:
            for b in step.bottoms:
                if b not in made and b not in self._live:  # read from before the range
                    leaf = self._blob_map[b]._data_memory.tensor().detach().clone()
                    self._live[b] = self._first[b] = leaf.requires_grad_(need.get(b, False))
                    self._fresh.add(b)
            made.update(step.tops)
        saved = {t: self._blob_map[t]._data_memory.tensor().clone() for t in made}
        with torch.enable_grad():
            for step in steps:
                self._forward_step(step, True, force)
        for t, value in saved.items():
            self._blob_map[t]._data_memory.write(value)

    def _need_backward(self, first: int, force: bool) -> dict[str, bool]:
        """Caffe's ``blob_need_backward_`` for the blobs layers before ``first`` write: made
        by a layer with learnable params or from a blob that needs it (every blob with
        ``force_backward``)."""
        need: dict[str, bool] = {}
        for step in self._entries[:first]:
            learns = any(p.requires_grad for p in step.module.parameters()) if isinstance(
                step.module, torch.nn.Module) else False
            value = force or learns or any(need.get(b, False) for b in step.bottoms)
            for t in step.tops:
                need[t] = value
        return need

    def _seeds(self, steps) -> tuple[list[torch.Tensor], list[torch.Tensor], set[str]]:
        """Blobs written in the range that no later layer of the range reads, with their
        diffs: where Caffe's backward starts."""
        last_write: dict[str, int] = {}
        reads: dict[str, list[int]] = {}
        touched: set[str] = set()
        for k, step in enumerate(steps):
            for b in step.bottoms:
                reads.setdefault(b, []).append(k)
                touched.add(b)
            for t in step.tops:
                last_write[t] = k
                touched.add(t)
        seeds, grads = [], []
        for name, k in last_write.items():
            if any(r > k for r in reads.get(name, [])):
                continue
            t = self._live.get(name)
            if t is None or not t.requires_grad:
                continue
            seeds.append(t)
            grads.append(self._blob_map[name]._diff_memory.tensor().reshape(t.shape).to(t.dtype))
        return seeds, grads, touched

    def _grad_targets(self, steps, touched: set[str], seeds) -> tuple[list, list[str]]:
        seen, params = set(), []
        for step in steps:
            for p in step.module.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        seed_ids = {id(s) for s in seeds}
        names = [n for n in self._blob_map if n in touched and n in self._first
                 and self._first[n].requires_grad and id(self._first[n]) not in seed_ids]
        return params, names

    # ------------------------------------------------------------------ pycaffe methods
    def forward(self, blobs: Sequence[str] | None = None, start: str | None = None,
                end: str | None = None, **kwargs: Any) -> dict[str, np.ndarray]:
        """Run layers ``start``..``end`` (names; default all); ``kwargs`` set the input blobs
        first (all inputs, batch-sized). Returns ``{blob: data}`` for the outputs (or the
        tops of ``end``) and ``blobs``; the arrays are the blobs' own buffers."""
        blobs = list(blobs or [])
        start_ind = self._layer_index(start, "forward(start") if start is not None else 0
        if end is not None:
            end_ind = self._layer_index(end, "forward(end")
            outputs = set(self.top_names[end] + blobs)
        else:
            end_ind = len(self._entries) - 1
            outputs = set(self.outputs + blobs)
        if kwargs:
            if set(kwargs) != set(self.inputs):
                raise ValueError(f"Input blob arguments do not match net inputs: given "
                                 f"{sorted(kwargs)}, inputs {self.inputs}")
            for name, value in kwargs.items():
                value = np.asarray(value)
                if value.shape[0] != self._blob_map[name].shape[0]:
                    raise ValueError(f"Input is not batch sized: '{name}' has "
                                     f"{value.shape[0]}, the blob {self._blob_map[name].shape[0]}")
                self._blob_map[name].data[...] = value
        self._check_names(outputs, "forward blobs")
        self._forward(start_ind, end_ind)
        return {name: self._blob_map[name].data for name in outputs}

    def backward(self, diffs: Sequence[str] | None = None, start: str | None = None,
                 end: str | None = None, **kwargs: Any) -> dict[str, np.ndarray]:
        """Back-propagate from layer ``start`` down to ``end`` (names; default all);
        ``kwargs`` set the output blobs' diffs first. Returns ``{blob: diff}`` for the inputs
        (or the bottoms of ``end``) and ``diffs``."""
        diffs = list(diffs or [])
        start_ind = (self._layer_index(start, "backward(start") if start is not None
                     else len(self._entries) - 1)
        if end is not None:
            end_ind = self._layer_index(end, "backward(end")
            outputs = set(self.bottom_names[end] + diffs)
        else:
            end_ind = 0
            outputs = set(self.inputs + diffs)
        if kwargs:
            if set(kwargs) != set(self.outputs):
                raise ValueError(f"Top diff arguments do not match net outputs: given "
                                 f"{sorted(kwargs)}, outputs {self.outputs}")
            for name, value in kwargs.items():
                value = np.asarray(value)
                if value.shape[0] != self._blob_map[name].shape[0]:
                    raise ValueError(f"Diff is not batch sized: '{name}'")
                self._blob_map[name].diff[...] = value
        self._check_names(outputs, "backward diffs")
        self._backward(start_ind, end_ind)
        return {name: self._blob_map[name].diff for name in outputs}

    def _check_names(self, names: Iterable[str], what: str) -> None:
        missing = sorted(n for n in names if n not in self._blob_map)
        if missing:
            raise KeyError(f"{what}: no blobs named {missing} in this net")

    def _batch(self, blobs: Mapping[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        """Split arrays into net-batch-sized pieces; the last one padded with zeros."""
        num = len(next(iter(blobs.values())))
        batch_size = next(iter(self._blob_map.values())).shape[0]
        for b in range(num // batch_size):
            i = b * batch_size
            yield {name: blobs[name][i:i + batch_size] for name in blobs}
        remainder = num % batch_size
        if remainder:
            padded = {}
            for name in blobs:
                arr = np.asarray(blobs[name])
                pad = np.zeros((batch_size - remainder,) + arr.shape[1:])
                padded[name] = np.concatenate([arr[-remainder:], pad])
            yield padded

    def _need_arrays(self, kwargs: Mapping[str, Any], what: str) -> None:
        """pycaffe's batching reads the arrays' length: without any it fails with a bare
        StopIteration, with arrays of several lengths it pads and trims wrongly; say so."""
        if not kwargs:
            raise ValueError(f"{what} needs the input arrays as keywords "
                             f"({', '.join(f'{n}=...' for n in self.inputs)})")
        lengths = {name: len(value) for name, value in kwargs.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{what}: arrays of different lengths {lengths}")

    def forward_all(self, blobs: Sequence[str] | None = None, **kwargs: Any
                    ) -> dict[str, np.ndarray]:
        """``forward`` over inputs of any length in batches; outputs stacked, padding cut."""
        self._need_arrays(kwargs, "forward_all")
        outs: dict[str, list] = {o: [] for o in set(self.outputs + list(blobs or []))}
        for batch in self._batch(kwargs):
            for name, value in self.forward(blobs=blobs, **batch).items():
                outs[name].extend(value.copy())
        result = {name: np.asarray(v) for name, v in outs.items()}
        pad = len(next(iter(result.values()))) - len(next(iter(kwargs.values())))
        return {n: v[:-pad] for n, v in result.items()} if pad else result

    def forward_backward_all(self, blobs: Sequence[str] | None = None,
                             diffs: Sequence[str] | None = None, **kwargs: Any
                             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Forward and backward over batches; kwargs hold inputs and output diffs."""
        self._need_arrays(kwargs, "forward_backward_all")
        all_outs: dict[str, list] = {o: [] for o in set(self.outputs + list(blobs or []))}
        all_diffs: dict[str, list] = {d: [] for d in set(self.inputs + list(diffs or []))}
        fwd = self._batch({n: kwargs[n] for n in self.inputs if n in kwargs}) \
            if any(n in kwargs for n in self.inputs) else iter(())
        bwd = self._batch({n: kwargs[n] for n in self.outputs if n in kwargs}) \
            if any(n in kwargs for n in self.outputs) else iter(())
        for fb, bb in zip_longest(fwd, bwd, fillvalue={}):
            for name, value in self.forward(blobs=blobs, **fb).items():
                all_outs[name].extend(value.copy())
            for name, value in self.backward(diffs=diffs, **bb).items():
                all_diffs[name].extend(value.copy())
        outs = {n: np.asarray(v) for n, v in all_outs.items()}
        grads = {n: np.asarray(v) for n, v in all_diffs.items()}
        pad = len(next(iter(outs.values()))) - len(next(iter(kwargs.values())))
        if pad:
            outs = {n: v[:-pad] for n, v in outs.items()}
            grads = {n: v[:-pad] for n, v in grads.items()}
        return outs, grads

    def reshape(self) -> None:
        """Caffe's ``Net::Reshape``: every layer re-derives its tops' shapes from its
        bottoms' (after an input blob was reshaped), without computing anything."""
        for step in self._entries:
            if step.is_input or step.is_split:
                continue
            bottoms = [self._blob_map[b] for b in step.bottoms]
            tops = [self._blob_map[t] for t in step.tops]
            if isinstance(step.module, PythonLayerAdapter):
                step.module.user.reshape(bottoms, tops)
                continue
            shapes = step.module.top_shapes([b.shape for b in bottoms])
            for blob, shape in zip(tops, shapes):
                blob.reshape(*shape)

    def clear_param_diffs(self) -> None:
        """Zero every param diff in place (Caffe's ``ClearParamDiffs``)."""
        for pb in self._param_blobs:
            diff = pb.memories()[1]
            diff.tensor().zero_()
            if not diff.on_cpu:
                diff.head = DEVICE

    # ------------------------------------------------------------------ weights
    def copy_from(self, path: str | os.PathLike) -> None:
        """Copy weights by layer name from a caffemodel (binary or HDF5), into the params'
        own storage (``CopyTrainedLayersFrom``)."""
        self._prepare()
        self._net.load_weights(_check_file(path, "weights file"))
        self._device_changed_params()

    def load_hdf5(self, path: str | os.PathLike) -> None:
        """Copy weights from an HDF5 caffemodel (``CopyTrainedLayersFromHDF5``)."""
        self.copy_from(path)

    def save(self, path: str | os.PathLike) -> None:
        """Write the net and its weights as a binary caffemodel (``Net::ToProto``)."""
        self._prepare()
        self._net.save_weights(os.fspath(path))

    def save_hdf5(self, path: str | os.PathLike) -> None:
        """Write the weights in Caffe's HDF5 layout (``Net::ToHDF5``)."""
        self._prepare()
        self._net.save_weights(os.fspath(path), h5=True)

    def share_with(self, other: "Net") -> None:
        """Make this net's params the same storage as ``other``'s, by layer name
        (``ShareTrainedLayersWith``; a test net sharing its train net's weights)."""
        self._net.share_trained_layers_with(other.caffe_net)

    def set_input_arrays(self, data: np.ndarray, labels: np.ndarray) -> None:
        """Feed a ``MemoryData`` first layer (as pycaffe; labels of ndim 1 become N x 1 x 1 x 1)."""
        first = self._entries[0] if self._entries else None
        if first is None or first.type != "MemoryData":
            raise ValueError("set_input_arrays may only be called if the first layer is a "
                             f"MemoryData layer (this net's is "
                             f"{first.type if first else 'absent'})")
        labels = np.asarray(labels)
        if labels.ndim == 1:
            labels = np.ascontiguousarray(labels[:, None, None, None])
        first.module.reset(np.asarray(data), labels)
        for t, shape in zip(first.tops, first.module.top_shapes([])):
            self._blob_map[t].reshape(*shape)

    def __repr__(self) -> str:
        return (f"<caffe.Net {self._net.net_param.name!r} phase="
                f"{'TRAIN' if self._phase == TRAIN else 'TEST'} inputs={self.inputs} "
                f"outputs={self.outputs}>")
