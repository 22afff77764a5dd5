"""tools/bench_detection.py: both NMS paths it times give the same detections (checked inside
``run``), on a small head."""
from __future__ import annotations

import importlib.util

from support import ROOT


def test_bench_runs_both_paths_and_they_agree():
    spec = importlib.util.spec_from_file_location("bench_detection",
                                                  ROOT / "tools" / "bench_detection.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run(priors=300, classes=5, repeat=1)
    assert result["rows"] > 0 and result["ratio"] > 0
