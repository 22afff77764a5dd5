"""Reading Caffe's glog logs in tests: the solver's numbers, ``caffe test``'s lines, Caffe's
``tools/extra/parse_log.py`` (a copy in tests/fixtures/caffe_tools/parse_log), and the
comparisons the command-line parity tests make against real Caffe's logs and snapshots."""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from caffe_import.io import read_weights
from caffe_import.proto import caffe_pb2

from . import ROOT
from .compare import rel_l2

PARSE_LOG = ROOT / "tests" / "fixtures" / "caffe_tools" / "parse_log" / "parse_log.py"
REL = 1e-4
GLOG = re.compile(r"I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ ([a-z_]+\.cpp):\d+\] (.*)")


def numbers(log: str, source: str = "solver.cpp") -> list[tuple[str, float]]:
    """(what, value) of every solver line carrying a number: display losses, train and test
    outputs, the final loss (Caffe's own lines of net setup are left out)."""
    out = []
    for line in log.splitlines():
        m = GLOG.fullmatch(line)
        if not m or m.group(1) != source:
            continue
        msg = re.sub(r" \([\d.e+-]+ iter/s, [\d.e+-]+s/\d+ iters\)", "", m.group(2).strip())
        v = re.search(r" = ([-\d.e+]+)", msg)
        if v:
            out.append((msg[:v.start()], float(v.group(1))))
    return out


def assert_close(ours: list[tuple[str, float]], caffe: list[tuple[str, float]]) -> None:
    """The same lines in the same order, each value within ``REL`` of Caffe's."""
    assert [k for k, _ in ours] == [k for k, _ in caffe]
    for (what, a), (_, b) in zip(ours, caffe):
        assert abs(a - b) <= REL * abs(b) + 1e-6, (what, a, b)


def assert_weights_close(ours_path: str | Path, caffe_path: str | Path) -> None:
    """The same layers and blobs, each within ``REL`` relative L2 of Caffe's."""
    ours, caffe = read_weights(ours_path), read_weights(caffe_path)
    assert list(ours) == list(caffe)
    for name in caffe:
        for a, b in zip(ours[name], caffe[name]):
            assert rel_l2(a, b) < REL, name


def assert_solverstate_close(ours_path: str | Path, caffe_path: str | Path) -> caffe_pb2.SolverState:
    """Our ``.solverstate`` holds what Caffe's does: the same iteration, step and weights file
    name, the momentum history within ``REL`` relative L2. Returns Caffe's state."""
    ours, caffe = caffe_pb2.SolverState(), caffe_pb2.SolverState()
    ours.ParseFromString(Path(ours_path).read_bytes())
    caffe.ParseFromString(Path(caffe_path).read_bytes())
    assert (ours.iter, ours.current_step, ours.learned_net) == \
        (caffe.iter, caffe.current_step, caffe.learned_net)
    assert len(ours.history) == len(caffe.history)
    for a, b in zip(ours.history, caffe.history):
        assert list(a.shape.dim) == list(b.shape.dim)
        assert rel_l2(np.array(a.data), np.array(b.data)) < REL
    return caffe


def score_lines(log: str) -> list[str]:
    """``caffe test``'s lines from "Running for N iterations." on."""
    lines = [m.group(2) for m in map(GLOG.fullmatch, log.splitlines())
             if m and m.group(1) == "caffe.cpp"]
    start = next(i for i, line in enumerate(lines) if line.startswith("Running for "))
    return lines[start:]


def parse_log(log: Path) -> tuple[list[dict], list[dict]]:
    """Caffe's parse_log.py run on ``log``: its train and test tables."""
    subprocess.run([sys.executable, "-W", "ignore", str(PARSE_LOG), str(log), str(log.parent)],
                   check=True, capture_output=True)
    tables = []
    for kind in ("train", "test"):
        with open(f"{log}.{kind}") as f:
            tables.append(list(csv.DictReader(f)))
    return tables[0], tables[1]


def assert_parse_log_same(ours: Path, caffe: Path) -> None:
    """parse_log.py gives our log Caffe's rows and columns, the values within ``REL``."""
    for rows, refs in zip(parse_log(ours), parse_log(caffe)):
        assert len(rows) == len(refs) > 0
        for row, ref in zip(rows, refs):
            assert list(row) == list(ref)  # the same columns
            assert row["NumIters"] == ref["NumIters"]
            for col in set(ref) - {"NumIters", "Seconds"}:
                assert float(row[col]) == pytest.approx(float(ref[col]), rel=REL, abs=1e-6)
