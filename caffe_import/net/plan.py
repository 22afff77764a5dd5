"""How a built net runs: which blobs may be dropped when, which layers fuse, which may
overwrite their bottom.

Caffe keeps every blob of a net for its whole life and runs each layer on its own. None of
this changes a number: an inference forward here drops each blob after its last reader
(liveness from the step list), runs a Convolution and the in-place ReLU after it as one
kernel, and lets an in-place layer overwrite a tensor no one else can see.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..layers.base import CaffeLayer


@dataclass(frozen=True)
class Step:
    """One instantiated layer and its wiring (``CaffeNet.steps``), in Caffe's layer order."""

    name: str
    type: str
    module: CaffeLayer
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    in_place: tuple[bool, ...]  # per top: computed in place (top j == bottom j)
    is_input: bool  # an Input layer, or a data layer standing in for one


#: one entry of a run plan: ``(step, fused with the ReLU after it, blobs to drop after it)``
PlannedStep = tuple[Step, bool, tuple[str, ...]]


def run_plan(steps: Sequence[Step], keep: Iterable[str], free: bool, fuse: bool
             ) -> list[PlannedStep]:
    """The steps to run, each with its fusion flag and the blobs to drop after it.

    With ``free``, a blob is dropped after its last reader unless it is in ``keep`` (the
    net's inputs - the caller's tensors -, its outputs and the blobs asked for). With
    ``fuse``, a Convolution whose single top is rewritten by the in-place ReLU (slope 0)
    right after it runs ``forward_relu`` and the ReLU step is skipped."""
    keep = set(keep)
    last: dict[str, int] = {}
    for k, step in enumerate(steps):
        for name in (*step.bottoms, *step.tops):
            last[name] = k
    plan, skip = [], set()
    for k, step in enumerate(steps):
        if k in skip:
            continue
        fused = fuse and fusable(steps, k)
        if fused:
            skip.add(k + 1)
        reach = (k, k + 1) if fused else (k,)
        names = dict.fromkeys((*step.bottoms, *step.tops))
        release = tuple(n for n in names if free and n not in keep and last[n] in reach)
        plan.append((step, fused, release))
    return plan


def fusable(steps: Sequence[Step], k: int) -> bool:
    """Whether step ``k`` (a layer with ``fuses_relu``) can absorb the in-place ReLU after it."""
    step = steps[k]
    if not getattr(step.module, "fuses_relu", False) or len(step.tops) != 1 \
            or k + 1 >= len(steps):
        return False
    nxt = steps[k + 1]
    return (nxt.type == "ReLU" and tuple(nxt.bottoms) == tuple(step.tops) == tuple(nxt.tops)
            and getattr(nxt.module, "negative_slope", None) == 0.0
            and nxt.module.may_overwrite_bottom)


def mark_overwritable(steps: Sequence[Step]) -> None:
    """Let in-place layers (top == bottom, one bottom) overwrite their bottom's tensor
    (``module.may_overwrite_bottom``) when nothing else can see it: the blob was written by a
    layer (not fed as an input, which may be the caller's own tensor) and no other layer read
    it in between."""
    writer: dict[str, int] = {}
    readers: dict[str, list[int]] = {}
    for k, step in enumerate(steps):
        for b in step.bottoms:
            readers.setdefault(b, []).append(k)
        if not step.is_input and len(step.bottoms) == 1 and tuple(step.in_place[:1]) == (True,):
            b = step.bottoms[0]
            w = writer.get(b)
            seen = [r for r in readers.get(b, []) if w is not None and w < r < k]
            step.module.may_overwrite_bottom = (
                w is not None and not steps[w].is_input and not seen)
        for t in step.tops:
            writer[t] = k


def steps_for(steps: Sequence[Step], outputs: Iterable[str]) -> list[Step]:
    """The steps (layers, in order) the blobs ``outputs`` depend on."""
    wanted = set(outputs)
    kept = []
    for step in reversed(steps):
        if wanted.intersection(step.tops):
            wanted.update(step.bottoms)
            kept.append(step)
    return kept[::-1]
