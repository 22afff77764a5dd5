"""caffe_import.pycaffe.runner and `caffe-import run`: a script runs as python runs it, with
`import caffe` answered by caffe_import.pycaffe only while it runs."""
from __future__ import annotations

import json
import os
import sys
import types

import numpy as np

import pytest

from caffe_import.cli import main
from caffe_import.pycaffe.runner import run_module, run_script

SCRIPT = '''
import json, os, sys
import caffe
import caffe.io
from caffe.proto import caffe_pb2
from caffe import layers as L, params as P
import caffe.net_spec, caffe.coord_map
n = caffe.NetSpec()
n.data = L.Input(shape=dict(dim=[1, 3, 4, 4]))
n.conv = L.Convolution(n.data, num_output=2, kernel_size=3)
info = dict(name=__name__, argv=sys.argv, path0=sys.path[0], cwd=os.getcwd(),
            caffe=caffe.__name__, pb2=caffe_pb2.__name__, io=caffe.io.__name__,
            test=caffe.TEST, pool_max=P.Pooling.MAX, layers=len(n.to_proto().layer))
with open(sys.argv[1], "w") as f:
    json.dump(info, f)
sys.exit(int(sys.argv[2]))
'''


def test_run_script_like_python(tmp_path, monkeypatch):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "s.py").write_text(SCRIPT)
    out = tmp_path / "out.json"
    monkeypatch.chdir(tmp_path)
    fake = types.ModuleType("caffe")  # a "real" caffe the caller had imported
    monkeypatch.setitem(sys.modules, "caffe", fake)
    path_before = list(sys.path)
    assert run_script(str(folder / "s.py"), [str(out), "0"]) == 0
    info = json.loads(out.read_text())
    assert info["name"] == "__main__"
    assert info["argv"] == [str(folder / "s.py"), str(out), "0"]
    assert info["path0"] == str(folder) and info["cwd"] == str(tmp_path)
    assert info["caffe"] == "caffe_import.pycaffe"
    assert info["pb2"] == "caffe_import.proto.caffe_pb2"
    assert info["io"] == "caffe_import.pycaffe.io"
    assert (info["test"], info["pool_max"], info["layers"]) == (1, 0, 2)
    assert sys.modules["caffe"] is fake and sys.path == path_before  # all undone
    assert "caffe.io" not in sys.modules


def test_cli_run_exit_status_and_errors(tmp_path):
    (tmp_path / "s.py").write_text(SCRIPT)
    assert main(["run", str(tmp_path / "s.py"), str(tmp_path / "o.json"), "3"]) == 3
    assert "caffe" not in sys.modules or sys.modules["caffe"].__name__ != "caffe_import.pycaffe"
    assert main(["run", str(tmp_path / "missing.py")]) == 2
    (tmp_path / "bad.py").write_text("1 / 0\n")
    with pytest.raises(ZeroDivisionError):  # the script's own error, as python shows it
        run_script(str(tmp_path / "bad.py"))


def test_no_top_level_caffe_package_is_installed():
    import importlib.util

    spec = importlib.util.find_spec("caffe")
    assert spec is None or "caffe_import" not in (spec.origin or "")
    assert not os.path.exists(os.path.join(os.path.dirname(os.path.dirname(
        __import__("caffe_import").__file__)), "caffe"))


