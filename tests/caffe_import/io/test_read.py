"""Every fixture file reads to exactly the arrays real Caffe holds."""
from __future__ import annotations

import glob
import urllib.parse
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import FIXTURES, PACKAGE_CASES, case_dir

from caffe_import import read_net, read_solver, read_weights
from caffe_import.io import detect, read_weights_net
from caffe_import.proto import caffe_pb2

CAFFEMODELS = sorted(glob.glob(str(FIXTURES / "*" / "*.caffemodel"))
                     + glob.glob(str(PACKAGE_CASES / "*" / "*.caffemodel")))
PROTOTXTS = sorted(p for p in glob.glob(str(FIXTURES / "*" / "*.prototxt"))
                   + glob.glob(str(PACKAGE_CASES / "*" / "*.prototxt"))
                   if not p.endswith("solver.prototxt"))


def _ids(paths):
    return ["/".join(Path(p).parts[-2:]) for p in paths]


def reference_params(case: str) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    with h5py.File(case_dir(case) / "reference.h5", "r") as f:
        for key, group in f["params"].items():
            out[urllib.parse.unquote(key)] = [group[str(i)][()] for i in range(len(group))]
    return out


def protobuf_weights(path) -> dict[str, list[np.ndarray]]:
    """The slow, obviously-right way: the protobuf library parses the whole file."""
    net = caffe_pb2.NetParameter.FromString(Path(path).read_bytes())
    out = {}
    layers = [(l.name, l.blobs) for l in net.layer] or [(l.name, l.blobs) for l in net.layers]
    for name, blobs in layers:
        arrays = []
        for b in blobs:
            legacy = any(b.HasField(f) for f in ("num", "channels", "height", "width"))
            shape = (b.num, b.channels, b.height, b.width) if legacy else tuple(b.shape.dim)
            values = b.double_data if len(b.double_data) else b.data
            arrays.append(np.asarray(values, dtype=np.float32).reshape(shape))
        if arrays:
            out[name] = arrays
    return out


def assert_same_weights(ours, expected):
    assert list(ours) == list(expected)
    for name in expected:
        assert len(ours[name]) == len(expected[name]), name
        for a, b in zip(ours[name], expected[name]):
            assert a.dtype == np.float32 and a.flags.c_contiguous
            assert a.shape == b.shape, name
            assert np.array_equal(a, b), name


@pytest.mark.parametrize("path", CAFFEMODELS, ids=_ids(CAFFEMODELS))
def test_caffemodel_reads_as_protobuf_parses_it(path):
    assert detect(path) == "caffemodel"
    assert_same_weights(read_weights(path), protobuf_weights(path))


def test_v1_caffemodel_gives_caffes_params_with_legacy_shapes():
    ours = read_weights(case_dir("format_v1_vgg16_classifier") / "weights.caffemodel")
    ref = reference_params("format_v1_vgg16_classifier")
    assert set(ours) == set(ref)
    for name, blobs in ref.items():
        for a, b in zip(ours[name], blobs):
            assert a.ndim == 4  # legacy num/channels/height/width, kept as stored
            assert np.array_equal(a.reshape(b.shape), b)
    assert ours["fc6"][0].shape == (1, 1, 256, 32) and ours["fc6"][1].shape == (1, 1, 1, 256)


def test_hdf5_weights_give_caffes_params():
    path = case_dir("format_hdf5_fcn16s") / "weights.caffemodel.h5"
    assert detect(path) == "hdf5"
    ours = read_weights(path)
    ref = reference_params("format_hdf5_fcn16s")
    assert set(ours) == set(ref)
    for name, blobs in ref.items():
        for a, b in zip(ours[name], blobs):
            assert a.dtype == np.float32 and a.shape == b.shape
            assert np.array_equal(a, b)


def test_fcn8s_weights_give_the_nets_param_layers_in_order():
    w = read_weights(case_dir("voc_fcn8s_narrow") / "weights.caffemodel")
    net = read_net(case_dir("voc_fcn8s_narrow") / "net.prototxt")
    with_params = [l.name for l in net.layer if l.name in w]
    assert list(w) == with_params
    assert "upscore2" in w and len(w["conv1_1"]) == 2


@pytest.mark.parametrize("path", PROTOTXTS, ids=_ids(PROTOTXTS))
def test_every_fixture_prototxt_reads_to_current_form(path):
    net = read_net(path)
    assert len(net.layers) == 0 and len(net.input) == 0 and len(net.input_dim) == 0
    assert all(layer.type for layer in net.layer)
    assert detect(path) == "prototxt"


def test_read_net_accepts_path_str_and_text():
    path = case_dir("layers_conv") / "net.prototxt"
    assert read_net(path) == read_net(str(path)) == read_net(path.read_text())


def test_weights_net_is_the_stored_structure_without_data():
    net = read_weights_net(case_dir("voc_fcn32s_narrow") / "weights.caffemodel")
    assert all(len(l.blobs) == 0 for l in net.layer)
    assert [l.name for l in net.layer if l.type == "Convolution"][:2] == ["conv1_1", "conv1_2"]


def test_v1_caffemodel_structure_is_upgraded():
    net = read_weights_net(case_dir("format_v1_vgg16_classifier") / "weights.caffemodel")
    assert len(net.layers) == 0
    types = {l.name: l.type for l in net.layer}
    assert types["conv1_1"] == "Convolution" and types["fc6"] == "InnerProduct"
    conv = next(l for l in net.layer if l.name == "conv1_1")
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]


def test_solver_reads_and_defaults_snapshot_prefix_like_caffe():
    path = case_dir("solver_fcn32s_narrow") / "solver.prototxt"
    solver = read_solver(path)
    assert solver.type == "SGD" and solver.lr_policy == "step"
    assert solver.snapshot_prefix == str(path)[: -len(".prototxt")]


def test_blobs_are_writable_copy_on_write_views_by_default(tmp_path):
    src = case_dir("voc_fcn32s_narrow") / "weights.caffemodel"
    path = tmp_path / "w.caffemodel"
    path.write_bytes(src.read_bytes())
    w = read_weights(path)
    conv = w["conv1_1"][0]
    assert not conv.flags.owndata and conv.flags.writeable
    before = conv.copy()
    conv[...] = 7.0  # changes the array, never the file
    assert path.read_bytes() == src.read_bytes()
    assert np.array_equal(read_weights(path)["conv1_1"][0], before)


def test_copy_true_gives_independent_aligned_arrays():
    w = read_weights(case_dir("voc_fcn32s_narrow") / "weights.caffemodel", copy=True)
    for blobs in w.values():
        for a in blobs:
            assert a.flags.aligned and a.flags.writeable and a.flags.c_contiguous
            assert a.base is None or a.base.flags.owndata


def test_replacing_the_file_keeps_live_views_intact(tmp_path):
    from caffe_import import write_weights

    path = tmp_path / "w.caffemodel"
    path.write_bytes((case_dir("voc_fcn32s_narrow") / "weights.caffemodel").read_bytes())
    w = read_weights(path)
    expected = w["fc6"][0].copy()
    write_weights(path, None, {"fc6": [np.zeros_like(expected)]})  # atomic replace
    assert np.array_equal(w["fc6"][0], expected)
    assert not read_weights(path)["fc6"][0].any()
