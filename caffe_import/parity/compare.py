"""Comparing our arrays with stored ones: the tolerance, one row per array, the report."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CaffeFormatError
from ..io.atomic import json_ready

#: Bounds used when neither the caller nor a ``meta.json`` beside the reference gives any.
DEFAULT_REL_L2 = 1e-5
DEFAULT_MAX_ABS = 1e-4
#: Bounds for a reduced-precision run (``precision="fast"``: bf16 is about 1e-2 relative off
#: float32) when the caller gives none; Caffe's own (and a meta.json's) hold for float32 only.
FAST_REL_L2 = 2e-2
FAST_MAX_ABS = 5e-2
_TINY = 1e-30

#: Row kinds, in the order a report lists them.
KINDS = ("param", "blob", "diff", "blob_diff")


@dataclass
class Tolerance:
    """Both bounds must hold: ``rel_l2 = ||ours - ref|| / ||ref||`` and
    ``max_abs = max|ours - ref| / max|ref|`` (meta.json calls it ``max_abs_over_max_ref``)."""

    rel_l2: float = DEFAULT_REL_L2
    max_abs: float = DEFAULT_MAX_ABS
    #: where the bounds come from, as the report's table says it ("" for the defaults)
    source: str = field(default="", compare=False)

    @classmethod
    def for_reference(cls, reference: str | os.PathLike, rel_l2: float | None = None,
                      max_abs: float | None = None, reduced: bool = False) -> "Tolerance":
        """Explicit bounds win; else, for a ``reduced`` precision run (``precision="fast"``),
        that mode's defaults (2e-2 / 5e-2); else the ``tolerance`` of a ``meta.json`` beside
        the reference; else the defaults (1e-5 / 1e-4)."""
        if reduced:
            tol = cls(FAST_REL_L2, FAST_MAX_ABS, "the default for precision fast (bf16)")
        else:
            tol = cls._from_meta(Path(reference).parent / "meta.json")
        if rel_l2 is not None:
            tol.rel_l2 = float(rel_l2)
        if max_abs is not None:
            tol.max_abs = float(max_abs)
        if rel_l2 is not None or max_abs is not None:
            tol.source = "given" if rel_l2 is not None and max_abs is not None else \
                f"given, else {tol.source or 'the default'}"
        return tol

    @classmethod
    def _from_meta(cls, meta_path: Path) -> "Tolerance":
        """The ``tolerance`` a ``meta.json`` states, else the defaults."""
        tol = cls()
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
                tol.source = "meta.json"
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
        source = f" ({self.tolerance.source})" if self.tolerance.source else ""
        out.append(f"tolerance: rel L2 <= {self.tolerance.rel_l2:g}, "
                   f"max abs / max ref <= {self.tolerance.max_abs:g}{source}")
        out.append(self.summary)
        return "\n".join(out)

    def as_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "phase": self.phase, "ok": self.ok,
                "summary": self.summary,
                "tolerance": {"rel_l2": self.tolerance.rel_l2,
                              "max_abs_over_max_ref": self.tolerance.max_abs},
                "tolerance_source": self.tolerance.source or "default",
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
