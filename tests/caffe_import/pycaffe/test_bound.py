"""caffe_import/pycaffe/bound.py and ``caffe-import run --fork``: a script's ``caffe`` bound to
one schema for that run only; no module-level state, so runs with different schemas (nested,
or in threads) do not see each other's."""
from __future__ import annotations

import sys
import threading

import pytest

import caffe_import.pycaffe as pycaffe
from caffe_import.cli import main
from caffe_import.io import read_net
from caffe_import.proto import caffe_pb2
from caffe_import.proto.schema import get_schema, schema_of
from caffe_import.pycaffe.bound import SchemaPb2, caffe_modules
from caffe_import.pycaffe.runner import run_script

NET = '''input: "data" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }
layer { name: "n" type: "Normalize" bottom: "data" top: "n"
        norm_param { across_spatial: false channel_shared: true } }
'''


def test_the_bound_package_reads_and_writes_with_its_schema():
    ssd = get_schema("ssd")
    modules = caffe_modules(ssd)
    caffe = modules["caffe"]
    assert caffe.Net.schema is ssd and pycaffe.Net.schema is None  # the library's is untouched
    assert issubclass(caffe.Net, pycaffe.Net) and caffe.Net.__name__ == "Net"
    assert caffe.Classifier.schema is ssd and caffe.Detector.schema is ssd
    assert issubclass(caffe.Classifier, caffe.Net) and issubclass(caffe.Detector, caffe.Net)
    assert caffe.SGDSolver.net_class is caffe.Net and caffe.SGDSolver.solver_type == "SGD"
    assert modules["caffe.pycaffe"] is caffe and caffe.proto is modules["caffe.proto"]
    pb2 = caffe.proto.caffe_pb2
    assert isinstance(pb2, SchemaPb2) and pb2.NetParameter is ssd.NetParameter
    assert pb2.NormalizeParameter.DESCRIPTOR.file.pool is ssd.pool
    assert (pb2.TRAIN, pb2.TEST, pb2.Phase.Name(1)) == (0, 1, "TEST")
    with pytest.raises(AttributeError):
        pb2.NoSuchParameter
    assert caffe_modules(get_schema("bvlc"))["caffe.proto.caffe_pb2"] is caffe_pb2


def test_a_fork_scripts_net_spec_writes_the_forks_fields():
    caffe = caffe_modules(get_schema("ssd"))["caffe"]
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2, 3, 3]))
    n.norm = L.Normalize(n.data, across_spatial=False)
    net = n.to_proto()
    assert schema_of(net).name == "ssd" and not net.layer[1].norm_param.across_spatial
    assert schema_of(caffe.net_spec.to_proto(n.norm)).name == "ssd"
    assert caffe.params.PriorBox.CENTER_SIZE == 2


def test_two_schemas_in_two_threads_each_read_with_their_own(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(NET)
    nets = {"ssd": caffe_modules(get_schema("ssd"))["caffe"].Net,
            "default": caffe_modules(get_schema())["caffe"].Net}
    seen: dict[str, set[str]] = {name: set() for name in nets}
    errors: list[BaseException] = []

    def build(name: str) -> None:
        try:
            for _ in range(3):
                net = nets[name](str(path), pycaffe.TEST)
                seen[name].add(schema_of(net.caffe_net.net_param).name)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(name,)) for name in nets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and seen == {"ssd": {"ssd"}, "default": {"default"}}
    assert schema_of(read_net(path)).name == "default"  # the library chooses by content


OUTER = '''import sys
import caffe
from caffe_import.pycaffe.runner import run_script
from caffe_import.proto.schema import get_schema
print("OUTER", caffe.Net.schema.name)
run_script(sys.argv[1], [], schema=get_schema("pspnet"))
import caffe as again
print("AFTER", again.Net.schema.name, caffe.proto.caffe_pb2.NetParameter is again.proto.caffe_pb2.NetParameter)
'''
INNER = '''import caffe
print("INNER", caffe.Net.schema.name)
'''


def test_a_nested_run_with_another_schema_does_not_leak_into_the_outer_one(tmp_path, capsys):
    (tmp_path / "outer.py").write_text(OUTER)
    (tmp_path / "inner.py").write_text(INNER)
    assert run_script(tmp_path / "outer.py", [str(tmp_path / "inner.py")],
                      schema=get_schema("ssd")) == 0
    assert capsys.readouterr().out.split("\n") == ["OUTER ssd", "INNER pspnet",
                                                   "AFTER ssd True", ""]
    assert "caffe" not in sys.modules and pycaffe.Net.schema is None


def test_run_fork_gives_the_script_a_net_spec_that_writes_fork_fields(tmp_path, capsys):
    script = tmp_path / "spec.py"
    script.write_text("import caffe\nfrom caffe import layers as L\nn = caffe.NetSpec()\n"
                      "n.data = L.Input(shape=dict(dim=[1, 2, 3, 3]))\n"
                      "n.norm = L.Normalize(n.data, across_spatial=False)\n"
                      "print(n.to_proto().layer[1].norm_param)\n")
    assert main(["run", "--fork", "ssd", str(script)]) == 0
    assert "across_spatial: false" in capsys.readouterr().out
    assert main(["run", str(script)]) == 2  # BVLC's net spec has no Normalize parameters
    assert "across_spatial" in capsys.readouterr().err


def test_a_bound_solver_reads_its_file_and_nets_with_the_schema(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Caffe opens the solver's net relative to the current folder
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt" base_lr: 0.1 '
                                              'lr_policy: "fixed" eval_type: "detection"')
    caffe = caffe_modules(get_schema("ssd"))["caffe"]
    solver = caffe.get_solver("solver.prototxt")
    assert isinstance(solver, caffe.SGDSolver) and isinstance(solver.net, caffe.Net)
    assert schema_of(solver.param).name == "ssd" and solver.param.eval_type == "detection"
    assert schema_of(solver.net.caffe_net.net_param).name == "ssd"
    assert schema_of(caffe.AdamSolver("solver.prototxt").net.caffe_net.net_param).name == "ssd"


def test_a_library_user_names_the_schema_of_one_net(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(NET)
    net = pycaffe.Net(str(path), pycaffe.TEST, schema=get_schema("ssd"))
    assert schema_of(net.caffe_net.net_param).name == "ssd" and pycaffe.Net.schema is None
    assert schema_of(pycaffe.Net(str(path), pycaffe.TEST).caffe_net.net_param).name == "default"
