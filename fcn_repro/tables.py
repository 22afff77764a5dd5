"""The paper's results tables with our reproduced numbers side by side.

``scan_results(folder)`` finds every metrics.json (as ``fcn-repro eval`` writes them) under a
folder, and says why each other ``*.json`` is none; ``build_tables(results)`` matches them to
the published rows of :mod:`fcn_repro.published` by model, dataset and split (where several
match: an exact result before a ``--precision fast`` one, real data before synthetic, then the
newest; the row's notes say when what it shows is fast or synthetic), and
``unused_results`` says why a result is in no row; ``render`` prints markdown, LaTeX or CSV;
``plot_mean_iu`` draws published vs reproduced mean IU as a bar chart (matplotlib, Agg).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from caffe_import.errors import CaffeFormatError
from caffe_import.io import read_net
from caffe_import.io.atomic import atomic_open
from fcn_repro.data.synthetic import is_synthetic
from fcn_repro.published import METRIC_TITLES, METRICS, ROWS, TABLES, PublishedRow
from fcn_repro.zoo.match import matching_models

FORMATS = ("markdown", "latex", "csv")
NO_RESULT = "no result"


@dataclass
class Result:
    """A metrics.json, its scores in percent."""

    path: Path
    model: str
    dataset: str
    split: str
    images: int
    values: dict[str, float | None] = field(default_factory=dict)
    net: str | None = None              #: the prototxt of an ``eval --net`` run
    net_matches: list[str] | None = None  #: zoo models whose deploy net that prototxt computes
    precision: str = "exact"            #: ``eval --precision`` (records before it: exact)
    synthetic: bool = False             #: scored on ``fcn-repro synthetic-data`` images

    @property
    def caveats(self) -> list[str]:
        """What makes these numbers less than the exact scores of real data, in words."""
        return ([f"{self.precision} precision"] if self.precision != "exact" else []) + (
            ["synthetic data"] if self.synthetic else [])

    def rank(self) -> tuple[bool, bool, float]:
        """Which of several results for one row is shown: exact first, then real data, then
        the newest file."""
        return (self.precision == "exact", not self.synthetic,
                self.path.stat().st_mtime if self.path.exists() else 0.0)


@dataclass(frozen=True)
class Skipped:
    """A ``*.json`` file under the results folder that no table row shows, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class TableRow:
    published: PublishedRow
    result: Result | None

    def ours(self, metric: str) -> float | None:
        return None if self.result is None else self.result.values.get(metric)

    def diff(self, metric: str) -> float | None:
        p, o = self.published.value(metric), self.ours(metric)
        return None if p is None or o is None else o - p


def _pct(v: Any) -> float | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return 100.0 * float(v)


def read_result(path: Path) -> Result | Skipped:
    """A :class:`Result` from an eval metrics.json, or :class:`Skipped` saying why it is none.

    A result of ``eval --net`` from before eval named the zoo model a prototxt computes is
    matched here, when its prototxt still exists (:func:`fcn_repro.zoo.match.matching_models`).
    """
    try:
        record = json.loads(path.read_text())
    except OSError as exc:
        return Skipped(path, f"unreadable ({exc.strerror or exc})")
    except ValueError as exc:
        return Skipped(path, f"not JSON ({exc})")
    if not isinstance(record, dict) or not {"model", "dataset", "split"} <= set(record):
        return Skipped(path, "not an eval result (no model, dataset and split)")
    values = {m: _pct(record.get(m)) for m in METRICS}
    result = Result(path=path, model=str(record["model"]), dataset=str(record["dataset"]),
                    split=str(record["split"]), images=int(record.get("images") or 0), values=values,
                    net=record.get("net"), net_matches=record.get("net_matches"),
                    precision=str(record.get("precision") or "exact"),
                    synthetic=_synthetic(record))
    if result.net and result.net_matches is None and result.model not in _published_models():
        result.net_matches = _matches_of(Path(result.net), record.get("modality"))
        if result.net_matches and len(result.net_matches) == 1:
            result.model = result.net_matches[0]
    return result


