"""fcn_repro's face (fcn_repro/__init__.py, PEP 562): every subpackage loads on first
attribute access and dir() lists them, in a fresh interpreter."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from support import ROOT


def test_subpackages_load_on_attribute_access_and_dir_lists_them():
    code = ("import json, sys, fcn_repro as f\n"
            "before = 'fcn_repro.zoo' in sys.modules\n"
            "print(json.dumps([before, 'voc-fcn8s' in f.zoo.names(), f.evaluate.evaluate.__name__,\n"
            "                  f.infer.infer.__name__, f.train.train_model.__name__, dir(f)]))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    before, found, *names, listed = json.loads(done.stdout)
    assert (before, found, names) == (False, True, ["evaluate", "infer", "train_model"])
    assert {"__version__", "zoo", "data", "evaluate", "infer", "train", "cli", "surgery"} <= set(listed)
    assert not {"importlib", "pkgutil", "Any"} & set(listed)
