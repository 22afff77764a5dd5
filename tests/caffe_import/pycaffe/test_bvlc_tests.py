"""BVLC's own pycaffe tests (``python/caffe/test/*.py`` of BVLC/caffe 9b89154, 10 files, 52
tests, vendored unchanged under tests/fixtures/pycaffe/bvlc_tests/) pass under
``caffe-import run -m unittest``, all in one process, as they pass under real pycaffe.

``test_draw`` renders every net prototxt of BVLC's ``models/`` and ``examples/`` (vendored
beside it) with pydot and Graphviz's ``dot``, as pycaffe's ``caffe.draw`` does. Neither is a
dependency of this project; without them real pycaffe fails that test too (its ``caffe.draw``
cannot even be imported), so here it must then fail with our message naming what it needs.

The files use ``assertEquals`` and ``assertRaisesRegexp``, aliases Python 3.12 removed from
unittest (there real pycaffe's run fails too): the run puts them back first where missing.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys

from support import ROOT

TESTS = ROOT / "tests" / "fixtures" / "pycaffe" / "bvlc_tests" / "python" / "caffe" / "test"
# `caffe-import run -m unittest ...` with unittest's pre-3.12 aliases, as BVLC's files need
_RUN = """
import sys, unittest
for old, new in (("assertEquals", "assertEqual"), ("assertRaisesRegexp", "assertRaisesRegex")):
    if not hasattr(unittest.TestCase, old):
        setattr(unittest.TestCase, old, getattr(unittest.TestCase, new))
from caffe_import.cli import main
sys.exit(main(["run", "-m", "unittest", "discover", "-s", sys.argv[1], "-t", sys.argv[1]]))
"""
_PROBLEM = re.compile(r"^(ERROR|FAIL): (\w+) \((\w+)\.", re.M)


def _can_draw() -> bool:
    pydot = importlib.util.find_spec("pydot") or importlib.util.find_spec("pydotplus")
    return pydot is not None and shutil.which("dot") is not None


def test_bvlc_pycaffe_tests_pass_unchanged(tmp_path):
    env = dict(os.environ, GLOG_minloglevel="2")  # as Caffe's tests run: no INFO lines
    done = subprocess.run([sys.executable, "-c", _RUN, str(TESTS)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    summary = re.search(r"^Ran (\d+) tests? in [\d.]+s\n\n(.+)$", out, re.M)
    assert summary and summary.group(1) == "52", out[-3000:]
    problems = _PROBLEM.findall(out)
    if _can_draw():
        assert summary.group(2) == "OK" and done.returncode == 0, out[-5000:]  # no skips
    else:  # as real pycaffe without pydot: only the drawing fails, saying what it needs
        assert problems == [("ERROR", "test_draw_net", "test_draw")], out[-5000:]
        assert summary.group(2) == "FAILED (errors=1)" and done.returncode == 1, out[-5000:]
        assert "caffe.draw needs pydot" in out
