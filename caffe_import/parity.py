"""Stored activations: read them, write them from our own run, compare a net against them.

The format is ``docs/stored_activations_format.md``: an HDF5 file with ``/inputs/<blob>``,
``/blobs/<blob>``, optionally ``/params/<layer>/<i>``, and for TRAIN references
``/diffs/<layer>/<i>`` (param gradients) and ``/blob_diffs/<blob>`` (blob gradients); names are
percent-encoded with ``urllib.parse.quote(name, safe='')``; attrs ``caffe`` and ``phase``.

What Caffe holds differs from what a plain PyTorch run exposes in two places, and the checker
follows Caffe:

* an in-place layer (``ReLU`` writing into ``conv1_1``) leaves the *last* writer's value in the
  blob, so ``/blobs`` is compared with the net's final value of each name;
* backward also runs in place, so the diff Caffe holds for such a blob is the gradient with
  respect to the value the *first* layer wrote (the ReLU's input). The checker captures the
  tensor each top name was first written with and differentiates with respect to it.

Caffe never writes a diff for a blob nothing back-propagates into (inputs, labels): it stays at
zero. An autograd gradient that is ``None`` is therefore compared as zeros.
"""
from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote, unquote

import h5py
import numpy as np
import torch

from .errors import CaffeFormatError
from .io.atomic import json_ready
from .io.hdf5 import open_h5
from .proto.schema import Schema, resolve_schema

#: Bounds used when neither the caller nor a ``meta.json`` beside the reference gives any.
DEFAULT_REL_L2 = 1e-5
DEFAULT_MAX_ABS = 1e-4
_TINY = 1e-30

#: Row kinds, in the order a report lists them.
KINDS = ("param", "blob", "diff", "blob_diff")


