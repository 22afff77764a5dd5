"""Every fixture made by a real fork of Caffe (``tests/fixtures/forks/index.json``; see that
folder's README for which forks built and how) passes ``check_parity``, through the API and the
``caffe-import parity`` command."""
from __future__ import annotations

import json

import pytest

from caffe_import.cli import main
from caffe_import.net import CaffeNet
from caffe_import.parity import check_parity
from caffe_import.proto.schema import canonical_fork
from support import ROOT

FORKS = ROOT / "tests" / "fixtures" / "forks"
INDEX = FORKS / "index.json"
CASES = json.loads(INDEX.read_text())["cases"] if INDEX.exists() else []


def case_files(case: str):
    d = FORKS / case
    meta = json.loads((d / "meta.json").read_text())
    fork = canonical_fork(meta.get("fork", case.split("/")[0]))
    return meta, fork, d / meta["net"], d / meta["weights"], d / meta["reference"]


@pytest.mark.parametrize("case", CASES)
def test_fork_case_matches_the_fork(case):
    meta, fork, net, weights, ref = case_files(case)
    built = CaffeNet(str(net), str(weights), phase=meta["phase"].lower(), fork=fork)
    report = check_parity(built, None, ref)
    assert report.ok, "\n" + report.table()
    assert set(meta["blobs"]) <= {r.name for r in report.rows if r.kind == "blob"}


@pytest.mark.parametrize("case", CASES)
def test_cli_parity_passes_the_fork_case(case, capsys):
    _, fork, net, weights, ref = case_files(case)
    assert main(["parity", str(net), str(weights), str(ref), "--fork", fork]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    n = int(last.split("/")[0])
    assert n > 0 and last == f"{n}/{n} blobs within tolerance"


def test_cli_parity_passes_segnet_bn_without_the_fork_named(capsys):
    # its 'bn_default_mode' layer sets no BN field: the weights' two blobs say SegNet's BN
    # (once an error asking for --fork: tests/caffe_import/net/test_build.py)
    d = FORKS / "segnet" / "layers_bn"
    assert main(["parity", str(d / "net.prototxt"), str(d / "weights.caffemodel"),
                 str(d / "reference.h5")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("blobs within tolerance")