INIT_PARITY = '''
import sys
import numpy as np
import caffe
# the attributes BVLC's python/caffe/__init__.py leaves on the package
for name in ("Net", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
             "AdaDeltaSolver", "AdamSolver", "NCCL", "Timer", "init_log", "log",
             "set_mode_cpu", "set_mode_gpu", "set_device", "Layer", "get_solver",
             "layer_type_list", "set_random_seed", "solver_count", "set_solver_count",
             "solver_rank", "set_solver_rank", "set_multiprocess", "has_nccl", "__version__",
             "TRAIN", "TEST", "Classifier", "Detector", "io", "layers", "params", "NetSpec",
             "to_proto", "proto", "pycaffe", "_caffe", "classifier", "detector", "net_spec"):
    assert hasattr(caffe, name), name
assert caffe.proto.caffe_pb2.BlobProto is caffe.io.caffe_pb2.BlobProto
assert caffe.pycaffe.Net is caffe.Net and caffe.pycaffe.SGDSolver is caffe.SGDSolver
import caffe.proto.caffe_pb2
from caffe.proto import caffe_pb2
import caffe.io, caffe.net_spec, caffe.classifier, caffe.detector, caffe.pycaffe
assert caffe.classifier.Classifier is caffe.Classifier
assert caffe.detector.Detector is caffe.Detector
assert caffe.net_spec.NetSpec is caffe.NetSpec
# the mean-file idiom
blob = caffe.proto.caffe_pb2.BlobProto()
blob.ParseFromString(open(sys.argv[1], 'rb').read())
arr = caffe.io.blobproto_to_array(blob)
np.save(sys.argv[2], arr)
t = caffe.Timer()
t.start(); t.stop()
assert t.ms >= 0 and caffe.solver_count() == 1 and not caffe.has_nccl()
caffe.set_solver_count(1); caffe.set_solver_rank(0); caffe.set_multiprocess(False)
'''


def test_import_caffe_exposes_what_pycaffe_init_does(tmp_path):
    """`import caffe` binds what BVLC's caffe/__init__.py binds (caffe.proto, caffe.pycaffe,
    ...), so the mean-file idiom `caffe.proto.caffe_pb2.BlobProto()` works unchanged."""
    from caffe_import.proto import caffe_pb2

    mean = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    blob = caffe_pb2.BlobProto(num=1, channels=2, height=3, width=4)
    blob.data.extend(mean.ravel().tolist())
    (tmp_path / "mean.binaryproto").write_bytes(blob.SerializeToString())
    (tmp_path / "s.py").write_text(INIT_PARITY)
    out = tmp_path / "mean.npy"
    assert run_script(str(tmp_path / "s.py"), [str(tmp_path / "mean.binaryproto"),
                                                str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), mean)


def test_multi_gpu_entry_points_refuse_clearly():
    from caffe_import import pycaffe as caffe

    with pytest.raises(NotImplementedError, match="multi-GPU"):
        caffe.NCCL(None, "uid")
    with pytest.raises(NotImplementedError, match="multi-GPU"):
        caffe.set_solver_count(2)


def test_run_module_like_python_dash_m(tmp_path, monkeypatch):
    """``caffe-import run -m MODULE ARGS`` as ``python -m``: __main__, argv[0] its file, the
    current directory first on the path; caffe aliased only while it runs."""
    (tmp_path / "mod_t.py").write_text(SCRIPT)
    out = tmp_path / "out.json"
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    assert run_module("mod_t", [str(out), "0"]) == 0
    info = json.loads(out.read_text())
    assert info["name"] == "__main__" and info["caffe"] == "caffe_import.pycaffe"
    assert info["argv"] == [str(tmp_path / "mod_t.py"), str(out), "0"]
    assert info["path0"] == str(tmp_path)
    assert sys.path == path_before and "caffe" not in sys.modules
    sys.modules.pop("mod_t", None)
    assert main(["run", "-m", "mod_t", str(out), "4"]) == 4
    sys.modules.pop("mod_t", None)


def test_cli_run_dash_m_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-m", "no_such_module_t"]) == 2
    assert "run -m: no module named 'no_such_module_t'" in capsys.readouterr().err
    (tmp_path / "bad_t.py").write_text("import caffe\nraise KeyError('x')\n")
    assert main(["run", "-m", "bad_t"]) == 1
    err = capsys.readouterr().err
    assert "KeyError: 'x'" in err and "caffe_import" not in err
    sys.modules.pop("bad_t", None)


def test_layer_type_list_names_the_registry():
    from caffe_import import pycaffe as caffe
    from caffe_import.layers import registry

    types = caffe.layer_type_list()
    assert {"Data", "Convolution", "InnerProduct", "Python"} <= set(types)
    assert types == registry.known_types()
