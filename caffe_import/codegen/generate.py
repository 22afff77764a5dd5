"""A built ``CaffeNet`` as the source of one plain ``nn.Module`` (model.py) and its state.

Each layer's emitter (``emit``) writes its attribute and its forward statements; this module
names things, orders them, and puts the file together: a docstring saying what generated it
from which files, the imports the code uses, the runtime helpers it calls (verbatim copies),
and the class.
"""
from __future__ import annotations

import ast
import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from ..errors import UsageError
from ..version import __version__
from .emit import Emission, LayerContext, emitter_for
from .emit.base import find_emitter
from .helpers import closure, helper_source
from .names import Namer, identifier

#: layer types whose top may be written over by the in-place ReLU after them: their top is a
#: fresh tensor (no view or alias of another blob) and their backward does not need it
_FRESH_TOPS = frozenset({"Convolution", "Deconvolution", "InnerProduct", "Eltwise", "Scale",
                         "Bias", "BatchNorm", "BN", "Pooling", "LRN"})


@dataclass(frozen=True)
class GradPlace:
    """Where Caffe's blob ``index`` of ``layer`` lives in the module: ``key`` of its state;
    ``to_caffe`` maps that entry's gradient back to the blob's shape."""

    layer: str
    index: int
    key: str
    to_caffe: Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Generated:
    """model.py's text (``source``), the state its ``load_state_dict`` takes (``state``, keys
    sorted), its class name, the net's inputs and outputs (Caffe's blob names), where each
    learnable blob went (``places``) and the loss weights of its loss outputs."""

    source: str
    state: "OrderedDict[str, torch.Tensor]"
    class_name: str
    inputs: list[str]
    outputs: list[str]
    places: list[GradPlace] = field(default_factory=list)
    loss_weights: dict[str, float] = field(default_factory=dict)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_class_name(name: str) -> str:
    """``name`` when it can name the generated class, else a ``UsageError``."""
    if not name.isidentifier() or identifier(name) != name or name in ("nn", "torch", "F"):
        raise UsageError(f"--class-name {name!r}: expected a Python class name like Net")
    return name


def _in_place(net, step, writers: dict[str, str], inputs: frozenset[str]) -> bool:
    if not (step.module.may_overwrite_bottom and step.in_place[:1] == (True,)):
        return False
    return step.bottoms[0] not in inputs and writers.get(step.bottoms[0]) in _FRESH_TOPS


@dataclass
class _Layer:
    ctx: LayerContext
    emission: Emission
    step: object


def _emit_all(net, layer_names: Namer, blob_names: Namer) -> list[_Layer]:
    inputs = frozenset(blob_names(n) for n in net.inputs)
    writers: dict[str, str] = {}
    out = []
    for step in net.steps:
        if step.is_input:
            for t in step.tops:
                writers[t] = "Input"
            continue
        if step.type == "Python" and find_emitter(type(step.module)) is None:
            raise UsageError(f"layer '{step.name}' is a Python layer ({_python_name(step)}): "
                             "its code is the user's own; no code generator is registered "
                             "for it")
        ctx = LayerContext(
            attr=layer_names(step.name), name=step.name, type=step.type,
            bottoms=tuple(blob_names(b) for b in step.bottoms),
            tops=tuple(blob_names(t) for t in step.tops),
            bottom_shapes=tuple(tuple(net.blob_shapes[b]) for b in step.bottoms),
            inputs=inputs, phase=net.phase, in_place=_in_place(net, step, writers, inputs))
        emission = emitter_for(step.module, step.type)(step.module, ctx)
        out.append(_Layer(ctx, emission, step))
        for t in step.tops:
            writers[t] = step.type
    return out


def _python_name(step) -> str:
    p = step.module.param.python_param
    return f"{p.module}.{p.layer}"


