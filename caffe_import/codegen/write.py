"""``write_module``: model.py (and model.safetensors) for a built net, verified first."""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch
from safetensors.torch import save as save_safetensors

from ..export.shapes import example_inputs
from .emit.base import EXAMPLES
from ..io.atomic import atomic_write_bytes, atomic_write_text
from ..parity.compare import Tolerance
from .generate import Generated, generate
from .verify import check

MODEL_FILE, WEIGHTS_FILE = "model.py", "model.safetensors"


def weights_bytes(generated: Generated) -> bytes:
    """model.safetensors' bytes: the state (keys sorted). One metadata entry only: the
    format writes its metadata map in no fixed order (model.py's docstring says the rest). A
    net without params gets none: safetensors up to 0.4.2 writes an empty map with metadata as
    a header no version reads."""
    state = dict(generated.state)
    return save_safetensors(state, metadata={"format": "pt"} if state else None)


def checking_inputs(net, shapes: Optional[Mapping[str, Sequence[int]]] = None,
                    seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    """Seeded inputs of the net's shapes (``shapes``: name -> shape instead) to check a
    generated module with: noise, except where a layer reading an input holds integers there
    (labels, indices: ``emit.base.EXAMPLES``)."""
    feed = example_inputs(net, dict(shapes or {}), seed=seed, device="cpu")
    generator = torch.Generator().manual_seed(seed)
    for step in net.steps:
        make = EXAMPLES.get(type(step.module))
        for i, bottom in enumerate(step.bottoms):
            if make is not None and bottom in feed:
                value = make(step.module, i, tuple(feed[bottom].shape), generator)
                if value is not None:
                    feed[bottom] = value
    return feed


def write_module(net, out_dir: str | os.PathLike, *, class_name: str = "Net",
                 net_path: Optional[str | os.PathLike] = None,
                 weights_path: Optional[str | os.PathLike] = None,
                 inputs: Optional[Mapping[str, Sequence[int]]] = None,
                 tolerance: Tolerance | None = None,
                 say: Callable[[str], None] = print) -> list[Path]:
    """Write ``out_dir/model.py`` (and, when ``weights_path`` is given, ``model.safetensors``)
    for the built ``net`` (a ``CaffeNet``), after checking that the generated module computes
    every output blob as the net does (TRAIN nets: the params' gradients too) on seeded inputs
    of the net's shapes (``inputs``: name -> shape to use instead). Nothing is written when
    the check fails (``CaffeFormatError``); each file appears atomically. Returns the paths."""
    generated = generate(net, class_name=class_name, net_path=net_path,
                         weights_path=weights_path)
    feed = checking_inputs(net, inputs)
    check(generated, net, feed, tolerance)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / MODEL_FILE] + ([out / WEIGHTS_FILE] if weights_path is not None else [])
    if weights_path is not None:  # the weights first: model.py appearing says both are there
        atomic_write_bytes(paths[1], weights_bytes(generated))
    atomic_write_text(paths[0], generated.source)
    say(f"wrote {', '.join(str(p) for p in paths)} (checked against the CaffeNet: "
        f"{len(generated.outputs)} output blob(s){', gradients' if net.phase == 'train' else ''})")
    return paths
