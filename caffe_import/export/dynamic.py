"""Dynamic shapes of an export: which of batch, height and width the net lets change (tried
with the layers' own shape rules, as Caffe reshapes a net for a new input size), and the plan
an export traces and verifies with."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch

from ..errors import CaffeFormatError
from .shapes import InputSpec, Shapes, blob_shapes_for, example_inputs, shape_of

#: axes of an input an export leaves free, by name, and the second sizes tried for each
FREE_AXES = {0: "batch", 2: "height", 3: "width"}


_SPATIAL_STEPS = (32, 16, 8, 64, 1)


@dataclass
class DynamicPlan:
    """Which input axes an export leaves free, the shapes it traces with (a free batch of 1
    traced as 2: torch.export fixes a size it sees as 1), a second set of shapes to verify
    at, and why each other axis stays static (``{label: reason}``); ``given``: the shapes
    asked for."""

    given: Shapes
    axes: dict[str, tuple[int, ...]]
    trace: Shapes
    second: Shapes
    fixed: dict[str, str] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()

    def give_up(self, why: str) -> None:
        """Fewer free axes, for ``why``: height and width static (batch alone stays free),
        or, with batch alone left, every axis; the given sizes are traced on those axes."""
        drop = {a for axes in self.axes.values() for a in axes if a != 0} or {0}
        for axis in drop:
            self.fixed.setdefault(FREE_AXES[axis], why)
        self.axes = {n: k for n, k in ((n, tuple(a for a in axes if a not in drop))
                                       for n, axes in self.axes.items()) if k}
        self.trace, self.second = (OrderedDict(
            (n, tuple(d if a not in drop else self.given[n][a] for a, d in enumerate(s)))
            for n, s in shapes.items()) for shapes in (self.trace, self.second))

    def labels(self) -> list[str]:
        return [label for a, label in FREE_AXES.items()
                if any(a in axes for axes in self.axes.values())]

    def note(self) -> str | None:
        """One line saying which axes stay static and why (None when all are free)."""
        if not self.fixed:
            return None
        by_reason: dict[str, list[str]] = {}
        for label, why in self.fixed.items():
            by_reason.setdefault(why, []).append(label)
        return "static " + "; static ".join(f"{', '.join(labels)}: {why}"
                                             for why, labels in by_reason.items())


def moved_shapes(shapes: Shapes, members: Mapping[tuple[str, int], int]) -> Shapes:
    out = OrderedDict((n, list(s)) for n, s in shapes.items())
    for (name, axis), size in members.items():
        out[name][axis] = size
    return OrderedDict((n, tuple(s)) for n, s in out.items())


def plan_dynamic(net, shapes: Shapes, outputs: Sequence[str] | None = None) -> DynamicPlan:
    """Which of batch, height and width (axes 0, 2, 3 of every input that has them, each
    across all inputs at once) the net lets change: each is tried at another size with the
    layers' own shape rules (:func:`blob_shapes_for`); one a layer refuses stays static."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for name, shape in shapes.items():
        for axis, label in FREE_AXES.items():
            if axis < len(shape) and (axis == 0 or len(shape) >= 3):
                groups.setdefault(label, []).append((name, axis))
    second: dict[tuple[str, int], int] = {}
    fixed: dict[str, str] = {}
    for label, members in groups.items():
        steps = (1,) if label == "batch" else _SPATIAL_STEPS
        why = ""
        for step in steps:
            moved = {m: shapes[m[0]][m[1]] + step for m in members}
            try:
                blob_shapes_for(net, moved_shapes(shapes, moved), outputs)
            except CaffeFormatError as exc:
                why = why or " ".join(str(exc).split())
                continue
            second.update(moved)
            break
        else:
            fixed[label] = why
    try:
        blob_shapes_for(net, moved_shapes(shapes, second), outputs)
    except CaffeFormatError as exc:  # each axis alone is fine, together they are not
        fixed.update((FREE_AXES[a], " ".join(str(exc).split())) for _, a in second)
        second = {}
    axes: dict[str, tuple[int, ...]] = {}
    for name, axis in second:
        axes[name] = (*axes.get(name, ()), axis)
    trace = moved_shapes(shapes, {(n, 0): 2 for n, a in second if a == 0 and shapes[n][0] == 1})
    return DynamicPlan(shapes, axes, trace, moved_shapes(shapes, second), fixed,
                       tuple(outputs or ()))


def export_dynamic_shapes(net, plan: DynamicPlan | None) -> tuple | None:
    """``dynamic_shapes`` for torch.export / the ONNX exporter: ``Dim.AUTO`` on the free axes
    (torch.export then keeps an axis static where the code needs a fixed size)."""
    if plan is None or not plan.axes:
        return None
    auto = torch.export.Dim.AUTO
    # one entry: the wrapper's ``*inputs``, a tuple with one spec per input
    return (tuple({a: auto for a in plan.axes.get(n, ())} or None for n in net.inputs),)


def tracing_feed(net, inputs: InputSpec | None, plan: DynamicPlan | None
                  ) -> "OrderedDict[str, torch.Tensor]":
    """The tensors to trace with: the given ones, made up where the plan traces another size."""
    if plan is None:
        return example_inputs(net, inputs)
    given = dict(inputs or {})
    spec = {n: (given[n] if n in given and shape_of(given[n]) == s else s)
            for n, s in plan.trace.items()}
    return example_inputs(net, spec)


def settle(plan: DynamicPlan | None, free: Mapping[str, Sequence[int]]) -> DynamicPlan | None:
    """The plan after the trace: an axis torch.export kept static is static, with its reason,
    and the second size keeps only the axes still free. None when an axis traced at another
    size than the given one came out static (the caller traces the given shapes instead)."""
    if plan is None:
        return None
    for name, axes in plan.axes.items():
        for axis in axes:
            if axis not in free.get(name, ()):
                if plan.trace[name][axis] != plan.given[name][axis]:
                    return None
                plan.fixed.setdefault(FREE_AXES[axis], "torch.export fixed it (a layer's "
                                      "code depends on its exact value)")
    kept = {n: tuple(a for a in axes if a in free.get(n, ())) for n, axes in plan.axes.items()}
    plan.axes = {n: a for n, a in kept.items() if a}
    plan.second = OrderedDict(
        (n, tuple(plan.second[n][a] if a in plan.axes.get(n, ()) else d
                  for a, d in enumerate(s))) for n, s in plan.given.items())
    return plan