def _state(layers: list[_Layer]) -> tuple["OrderedDict[str, torch.Tensor]", list[GradPlace]]:
    state: dict[str, torch.Tensor] = {}
    places = []
    for layer in layers:
        module = layer.step.module
        blobs = module.blobs
        for pm in layer.emission.params:
            key = f"{layer.ctx.attr}.{pm.key}"
            state[key] = pm.to_torch(blobs[pm.index].detach()).to(torch.float32).contiguous()
            if pm.to_caffe is not None and blobs[pm.index].requires_grad:
                places.append(GradPlace(layer.ctx.name, pm.index, key, pm.to_caffe))
        for key, value in layer.emission.extra.items():
            state[f"{layer.ctx.attr}.{key}"] = value.clone()
    return OrderedDict(sorted(state.items())), places


def _provenance(net_path, weights_path) -> list[str]:
    lines = []
    for what, path in (("Net", net_path), ("Weights", weights_path)):
        if path is None:
            text = ("none: the layers' Caffe fillers; load trained values into "
                    "the state_dict") if what == "Weights" else "a NetParameter"
        else:
            text = f"{Path(path).name} (sha256 {sha256_file(path)})"
        lines.append(f"{what + ':':9s}{text}")
    return lines


def _header(class_name: str, net, net_path, weights_path) -> str:
    name = net.net_param.name or (Path(net_path).stem if net_path else class_name)
    lines = [f'"""{name} as plain PyTorch: the {net.phase.upper()} net of Caffe, one '
             f"nn.Module ({class_name}).", "",
             f"Generated by caffe_import {__version__} (caffe-import codegen); it does not "
             "import caffe_import.", "", *_provenance(net_path, weights_path), "",
             "Use::", "",
             f"    model = {class_name}()",
             '    model.load_state_dict(safetensors.torch.load_file("model.safetensors"))',
             "    model.eval()  # Caffe's TEST phase; model.train() is its TRAIN phase",
             '"""']
    return "\n".join(lines) + "\n"


def _imports(body: str) -> str:
    lines = []
    if "math." in body:
        lines.append("import math")
    lines.append("")
    lines.append("import torch")
    if "F." in body:
        lines.append("import torch.nn.functional as F")
    lines.append("from torch import nn")
    return "\n".join(lines).lstrip("\n") + "\n"


def _loss_weights(net) -> list[str]:
    """The attribute naming the loss outputs and the weights Caffe's backward gives them
    (``sum(weight * output.sum())`` is the loss to minimise): in a TRAIN net, or any with
    losses."""
    if not net.loss_weights and net.phase != "train":
        return []
    items = ", ".join(f"{k!r}: {float(w)!r}" for k, w in net.loss_weights.items())
    return [f"        self.loss_weights = {{{items}}}  # Caffe's loss_weight per loss output"]


def _inputs(net, layers: list[_Layer]) -> list[str]:
    """``forward``'s arguments as Caffe blob names, in the order of the layers making them:
    the net's inputs and the tops an emitter takes from the caller (a data layer that reads
    in a net built with ``data=True``; MemoryData), so both builds give one signature."""
    arguments = {layer.step.name: [t for t, v in zip(layer.step.tops, layer.ctx.tops)
                                   if v in layer.emission.arguments] for layer in layers}
    names: list[str] = []
    for step in net.steps:
        names += list(step.tops) if step.is_input else arguments.get(step.name, [])
    return names


def _names(lines: list[str]) -> tuple[list[str], set[str], set[str]]:
    """The variables of forward ``lines``: all (in order of appearance), those assigned,
    those deleted."""
    nodes = [n for n in ast.walk(ast.parse("\n".join(lines))) if isinstance(n, ast.Name)]
    nodes.sort(key=lambda n: (n.lineno, n.col_offset))
    return (list(dict.fromkeys(n.id for n in nodes)),
            {n.id for n in nodes if isinstance(n.ctx, ast.Store)},
            {n.id for n in nodes if isinstance(n.ctx, ast.Del)})


def _drops(bodies: list[list[str]], keep: set[str]) -> list[list[str]]:
    """Per layer, the local variables it is the last to use (``del`` after it): each blob is
    dropped after its last reader, as ``CaffeNet`` does in inference, so that peak memory is
    the live blobs' and not every blob's. The returned ones (``keep``) stay; so do the
    caller's tensors (never assigned in ``forward``) and those a layer deletes itself
    (Silence)."""
    used = [_names(body) for body in bodies]
    local = set().union(*(bound for _, bound, _ in used)) - keep
    local -= set().union(*(gone for _, _, gone in used))
    last = {name: k for k, (names, _, _) in enumerate(used) for name in names if name in local}
    return [[name for name in names if last.get(name) == k]
            for k, (names, _, _) in enumerate(used)]


