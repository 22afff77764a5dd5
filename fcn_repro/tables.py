"""The paper's results tables with our reproduced numbers side by side.

``collect_results(folder)`` finds every metrics.json (as ``fcn-repro eval`` writes them) under a
folder; ``build_tables(results)`` matches them to the published rows of
:mod:`fcn_repro.published` by model, dataset and split; ``render`` prints markdown, LaTeX or CSV;
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

from fcn_repro.published import METRIC_TITLES, METRICS, ROWS, TABLES, PublishedRow
from caffe_import.io.atomic import atomic_open

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


def load_result(path: Path) -> Result | None:
    """A :class:`Result` from an eval metrics.json, or None if the file is not one."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not {"model", "dataset", "split"} <= set(record):
        return None
    values = {m: _pct(record.get(m)) for m in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "geometric_acc")}
    return Result(path=path, model=str(record["model"]), dataset=str(record["dataset"]),
                  split=str(record["split"]), images=int(record.get("images") or 0), values=values)


def collect_results(folder: str | os.PathLike) -> list[Result]:
    """Every eval metrics file (``*.json`` with model / dataset / split) under ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder {folder} does not exist")
    found = [load_result(p) for p in sorted(folder.rglob("*.json"))]
    return [r for r in found if r is not None]


def build_tables(results: Iterable[Result], rows: Sequence[PublishedRow] = ROWS) -> dict[str, list[TableRow]]:
    """Published rows grouped by table, each with the matching result (the newest file when
    several match model, dataset and split), or None."""
    index: dict[tuple[str, str, str], Result] = {}
    for r in sorted(results, key=lambda r: r.path.stat().st_mtime if r.path.exists() else 0):
        index[(r.model, r.dataset, r.split)] = r
    tables: dict[str, list[TableRow]] = {}
    for row in rows:
        tables.setdefault(row.table, []).append(TableRow(row, index.get((row.model, row.dataset, row.split))))
    return tables


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
    cells.append(f"{row.result.images} images" if row.result else NO_RESULT)
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
        w.writerow(["table", "net", "model", "dataset", "split", "metric", "published", "ours", "diff", "result"])
        for key, rows in tables.items():
            for row in rows:
                for m in _metrics_of([row]):
                    o, d = row.ours(m), row.diff(m)
                    w.writerow([key, row.published.label, row.published.model, row.published.dataset,
                                row.published.split, m, row.published.value(m),
                                "" if o is None else round(o, 4), "" if d is None else round(d, 4),
                                str(row.result.path) if row.result else NO_RESULT])
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
