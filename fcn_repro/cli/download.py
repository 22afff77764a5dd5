"""``fcn-repro download MODEL``: fetch a model's published weights (resumable)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fcn_repro.download import DownloadError, download_model


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="fetch a model's published caffemodel",
                       description="Download a zoo model's weights into the cache folder. "
                                   "Interrupted downloads resume from the .part file; the file "
                                   "appears under its name only once complete and checked to be "
                                   "a caffemodel of the model's net (a wrong file is deleted). "
                                   "Offline: --base-url a mirror, or put a file fetched by hand "
                                   "where this command would (its path is in the error).")
    p.add_argument("model", help="zoo model name, e.g. voc-fcn8s (see `fcn-repro netspec --list`)")
    p.add_argument("--base-url", help="mirror to fetch from (default: $FCN_REPRO_BASE_URL or "
                                      "http://dl.caffe.berkeleyvision.org/)")
    p.add_argument("--cache-dir", type=Path,
                   help="where to put it (default: $FCN_REPRO_CACHE or ~/.cache/fcn_repro)")
    p.add_argument("--force", action="store_true", help="fetch again even if present")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per network operation")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        path = download_model(args.model, base_url=args.base_url, cache_dir=args.cache_dir,
                              progress=not args.no_progress, force=args.force, timeout=args.timeout)
    except DownloadError as exc:
        print(f"fcn-repro: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