def _forward_lines(layers: list[_Layer], returned: set[str]) -> list[str]:
    """``forward``'s statements: each layer's (its Caffe type and name in a comment where it
    has no attribute), then ``del`` of the variables no later statement reads."""
    bodies = [list(layer.emission.forward) for layer in layers]
    lines = []
    for layer, body, dead in zip(layers, bodies, _drops(bodies, returned)):
        if body and not layer.emission.init:
            body[0] += f"  # {layer.ctx.type} {layer.ctx.name!r}"
        lines += [f"        {s}" for s in body]
        if dead:
            lines.append(f"        del {', '.join(dead)}")
    return lines


def _class(class_name: str, net, layers: list[_Layer], blob_names: Namer,
           inputs: list[str]) -> str:
    shapes = ", ".join(f"{n} {tuple(net.blob_shapes[n])}" for n in inputs)
    inputs = [blob_names(n) for n in inputs]
    lines = [f"class {class_name}(nn.Module):",
             f'    """Inputs: {shapes or "none"}; outputs: {", ".join(net.outputs) or "none"}."""', "",
             "    def __init__(self) -> None:", "        super().__init__()",
             *_loss_weights(net)]
    for layer in layers:
        init = list(layer.emission.init)
        if init and layer.ctx.attr != layer.ctx.name:
            init[0] += f"  # Caffe layer {layer.ctx.name!r}"
        lines += [f"        {s}" for s in init]
    args = "".join(f", {n}: torch.Tensor" for n in inputs)
    single = len(net.outputs) == 1
    result = "torch.Tensor" if single else "dict[str, torch.Tensor]"
    lines += ["", f"    def forward(self{args}) -> {result}:"]
    lines += _forward_lines(layers, {blob_names(o) for o in net.outputs})
    if single:
        lines.append(f"        return {blob_names(net.outputs[0])}")
    else:
        items = ", ".join(f"{o!r}: {blob_names(o)}" for o in net.outputs)
        lines.append(f"        return {{{items}}}")
    return "\n".join(lines + _reset(layers)) + "\n"


def _reset(layers: list[_Layer]) -> list[str]:
    """The module's ``reset()`` where layers carry state between forwards (LSTM, RNN with
    ``expose_hidden: false``): their state back to zeros, as Caffe's ``RecurrentLayer::Reset``."""
    body = [f"        {s}" for layer in layers for s in layer.emission.reset]
    if not body:
        return []
    return ["", "    def reset(self) -> None:",
            '        """The state the recurrent layers carry between forwards back to zeros '
            '(Caffe\'s Reset)."""', *body]


def generate(net, *, class_name: str = "Net", net_path: Optional[str | os.PathLike] = None,
             weights_path: Optional[str | os.PathLike] = None) -> Generated:
    """model.py's source and state for the built ``net`` (a ``CaffeNet``); ``net_path`` /
    ``weights_path``: the files it was built from, named (with their sha256) in the
    docstring. A ``UsageError`` names the first layer no emitter can write."""
    class_name = check_class_name(class_name)
    blob_names = Namer()
    layer_names = Namer(taken=[class_name], attributes=True)
    layers = _emit_all(net, layer_names, blob_names)
    helpers = closure(h for layer in layers for h in layer.emission.helpers)
    helper_text = [helper_source(h) for h in helpers]
    inputs = _inputs(net, layers)
    cls = _class(class_name, net, layers, blob_names, inputs)
    code = "\n\n".join([*helper_text, cls])
    body = "\n".join(helper_text) + cls
    source = "\n".join([_header(class_name, net, net_path, weights_path), _imports(body), "",
                        code])
    state, places = _state(layers)
    losses = {t: float(w) for t, w in net.loss_weights.items()}
    return Generated(source, state, class_name, inputs, list(net.outputs), places, losses)
