"""Caffemodels written by the forks' own Caffe (tests/fixtures/forks, built from source): the
binary reader (caffe_import/io/binary.py read_weights_net) decodes every fork field exactly
with the fork named, and under the default mixture never decodes one wrongly (a field whose
number is contested is skipped, not misread)."""
from __future__ import annotations

import json

import pytest
from google.protobuf import text_format

from caffe_import.io import read_net, read_weights_net
from caffe_import.proto.schema import get_schema
from support import ROOT

FORKS = ROOT / "tests" / "fixtures" / "forks"
# fixture folder -> the shipped schema of the Caffe that wrote it
SCHEMAS = {"ssd": "ssd", "pspnet": "pspnet", "segnet": "segnet-cudnn5", "fast_rcnn": "fast-rcnn"}


def _cases():
    """Cases whose Caffe added schema fields: the folder's fork, or (``ports/``, BVLC with the
    ports' layer sources) the case's ``meta.json`` ``fork``."""
    index = json.loads((FORKS / "index.json").read_text())
    for key, info in index["forks"].items():
        for case in info["cases"]:
            d = FORKS / key / case
            fork = SCHEMAS.get(key) or json.loads((d / "meta.json").read_text()).get("fork")
            if fork not in (None, "bvlc") and (d / "weights.caffemodel").is_file():
                yield pytest.param(fork, key, case, id=f"{key}/{case}")


def _fork_fields(net, fork):
    """LayerParameter fields the fork adds, and BVLC ``*_param`` fields holding a field the fork
    adds (``ceil-mode``'s ``pooling_param.ceil_mode``)."""
    schema = get_schema(fork)
    for layer in net.layer:
        for fd, value in layer.ListFields():
            if schema.owner_of("LayerParameter", fd.name) != "bvlc" or (
                    fd.message_type is not None and not _repeated(fd) and any(
                        schema.owner_of(fd.message_type.name, sub.name) != "bvlc"
                        for sub, _ in value.ListFields())):
                yield layer.name, fd.name, value


def _repeated(fd) -> bool:
    flag = getattr(fd, "is_repeated", None)
    return bool(flag) if flag is not None else fd.label == fd.LABEL_REPEATED


def _no_wrong_field(decoded, truth) -> bool:
    """Every field ``decoded`` holds has the value the same field of ``truth`` has."""
    for fd, value in decoded.ListFields():
        if fd.name not in truth.DESCRIPTOR.fields_by_name:
            return False
        want = getattr(truth, fd.name)
        if fd.message_type is None:
            if (list(value) if _repeated(fd) else value) != (list(want) if _repeated(fd) else want):
                return False
        elif _repeated(fd):
            if len(value) > len(want) or not all(_no_wrong_field(v, w) for v, w in zip(value, want)):
                return False
        elif not _no_wrong_field(value, want):
            return False
    return True


@pytest.mark.parametrize("fork, key, case", list(_cases()))
def test_fork_fields_of_a_forks_own_caffemodel(fork, key, case):
    truth = read_net(FORKS / key / case / "net.prototxt", fork=fork)
    path = FORKS / key / case / "weights.caffemodel"
    named = {l.name: l for l in read_weights_net(path, fork=fork).layer}
    mixed = {l.name: l for l in read_weights_net(path).layer}
    checked = 0
    for name, field, value in _fork_fields(truth, fork):
        if name not in named:
            continue
        checked += 1
        assert text_format.MessageToString(getattr(named[name], field)) == \
            text_format.MessageToString(value), (name, field)
        got = mixed[name]
        if field in got.DESCRIPTOR.fields_by_name and got.HasField(field):
            assert _no_wrong_field(getattr(got, field), value), (name, field)
    assert checked