# ----------------------------------------------------------------------------- the file format
@dataclass
class StoredActivations:
    """The content of a stored-activation file, names decoded.

    ``params`` and ``diffs`` map a layer name to its blobs by index (``{i: array}``), so a file
    that stores only some of a layer's blobs still reads.
    """

    inputs: "OrderedDict[str, np.ndarray]" = field(default_factory=OrderedDict)
    blobs: "OrderedDict[str, np.ndarray]" = field(default_factory=OrderedDict)
    params: "OrderedDict[str, dict[int, np.ndarray]]" = field(default_factory=OrderedDict)
    diffs: "OrderedDict[str, dict[int, np.ndarray]]" = field(default_factory=OrderedDict)
    blob_diffs: "OrderedDict[str, np.ndarray]" = field(default_factory=OrderedDict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def phase(self) -> str:
        """``"train"`` when the file says TRAIN or holds gradients, else ``"test"``."""
        stored = str(self.attrs.get("phase", "")).strip().upper()
        if stored == "TRAIN" or self.diffs or self.blob_diffs:
            return "train"
        return "test"



def _read_array(ds, path: Path, where: str) -> np.ndarray:
    if not isinstance(ds, h5py.Dataset):
        raise CaffeFormatError(f"'{where}' is a group, expected an array", path=path)
    if ds.dtype.kind not in "fiub":
        raise CaffeFormatError(f"'{where}' holds {ds.dtype}, expected numbers", path=path)
    return np.array(ds[()], dtype=np.float32, order="C")  # not ascontiguousarray: keeps 0-d


def _read_flat(group, path: Path, prefix: str) -> "OrderedDict[str, np.ndarray]":
    return OrderedDict((unquote(k), _read_array(group[k], path, f"{prefix}/{k}")) for k in group)


def _read_nested(group, path: Path, prefix: str) -> "OrderedDict[str, dict[int, np.ndarray]]":
    out: OrderedDict[str, dict[int, np.ndarray]] = OrderedDict()
    for layer_key in group:
        sub = group[layer_key]
        if not isinstance(sub, h5py.Group):
            raise CaffeFormatError(f"'{prefix}/{layer_key}' should be a group of blobs 0, 1, ...",
                                   path=path)
        blobs: dict[int, np.ndarray] = {}
        for k in sub:
            if not k.isdigit():
                raise CaffeFormatError(f"'{prefix}/{layer_key}/{k}': blob names are indices",
                                       path=path)
            blobs[int(k)] = _read_array(sub[k], path, f"{prefix}/{layer_key}/{k}")
        out[unquote(layer_key)] = dict(sorted(blobs.items()))
    return out


def read_reference(path: str | os.PathLike) -> StoredActivations:
    """Read a stored-activation file (``reference.h5``).

    Raises ``CaffeFormatError`` for a file that is not HDF5 or has no ``/blobs``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such reference file: {path}")
    with open_h5(path) as f:
        if "blobs" not in f:
            raise CaffeFormatError("no /blobs group: not a stored-activation file", path=path)
        ref = StoredActivations()
        ref.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        for name in ("inputs", "blobs", "blob_diffs"):
            if name in f:
                setattr(ref, name, _read_flat(f[name], path, name))
        for name in ("params", "diffs"):
            if name in f:
                setattr(ref, name, _read_nested(f[name], path, name))
    return ref


def write_reference(path: str | os.PathLike, ref: StoredActivations) -> None:
    """Write ``ref`` in the stored-activation format, atomically (temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from .io.atomic import atomic_path

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in ref.attrs.items():
                f.attrs[key] = value
            for name in ("inputs", "blobs", "blob_diffs"):
                arrays = getattr(ref, name)
                if arrays or name == "blobs":
                    group = f.create_group(name)
                    for blob, arr in arrays.items():
                        group.create_dataset(quote(blob, safe=""),
                                             data=np.asarray(arr, dtype=np.float32))
            for name in ("params", "diffs"):
                nested = getattr(ref, name)
                if nested:
                    group = f.create_group(name)
                    for layer, blobs in nested.items():
                        sub = group.create_group(quote(layer, safe=""))
                        for i, arr in blobs.items():
                            sub.create_dataset(str(i), data=np.asarray(arr, dtype=np.float32))


# ----------------------------------------------------------------------------- comparison
@dataclass
class Tolerance:
    """Both bounds must hold: ``rel_l2 = ||ours - ref|| / ||ref||`` and
    ``max_abs = max|ours - ref| / max|ref|`` (meta.json calls it ``max_abs_over_max_ref``)."""

    rel_l2: float = DEFAULT_REL_L2
    max_abs: float = DEFAULT_MAX_ABS

    @classmethod
    def for_reference(cls, reference: str | os.PathLike, rel_l2: float | None = None,
                      max_abs: float | None = None) -> "Tolerance":
        """Explicit bounds win; else the ``tolerance`` of a ``meta.json`` beside the reference;
        else the defaults (1e-5 / 1e-4)."""
        tol = cls()
        meta_path = Path(reference).parent / "meta.json"
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError) as exc:
                raise CaffeFormatError(f"unreadable meta.json ({exc})", path=meta_path) from exc
            stored = meta.get("tolerance") if isinstance(meta, dict) else None
            if isinstance(stored, dict):
                if "rel_l2" in stored:
                    tol.rel_l2 = float(stored["rel_l2"])
                for key in ("max_abs_over_max_ref", "max_abs"):
                    if key in stored:
                        tol.max_abs = float(stored[key])
                        break
        if rel_l2 is not None:
            tol.rel_l2 = float(rel_l2)
        if max_abs is not None:
            tol.max_abs = float(max_abs)
        return tol


@dataclass
class ParityRow:
    """One compared array. ``kind``: ``param`` | ``blob`` | ``diff`` (param gradient) |
    ``blob_diff`` (blob gradient); ``index`` is the param blob index for params and diffs."""

    kind: str
    name: str
    index: int | None
    shape: tuple[int, ...]
    ours_shape: tuple[int, ...] | None
    rel_l2: float
    max_abs: float
    ok: bool
    note: str = ""

    @property
    def label(self) -> str:
        """How the report names the array: the blob name for blobs, else kind-qualified."""
        if self.kind == "blob":
            return self.name
        if self.kind == "blob_diff":
            return f"{self.name} (diff)"
        return f"{self.name}[{self.index}] ({self.kind})"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "index": self.index,
                "shape": list(self.shape),
                "ours_shape": None if self.ours_shape is None else list(self.ours_shape),
                "rel_l2": json_ready(self.rel_l2), "max_abs_over_max_ref": json_ready(self.max_abs),
                "ok": self.ok, "note": self.note}



