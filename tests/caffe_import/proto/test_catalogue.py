"""The fork catalogue: every unit under caffe_import/forks is found, its compiled delta is
fresh, and the order, names and tables the package reads are derived from the entries
(caffe_import/proto/catalogue.py)."""
from __future__ import annotations

import ast
import hashlib
import importlib

import pytest

from caffe_import.errors import UsageError
from caffe_import.proto import catalogue
from caffe_import.proto.catalogue import (DEFAULT_ORDER, FORKS, canonical_fork, delta,
                                          fork_names, package_of, param_types)
from support import ROOT

UNITS = ROOT / "caffe_import" / "forks"


def test_shipped_deltas_match_their_proto_files():
    for proto in UNITS.glob("*/delta.proto"):
        module = importlib.import_module(f"caffe_import.forks.{proto.parent.name}.delta_pb")
        assert module.SOURCE_SHA256 == hashlib.sha256(proto.read_bytes()).hexdigest(), (
            f"{proto.parent.name}/delta_pb.py is stale: run tools/gen_proto.py")
    assert sorted(p.parent.name for p in UNITS.glob("*/delta.proto")) == sorted(
        package_of(name).rsplit(".", 1)[1] for name in FORKS)


def test_every_unit_is_found_and_the_default_order_follows_the_ranks():
    assert set(FORKS) == {"ssd", "pspnet", "deeplab", "deeplab-v1", "segnet", "segnet-cudnn5",
                          "fast-rcnn", "yolo", "yolov2", "shufflenet", "ceil-mode"}
    assert DEFAULT_ORDER == ("ssd", "pspnet", "deeplab", "deeplab-v1", "segnet",
                             "segnet-cudnn5", "fast-rcnn", "yolo", "yolov2", "shufflenet",
                             "ceil-mode")
    assert [FORKS[f].rank for f in DEFAULT_ORDER] == sorted(FORKS[f].rank for f in FORKS)
    assert fork_names() == list(DEFAULT_ORDER)
    for name in FORKS:
        assert delta(name).package == "caffe." + name.replace("-", "_")


def test_unit_entries_import_nothing_but_the_record():
    """The catalogue imports every unit's __init__ to find it: an entry stays light."""
    for init in UNITS.glob("*/__init__.py"):
        imports = [n for n in ast.walk(ast.parse(init.read_text()))
                   if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert all(isinstance(n, ast.ImportFrom) and n.level == 2 and n.module is None
                   and [a.name for a in n.names] == ["Fork"] for n in imports), init


@pytest.mark.parametrize("name, canonical", [
    ("SSD", "ssd"), ("faster_rcnn", "fast-rcnn"), ("deeplabv2", "deeplab"), ("caffe", "bvlc"),
    ("all", "default"), ("ResNeXt", "ceil-mode"), ("yolov4", "yolo"),
])
def test_names_and_aliases_are_canonical(name, canonical):
    assert canonical_fork(name) == canonical


def test_unknown_fork_names_the_known_ones():
    with pytest.raises(UsageError, match="unknown Caffe fork 'nope'; known: bvlc, ssd, pspnet"):
        canonical_fork("nope")


def test_param_types_join_bvlcs_table_and_the_forks_entries():
    assert param_types("bn_param") == ("BN",)
    assert param_types("roi_pooling_param") == ("ROIPooling",)
    assert param_types("recurrent_param") == ("Recurrent", "RNN", "LSTM")
    assert param_types("interp_param") == ("Interp",)
    assert param_types("dense_crf_param") == ("DenseCRF",)
    assert param_types("name") == ()
    assert catalogue.V1_TYPE_NAMES == {"DENSE_CRF": "DenseCRF", "ONEHOT": "OneHot"}
    assert catalogue.forks_defining("BN") == ["pspnet", "segnet", "segnet-cudnn5"]
