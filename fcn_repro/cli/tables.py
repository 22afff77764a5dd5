"""``fcn-repro tables``: the paper's tables, published vs reproduced."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from caffe_import.cli.options import output_file_path, require_dir
from fcn_repro.tables import build_tables, plot_mean_iu, render, scan_results, unused_results


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tables", help="the paper's tables: published vs our metrics.json results",
                       description="Match the metrics.json files under --results to the published "
                                   "rows (by model, dataset and split) and print the tables. Where "
                                   "several results fit a row, an exact one is shown before a "
                                   "--precision fast one, real data before synthetic, then the "
                                   "newest; the row's notes say 'fast precision' or 'synthetic "
                                   "data' when that is what it shows. Every "
                                   "JSON file that shows in no row is named on stderr with the reason "
                                   "(not an eval result, no published row, superseded by a preferred "
                                   "result, a --net result naming no release model).")
    p.add_argument("--results", type=Path, required=True, metavar="DIR", help="folder searched for metrics.json files")
    p.add_argument("--format", choices=["markdown", "latex", "csv"], default="markdown",
                   help="table format: markdown, LaTeX (booktabs) or CSV (one row per metric)")
    p.add_argument("--plot", type=output_file_path, metavar="PNG", help="bar chart of published vs reproduced mean IU")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results, skipped = scan_results(require_dir(args.results, "the folder holding metrics.json files"))
    tables = build_tables(results)
    print(render(tables, args.format), end="")
    sys.stdout.flush()
    for item in skipped + unused_results(results):
        print(f"fcn-repro tables: skipped {item}", file=sys.stderr)
    if not results:
        print(f"fcn-repro tables: no eval result (metrics.json of fcn-repro eval) under {args.results}",
              file=sys.stderr)
    if args.plot:
        print(f"wrote {plot_mean_iu(tables, args.plot)}")
    return 0