@dataclass
class ParityReport:
    """Rows in the report's order, the bounds they were checked with, and the reference."""

    rows: list[ParityRow]
    tolerance: Tolerance
    reference: str = ""
    phase: str = "test"

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows)

    @property
    def failures(self) -> list[ParityRow]:
        return [r for r in self.rows if not r.ok]

    @property
    def summary(self) -> str:
        passed = sum(r.ok for r in self.rows)
        return f"{passed}/{len(self.rows)} blobs within tolerance"

    def table(self) -> str:
        """A fixed-width table: blob, shape, rel L2, max abs / max ref, ok; then the summary."""
        head = ("blob", "shape", "rel L2", "max abs / max ref", "ok")
        lines = []
        for r in self.rows:
            shape = "x".join(map(str, r.shape)) or "scalar"
            if r.ours_shape is not None and r.ours_shape != r.shape:
                shape += " (ours " + ("x".join(map(str, r.ours_shape)) or "scalar") + ")"
            ok = "ok" if r.ok else "FAIL" + (f": {r.note}" if r.note else "")
            lines.append((r.label, shape, _fmt(r.rel_l2), _fmt(r.max_abs), ok))
        widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
                  for i, h in enumerate(head)]
        out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
        out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
        out.append(f"tolerance: rel L2 <= {self.tolerance.rel_l2:g}, "
                   f"max abs / max ref <= {self.tolerance.max_abs:g}")
        out.append(self.summary)
        return "\n".join(out)

    def as_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "phase": self.phase, "ok": self.ok,
                "summary": self.summary,
                "tolerance": {"rel_l2": self.tolerance.rel_l2,
                              "max_abs_over_max_ref": self.tolerance.max_abs},
                "rows": [r.as_dict() for r in self.rows]}


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3e}"


def compare_arrays(kind: str, name: str, ours: np.ndarray | torch.Tensor | None,
                   ref: np.ndarray, tol: Tolerance, index: int | None = None) -> ParityRow:
    """Compare one array; never raises for bad data (missing, wrong shape, NaN): the row fails.

    Both measures are computed in float64. Positions where both sides hold the same
    non-finite value (Caffe can store inf) count as equal; a NaN or inf on one side only fails.
    """
    ref = np.asarray(ref)
    shape = tuple(int(d) for d in ref.shape)
    nan = float("nan")
    if ours is None:
        return ParityRow(kind, name, index, shape, None, nan, nan, False, "missing in our run")
    if isinstance(ours, torch.Tensor):
        ours = ours.detach().to("cpu", torch.float64).numpy()
    ours = np.asarray(ours, dtype=np.float64)
    ours_shape = tuple(int(d) for d in ours.shape)
    if ours_shape != shape:
        return ParityRow(kind, name, index, shape, ours_shape, nan, nan, False, "shape differs")
    ref64 = ref.astype(np.float64)
    both_finite = np.isfinite(ours) & np.isfinite(ref64)
    same_special = ~both_finite & ((ours == ref64) | (np.isnan(ours) & np.isnan(ref64)))
    bad = ~(both_finite | same_special)
    if bad.any():
        which = "NaN" if np.isnan(ours[bad]).any() or np.isnan(ref64[bad]).any() else "inf"
        return ParityRow(kind, name, index, shape, ours_shape, nan, nan, False,
                         f"{which} at {int(bad.sum())} positions")
    refc = np.where(both_finite, ref64, 0.0)
    diff = np.where(both_finite, ours, 0.0) - refc
    rel = float(np.linalg.norm(diff.ravel()) / max(float(np.linalg.norm(refc.ravel())), _TINY))
    mx = float(np.abs(diff).max(initial=0.0) / max(float(np.abs(refc).max(initial=0.0)), _TINY))
    ok = rel <= tol.rel_l2 and mx <= tol.max_abs
    return ParityRow(kind, name, index, shape, ours_shape, rel, mx, ok)


