"""The package's face (caffe_import/__init__.py, PEP 562): the public names and every
subpackage load on first attribute access, and dir() lists them, in a fresh interpreter where
nothing else has imported them yet."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from support import ROOT


def _fresh(code: str) -> object:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_subpackages_load_on_attribute_access():
    got = _fresh("import json, sys, caffe_import as ci\n"
                 "before = 'caffe_import.io' in sys.modules\n"
                 "names = [ci.io.read_net.__name__, ci.layers.__name__, ci.net.CaffeNet.__name__,\n"
                 "         ci.parity.__name__, ci.pycaffe.__name__, ci.solver.__name__]\n"
                 "print(json.dumps([before, names]))")
    assert got == [False, ["read_net", "caffe_import.layers", "CaffeNet", "caffe_import.parity",
                           "caffe_import.pycaffe", "caffe_import.solver"]]


def test_dir_lists_the_public_names_and_every_submodule():
    listed = set(_fresh("import json, caffe_import as ci; print(json.dumps(dir(ci)))"))
    public = {"read_net", "read_weights", "read_mean", "read_solver", "write_weights", "write_weights_h5",
              "CaffeNet", "load", "check_parity", "CaffeFormatError", "UsageError", "__version__"}
    subpackages = {"io", "layers", "net", "parity", "pycaffe", "proto", "forks", "solver", "convert",
                   "export", "inspect", "netspec", "coord_map", "precision"}
    assert public | subpackages <= listed
    assert not {"importlib", "pkgutil", "Any", "annotations"} & listed  # the module's own helpers


def test_an_unknown_name_is_an_attribute_error():
    import caffe_import as ci
    try:
        ci.no_such_thing
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("no AttributeError")
