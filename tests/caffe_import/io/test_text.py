"""caffe_import/io/text.py: the schema a prototxt is read with is given once (``fork=``,
``proto=`` or a resolved ``schema=``) and the net read once (``parse_net``) is what
``CaffeNet`` builds from."""
from __future__ import annotations

import pytest

import caffe_import.io.text as text
from caffe_import.errors import CaffeFormatError, UsageError
from caffe_import.io import read_net, read_solver
from caffe_import.io.text import ParsedNet, parse_net
from caffe_import.net import CaffeNet
from caffe_import.proto.schema import get_schema, schema_of

NET = '''input: "data" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }
layer { name: "n" type: "Normalize" bottom: "data" top: "n"
        norm_param { across_spatial: false } }
'''


def test_read_net_takes_a_resolved_schema_as_fork_does():
    ssd = get_schema("ssd")
    by_schema, by_fork = read_net(NET, schema=ssd), read_net(NET, fork="ssd")
    assert schema_of(by_schema) is ssd and schema_of(by_fork) is ssd
    assert by_schema == by_fork
    assert schema_of(read_net(NET)).name == "default"  # nothing named: chosen by content
    with pytest.raises(UsageError, match="not both"):
        read_net(NET, schema=ssd, fork="ssd")


def test_read_solver_takes_a_resolved_schema():
    solver = read_solver('base_lr: 0.1 eval_type: "detection"', schema=get_schema("ssd"))
    assert schema_of(solver).name == "ssd" and solver.eval_type == "detection"


def test_parse_net_names_what_it_read_and_caffenet_builds_from_it_without_reading_again(
        tmp_path, monkeypatch):
    path = tmp_path / "net.prototxt"
    path.write_text(NET.replace("across_spatial: false", "across_spatial: false typo: 1"))
    parsed = parse_net(path, schema=get_schema("ssd"))
    assert isinstance(parsed, ParsedNet) and parsed.schema is get_schema("ssd")
    assert parsed.path == str(path) and [u.name for u in parsed.unknown] == ["typo"]
    clean = parse_net(NET, schema=get_schema("ssd"))
    monkeypatch.setattr(text, "load_text", lambda *a: pytest.fail("read the file again"))
    with pytest.raises(CaffeFormatError, match="typo") as info:  # the skipped field is
        CaffeNet(parsed)  # still reported, naming the file
    assert str(path) in str(info.value)
    assert schema_of(CaffeNet(clean).net_param).name == "ssd"