# ----------------------------------------------------------------------------- running a net
@dataclass
class RunResult:
    """What one run of a net gives, keyed as the stored-activation format keys it."""

    blobs: "OrderedDict[str, torch.Tensor]"
    params: "OrderedDict[str, list[torch.Tensor]]"
    diffs: "OrderedDict[str, list[torch.Tensor | None]]" = field(default_factory=OrderedDict)
    blob_diffs: "OrderedDict[str, torch.Tensor | None]" = field(default_factory=OrderedDict)


def _declared_tops(net) -> list[str]:
    """Every blob declared as a top by the instantiated net, in order, without repeats."""
    seen: OrderedDict[str, None] = OrderedDict()
    for name in getattr(net, "inputs", []):
        seen.setdefault(name, None)
    for layer in net.net_param.layer:
        for top in layer.top:
            seen.setdefault(top, None)
    return list(seen)


def run_net(net, inputs: Mapping[str, Any], backward: bool = False,
            device: str | torch.device | None = None) -> RunResult:
    """Run ``net`` (a CaffeNet) on ``inputs``; with ``backward`` also the gradients Caffe
    would hold.

    The backward seeds what Caffe's does: the weighted total loss (``net.total_loss``), every
    loss top's diff set to its ``loss_weight``. Blob gradients are the net's own
    ``blob_grads()``: of the tensor each name was *first* written with (in-place layers
    back-propagate in place in Caffe, so that is the diff it ends up holding). The params'
    ``.grad`` are left as they were found.
    """
    device = torch.device(net.device if device is None else device)
    feed = OrderedDict()
    for name, value in inputs.items():
        t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
        feed[name] = t.to(device=device, dtype=torch.float32)
    retain = net.retain_blob_grads
    net.retain_blob_grads = backward
    kept = getattr(net, "keep_blobs", None)
    try:
        if kept is not None:
            net.keep_blobs = True  # every blob is compared, not only the outputs
        with torch.set_grad_enabled(backward):
            blobs = OrderedDict(net(**feed).items())
    finally:
        if kept is not None:
            net.keep_blobs = kept
        net.retain_blob_grads = retain
    for name, value in feed.items():
        blobs.setdefault(name, value)
    params = OrderedDict((layer, list(ps)) for layer, ps in net.params.items())
    result = RunResult(blobs=blobs, params=params)
    if backward:
        result.diffs, result.blob_diffs = _gradients(net, blobs)
        for name, value in feed.items():
            result.blob_diffs.setdefault(name, torch.zeros_like(value))
    return result


def _gradients(net, blobs) -> tuple[OrderedDict, OrderedDict]:
    """``(param_grads, blob_grads)`` of one backward from ``net.total_loss(blobs)``, with the
    params' own ``.grad`` put back afterwards."""
    saved = [(p, p.grad) for p in net.parameters()]
    for p, _ in saved:
        p.grad = None
    try:
        loss = net.total_loss(blobs)
        if loss.requires_grad:  # else no loss depends on a param: every diff stays zero
            loss.backward()
        diffs = OrderedDict((k, [g.detach() for g in gs]) for k, gs in net.param_grads().items())
        blob_diffs = OrderedDict((k, g.detach()) for k, g in net.blob_grads().items())
    finally:
        for p, g in saved:
            p.grad = g
    return diffs, blob_diffs


def _build_net(net, weights, phase: str, device, schema: Schema | None = None,
               precision: str | None = None):
    """A CaffeNet in ``phase``: ``net`` as given when it already is one, else built (with the
    Caffe fork's ``schema`` when given); switched to ``precision`` when one is given."""
    from .net import CaffeNet

    if isinstance(net, CaffeNet):
        built_phase = str(getattr(net, "phase", phase)).lower()
        if built_phase != phase:
            raise CaffeFormatError(
                f"the reference is a {phase.upper()} reference but the net was built in phase "
                f"{built_phase.upper()}: build it with phase='{phase}'")
        if weights is not None:
            net.load_weights(weights)
    else:
        net = CaffeNet(net, weights, phase=phase, schema=schema)
    if device is not None:
        net.to(device)
    if precision is not None:
        net.set_precision(precision)
    return net