def _synthetic(record: dict[str, Any]) -> bool:
    """``synthetic_data`` as eval records it; for a record from before eval did, whether its
    ``root`` (still there) is a synthetic-data folder."""
    if "synthetic_data" in record:
        return bool(record["synthetic_data"])
    return bool(record.get("root")) and is_synthetic(str(record["root"]))


def _published_models(rows: Sequence[PublishedRow] = ROWS) -> set[str]:
    return {row.model for row in rows}


def _matches_of(net_path: Path, modality: str | None) -> list[str] | None:
    """Zoo models a prototxt computes; None when it cannot be read any more."""
    try:
        return matching_models(read_net(net_path), modality)
    except (OSError, CaffeFormatError):
        return None


def scan_results(folder: str | os.PathLike) -> tuple[list[Result], list[Skipped]]:
    """Every eval metrics file under ``folder``, and every other ``*.json`` with the reason."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder {folder} does not exist")
    results: list[Result] = []
    skipped: list[Skipped] = []
    for path in sorted(folder.rglob("*.json")):
        found = read_result(path)
        (results if isinstance(found, Result) else skipped).append(found)
    return results, skipped


def collect_results(folder: str | os.PathLike) -> list[Result]:
    """Every eval metrics file (``*.json`` with model / dataset / split) under ``folder``."""
    return scan_results(folder)[0]


def build_tables(results: Iterable[Result], rows: Sequence[PublishedRow] = ROWS) -> dict[str, list[TableRow]]:
    """Published rows grouped by table, each with the matching result, or None. Where several
    match model, dataset and split: an exact result before a ``--precision fast`` one, real
    data before synthetic, then the newest file (:meth:`Result.rank`)."""
    index = _best_by_key(results)
    tables: dict[str, list[TableRow]] = {}
    for row in rows:
        tables.setdefault(row.table, []).append(TableRow(row, index.get((row.model, row.dataset, row.split))))
    return tables


def _best_by_key(results: Iterable[Result]) -> dict[tuple[str, str, str], Result]:
    index: dict[tuple[str, str, str], Result] = {}
    for r in sorted(results, key=Result.rank):
        index[(r.model, r.dataset, r.split)] = r
    return index


def _superseded(r: Result, by: Result) -> str:
    """Why ``by`` is shown in the row and not ``r``."""
    if by.precision == "exact" and r.precision != "exact":
        why = f"the exact result {by.path}, preferred over this {r.precision}-precision one"
    elif not by.synthetic and r.synthetic:
        why = f"{by.path}, scored on real data, preferred over this one on synthetic data"
    else:
        why = f"the newer {by.path}"
    return f"superseded by {why} ({r.model} on {r.dataset}/{r.split})"


def unused_results(results: Iterable[Result], rows: Sequence[PublishedRow] = ROWS) -> list[Skipped]:
    """The results :func:`build_tables` shows in no row, each with the reason."""
    results = list(results)
    best = _best_by_key(results)
    keys = {(row.model, row.dataset, row.split) for row in rows}
    published = _published_models(rows)
    out: list[Skipped] = []
    for r in results:
        key = (r.model, r.dataset, r.split)
        if key in keys and best[key] is not r:
            out.append(Skipped(r.path, _superseded(r, best[key])))
        elif key not in keys and r.model in published:
            where = sorted({f"{row.dataset}/{row.split}" for row in rows if row.model == r.model})
            out.append(Skipped(r.path, f"no published numbers for {r.model} on {r.dataset}/{r.split} "
                                       f"(published: {', '.join(where)})"))
        elif key not in keys:
            out.append(Skipped(r.path, _unknown_model_reason(r)))
    return out


def _unknown_model_reason(r: Result) -> str:
    """Why a result whose model has no published row shows nowhere, and what would place it."""
    matches = [m for m in (r.net_matches or []) if m != r.model]
    fix = "rerun eval with --model, or --name set to a release model name, to place it"
    if len(matches) > 1:
        return (f"model {r.model!r}: its net {r.net} computes the deploy net of several zoo models "
                f"({', '.join(matches)}); {fix}")
    if matches:
        return f"model {r.model!r}: its net {r.net} is {matches[0]}'s deploy net; rerun eval with --name {matches[0]}"
    if r.net and r.net_matches is not None and r.model not in r.net_matches:
        return f"model {r.model!r}: its net {r.net} computes no release model's deploy net; {fix}"
    if r.net and r.net_matches is None:
        return f"model {r.model!r} has no published numbers and its net {r.net} cannot be read; {fix}"
    return f"model {r.model!r} has no published numbers; {fix}"


def _metrics_of(rows: Sequence[TableRow]) -> list[str]:
    return [m for m in METRICS if any(r.published.value(m) is not None for r in rows)]


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def _cells(row: TableRow, metrics: Sequence[str]) -> list[str]:
    cells = [row.published.label, row.published.model]
    for m in metrics:
        cells += [_fmt(row.published.value(m)), _fmt(row.ours(m)) if row.result else "",
                  _fmt(row.diff(m), signed=True) if row.result else ""]
    cells.append("; ".join([f"{row.result.images} images", *row.result.caveats])
                 if row.result else NO_RESULT)
    if row.published.note:
        cells[-1] += f"; {row.published.note}"
    return cells


def _header(metrics: Sequence[str]) -> list[str]:
    head = ["net", "model"]
    for m in metrics:
        t = METRIC_TITLES[m]
        head += [f"{t} (paper)", f"{t} (ours)", "diff"]
    return head + ["notes"]


def render(tables: dict[str, list[TableRow]], fmt: str = "markdown") -> str:
    """The tables as markdown, LaTeX (booktabs) or CSV text (values in percent)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["table", "net", "model", "dataset", "split", "metric", "published", "ours", "diff", "result",
                    "caveats"])
        for key, rows in tables.items():
            for row in rows:
                for m in _metrics_of([row]):
                    o, d = row.ours(m), row.diff(m)
                    w.writerow([key, row.published.label, row.published.model, row.published.dataset,
                                row.published.split, m, row.published.value(m),
                                "" if o is None else round(o, 4), "" if d is None else round(d, 4),
                                str(row.result.path) if row.result else NO_RESULT,
                                "; ".join(row.result.caveats) if row.result else ""])
        return buf.getvalue()
    out: list[str] = []
    for key, rows in tables.items():
        metrics = _metrics_of(rows)
        head = _header(metrics)
        if fmt == "markdown":
            out.append(f"### {TABLES.get(key, key)}\n")
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "|".join(" --- " for _ in head) + "|")
            out += ["| " + " | ".join(_cells(r, metrics)) + " |" for r in rows]
            out.append("")
        else:
            esc = lambda s: s.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")
            out.append(r"\begin{table}[t]\centering\small")
            out.append(r"\caption{" + esc(TABLES.get(key, key)) + "}")
            out.append(r"\begin{tabular}{ll" + "rrr" * len(metrics) + "l}")
            out.append(r"\toprule")
            out.append(" & ".join(esc(h) for h in head) + r" \\")
            out.append(r"\midrule")
            out += [" & ".join(esc(c) for c in _cells(r, metrics)) + r" \\" for r in rows]
            out.append(r"\bottomrule")
            out.append(r"\end{tabular}")
            out.append(r"\end{table}")
            out.append("")
    return "\n".join(out)


def plot_mean_iu(tables: dict[str, list[TableRow]], path: str | os.PathLike) -> Path:
    """Bar chart of published vs reproduced mean IU (rows with a published mean IU), as PNG."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = [r for rs in tables.values() for r in rs if r.published.mean_iu is not None]
    labels = [f"{r.published.table}: {r.published.label}" for r in rows]
    published = [r.published.mean_iu for r in rows]
    ours = [r.ours("mean_iu") if r.ours("mean_iu") is not None else 0.0 for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(rows)), 4.5))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], published, width=0.4, label="published")
    ax.bar([x + 0.2 for x in xs], ours, width=0.4, label="reproduced")
    for x, r in zip(xs, rows):
        if r.result is None:
            ax.text(x + 0.2, 1.0, "none", rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("mean IU (%)")
    ax.set_title("FCN: published vs reproduced mean IU")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_open(path) as fh:
            fig.savefig(fh, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path