# ----------------------------------------------------------------------------- public API
def check_parity(net, weights, reference: str | os.PathLike, device: str | torch.device = "cpu",
                 rel_l2: float | None = None, max_abs: float | None = None, *,
                 fork: str | None = None, proto: str | os.PathLike | None = None,
                 schema: Schema | None = None, precision: str | None = None) -> ParityReport:
    """Run ``net`` on a reference's inputs and compare with what Caffe stored.

    ``net``: a ``CaffeNet`` (used as is, ``weights`` loaded into it when given) or anything
    ``CaffeNet`` accepts (a path, prototxt text, a NetParameter), then built in the reference's
    phase. A TRAIN reference (attr ``phase`` TRAIN, or ``/diffs`` present) also runs backward of
    the weighted total loss and compares param gradients and blob gradients.

    Tolerance: ``rel_l2`` / ``max_abs`` when given, else the ``tolerance`` of a ``meta.json``
    beside the reference, else 1e-5 / 1e-4. A missing blob, a shape mismatch or a NaN makes a
    failing row; it does not raise. ``precision`` ("exact" / "fast"): the net's mode for the
    run (default: as built, exact); fast is expected to miss Caffe's tolerances at the 1e-2
    level (bf16) - give looser ``rel_l2`` / ``max_abs`` to bound it.
    """
    ref = read_reference(reference)
    tol = Tolerance.for_reference(reference, rel_l2, max_abs)
    phase = ref.phase
    net = _build_net(net, weights, phase, device, resolve_schema(schema, fork, proto), precision)
    missing = [n for n in getattr(net, "inputs", []) if n not in ref.inputs]
    if missing:
        raise CaffeFormatError(f"the reference stores no input for {', '.join(missing)}",
                               path=reference)
    inputs = OrderedDict((n, ref.inputs[n]) for n in getattr(net, "inputs", ref.inputs.keys())
                         if n in ref.inputs)
    run = run_net(net, inputs, backward=phase == "train", device=device)
    rows: list[ParityRow] = []
    for layer, blobs in ref.params.items():
        ours = run.params.get(layer, [])
        for i, arr in blobs.items():
            rows.append(compare_arrays("param", layer, ours[i] if i < len(ours) else None,
                                       arr, tol, i))
    order = {name: k for k, name in enumerate(run.blobs)}  # the net's order, not the file's
    for name in sorted(ref.blobs, key=lambda n: order.get(n, len(order))):
        rows.append(compare_arrays("blob", name, run.blobs.get(name), ref.blobs[name], tol))
    for layer, blobs in ref.diffs.items():
        ours_d = run.diffs.get(layer, [])
        for i, arr in blobs.items():
            rows.append(compare_arrays("diff", layer, ours_d[i] if i < len(ours_d) else None,
                                       arr, tol, i))
    for name in sorted(ref.blob_diffs, key=lambda n: order.get(n, len(order))):
        rows.append(compare_arrays("blob_diff", name, run.blob_diffs.get(name),
                                   ref.blob_diffs[name], tol))
    return ParityReport(rows=rows, tolerance=tol, reference=str(reference), phase=phase)


def dump(net, weights, inputs: Mapping[str, Any], out_h5: str | os.PathLike,
         phase: str | None = None, device: str | torch.device | None = None,
         include_params: bool = False, *, fork: str | None = None,
         proto: str | os.PathLike | None = None, schema: Schema | None = None,
         precision: str | None = None) -> StoredActivations:
    """Run our net and store what it computed, in the format ``check_parity`` reads.

    ``phase``: ``"test"`` or ``"train"`` (default: the net's own phase, else test); a TRAIN
    dump also runs backward and stores ``/diffs`` and ``/blob_diffs``. ``include_params`` also
    stores ``/params`` (then a later check verifies the weights too). Written atomically.
    ``precision``: the net's mode for the run (default: as built, exact). Returns what was
    written.
    """
    from . import __version__

    if phase is None:
        phase = str(getattr(net, "phase", "test"))
    phase = phase.lower()
    if phase not in ("train", "test"):
        raise CaffeFormatError(f"phase must be 'train' or 'test', got {phase!r}")
    net = _build_net(net, weights, phase, device, resolve_schema(schema, fork, proto), precision)
    declared = list(getattr(net, "inputs", []))
    unknown = [n for n in inputs if n not in declared]
    if unknown:
        raise CaffeFormatError(f"the net has no input blob {', '.join(map(repr, unknown))} "
                               f"(inputs: {', '.join(declared) or 'none'})")
    missing = [n for n in declared if n not in inputs]
    if missing:
        shapes = getattr(net, "blob_shapes", {})
        given = ", ".join(f"'{n}' ({'x'.join(map(str, shapes[n]))})" if n in shapes else repr(n)
                          for n in missing)
        raise CaffeFormatError(f"no value given for input blob(s) {given}: give each input an "
                               "array of its shape (inputs={name: array}; on the command line "
                               "--input NAME=FILE.npy, once per input)")
    run = run_net(net, inputs, backward=phase == "train", device=device)
    ref = StoredActivations()
    ref.attrs = {"caffe": f"caffe_import {__version__} (torch {torch.__version__}), not Caffe",
                 "phase": phase.upper()}
    for name in declared:
        ref.inputs[name] = _np(run.blobs[name])
    for name in _declared_tops(net):
        if name in run.blobs:
            ref.blobs[name] = _np(run.blobs[name])
    if include_params:
        for layer, ps in run.params.items():
            if ps:
                ref.params[layer] = {i: _np(p) for i, p in enumerate(ps)}
    for layer, ds in run.diffs.items():
        if ds:
            ref.diffs[layer] = {i: _np(d) for i, d in enumerate(ds)}
    for name in _declared_tops(net):
        if name in run.blob_diffs:
            ref.blob_diffs[name] = _np(run.blob_diffs[name])
    write_reference(out_h5, ref)
    return ref


def _np(t: torch.Tensor) -> np.ndarray:
    return np.array(t.detach().to("cpu", torch.float32).numpy(), order="C")  # keeps 0-d shapes



# ----------------------------------------------------------------------------- solver parity
SOLVER_CASE_FILES = ("solver.prototxt", "train.prototxt", "init.caffemodel", "reference.h5")
DEFAULT_SOLVER_REL_L2 = 1e-4


@dataclass
class SolverStep:
    """One solver step against Caffe's: the loss and the worst param after the update."""

    step: str
    rate: float
    loss: float
    caffe_loss: float
    loss_error: float
    worst_rel_l2: float
    worst_param: str
    missing: list[str]
    ok: bool

    def line(self) -> str:
        extra = f" missing {','.join(self.missing)}" if self.missing else ""
        return (f"step {self.step}: lr {self.rate:.6g} loss {self.loss:.7g} (caffe "
                f"{self.caffe_loss:.7g}, rel {self.loss_error:.2e}) params worst rel_l2 "
                f"{self.worst_rel_l2:.2e} ({self.worst_param}){extra} "
                f"{'ok' if self.ok else 'FAIL'}")


@dataclass
class SolverParityReport:
    steps: list[SolverStep]
    rel_l2: float

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def summary(self) -> str:
        passed = sum(s.ok for s in self.steps)
        return f"{passed}/{len(self.steps)} steps within tolerance (rel_l2 <= {self.rel_l2:g})"


def _solver_case(case_dir: str | os.PathLike, rel_l2: float | None) -> tuple[Path, float]:
    """The case folder, checked for its files, and the tolerance (``rel_l2`` or meta.json's)."""
    case = Path(case_dir)
    for name in SOLVER_CASE_FILES:
        if not (case / name).is_file():
            raise CaffeFormatError(f"missing {name} (expected the solver_fcn32s_narrow layout)",
                                   path=case)
    if rel_l2 is not None:
        return case, float(rel_l2)
    meta_path = case / "meta.json"
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        return case, float(meta.get("tolerance", {}).get("rel_l2", DEFAULT_SOLVER_REL_L2))
    except (ValueError, TypeError, AttributeError) as exc:
        raise CaffeFormatError(f"expected JSON with tolerance.rel_l2 a number ({exc})",
                               path=meta_path) from None


def _reference_steps(path: Path):
    """``(name, inputs, params group, Caffe's loss)`` per recorded step, in step order."""
    with open_h5(path) as f:
        if "steps" not in f:
            raise CaffeFormatError("no /steps group", path=path)
        for key in sorted(f["steps"], key=lambda k: int(k) if k.isdigit() else -1):
            if not key.isdigit():
                raise CaffeFormatError(f"step name '{key}' is not a number", path=path)
            group = f["steps"][key]
            inputs = {unquote(n): torch.from_numpy(np.asarray(group["inputs"][n][()], np.float32))
                      for n in group["inputs"]}
            loss = float(group.attrs["loss"]) if "loss" in group.attrs else float("nan")
            yield key, inputs, group["params"], loss


def _worst_param(net, params, tol: Tolerance) -> tuple[float, str, list[str]]:
    """The largest relative L2 error of the net's params against a step's stored ones (and
    its name), and the stored layers the net lacks."""
    worst, worst_name, missing = 0.0, "", []
    for layer in params:
        name = unquote(layer)
        if name not in net.params:
            missing.append(name)
            continue
        for i in params[layer]:
            row = compare_arrays("param", name, net.params[name][int(i)], params[layer][i][()],
                                 tol, int(i))
            if not row.rel_l2 <= worst:
                worst, worst_name = row.rel_l2, f"{name}/{i}"
    return worst, worst_name, missing


def check_solver_parity(case_dir: str | os.PathLike, device: str | torch.device = "cpu",
                        rel_l2: float | None = None, on_step=None, *, fork: str | None = None,
                        proto: str | os.PathLike | None = None,
                        schema: Schema | None = None) -> SolverParityReport:
    """Our solver against the SGD trajectory real Caffe recorded in ``case_dir``.

    The folder holds ``solver.prototxt``, ``train.prototxt``, ``init.caffemodel``,
    ``reference.h5`` (``/steps/<k>/inputs/<blob>``, ``/steps/<k>/params/<layer>/<i>``, attr
    ``loss``) and optionally ``meta.json`` (``tolerance.rel_l2``). For each step the recorded
    inputs are fed (to every ``iter_size`` pass), one solver step is taken, and every param
    after the update and the step's loss are compared by relative L2 error. ``on_step`` is
    called with each :class:`SolverStep` as it is done. ``fork``/``proto`` (or ``schema``):
    the Caffe fork schema the solver and net are read with.
    """
    from .io import read_solver
    from .net import CaffeNet
    from .solver import Solver

    case, tol = _solver_case(case_dir, rel_l2)
    schema = resolve_schema(schema, fork, proto)
    param = read_solver(case / "solver.prototxt", schema=schema)
    device = torch.device(device)
    net = CaffeNet(str(case / "train.prototxt"), weights=str(case / "init.caffemodel"),
                   phase="train", schema=schema).to(device)
    solver = Solver(param, net, root=case, device=device)
    bounds = Tolerance(rel_l2=tol, max_abs=math.inf)
    steps = []
    for key, inputs, params, caffe_loss in _reference_steps(case / "reference.h5"):
        loss = solver.step(1, inputs=inputs)
        worst, worst_name, missing = _worst_param(net, params, bounds)
        loss_error = abs(loss - caffe_loss) / max(abs(caffe_loss), np.finfo(np.float32).tiny)
        ok = worst <= tol and loss_error <= tol and not missing
        steps.append(SolverStep(key, solver.rate, loss, caffe_loss, loss_error, worst,
                                worst_name, missing, ok))
        if on_step is not None:
            on_step(steps[-1])
    return SolverParityReport(steps, tol)


__all__ = ["StoredActivations", "read_reference", "write_reference", "Tolerance", "ParityRow",
           "ParityReport", "compare_arrays", "run_net", "check_parity", "dump",
           "DEFAULT_REL_L2", "DEFAULT_MAX_ABS", "SolverStep", "SolverParityReport",
           "check_solver_parity"]
