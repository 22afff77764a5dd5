"""Writing weights: Caffe's own bytes given the net Caffe wrote the file from, the same layers
less Caffe's inserted Split layers from a prototxt, round trips, atomic output."""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from google.protobuf import text_format
from support import FIXTURES, PACKAGE_CASES, case_dir

from caffe_import import CaffeFormatError, read_mean, read_weights, write_weights, write_weights_h5
from caffe_import.io import read_net, read_weights_net
from caffe_import.proto import caffe_pb2
from caffe_import.proto.schema import schema_of
from support.fork_nets import FORK_NETS

CAFFEMODELS = sorted(glob.glob(str(FIXTURES / "*" / "*.caffemodel"))
                     + glob.glob(str(PACKAGE_CASES / "*" / "*.caffemodel")))
FORK_DEPLOY = FIXTURES.parent / "forks" / "deploy"
IDS = ["/".join(Path(p).parts[-2:]) for p in CAFFEMODELS]


def assert_identical(a, b):
    assert list(a) == list(b)
    for name in a:
        assert len(a[name]) == len(b[name])
        for x, y in zip(a[name], b[name]):
            assert x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y), name


@pytest.mark.parametrize("path", CAFFEMODELS, ids=IDS)
def test_binary_round_trip(path, tmp_path):
    weights = read_weights(path)
    out = tmp_path / "out.caffemodel"
    write_weights(out, read_weights_net(path), weights)
    assert_identical(read_weights(out), weights)


@pytest.mark.parametrize("path", CAFFEMODELS, ids=IDS)
def test_hdf5_round_trip(path, tmp_path):
    weights = read_weights(path)
    out = tmp_path / "out.caffemodel.h5"
    write_weights_h5(out, read_weights_net(path), weights)
    back = read_weights(out)
    assert set(back) == set(weights)
    for name in weights:
        for x, y in zip(back[name], weights[name]):
            assert x.shape == y.shape and np.array_equal(x, y)


@pytest.mark.parametrize("path", [p for p in CAFFEMODELS if "format_v1" not in p],
                         ids=[i for i in IDS if "format_v1" not in i])
def test_rewriting_a_caffe_file_gives_caffes_bytes(path, tmp_path):
    """With the stored net as template, our bytes are the very bytes Caffe wrote."""
    net = caffe_pb2.NetParameter.FromString(Path(path).read_bytes())
    out = tmp_path / "out.caffemodel"
    write_weights(out, net, read_weights(path))
    assert out.read_bytes() == Path(path).read_bytes()


def test_hdf5_fixture_round_trips_through_both_writers(tmp_path):
    src = case_dir("format_hdf5_fcn16s") / "weights.caffemodel.h5"
    weights = read_weights(src)
    write_weights(tmp_path / "a.caffemodel", None, weights)
    write_weights_h5(tmp_path / "b.caffemodel.h5", None, weights)
    assert_identical(read_weights(tmp_path / "a.caffemodel"), weights)
    back = read_weights(tmp_path / "b.caffemodel.h5")
    assert {k: [a.tolist() for a in v] for k, v in back.items()} == \
        {k: [a.tolist() for a in v] for k, v in weights.items()}


def test_h5_layout_is_caffes(tmp_path):
    net = caffe_pb2.NetParameter()
    net.layer.add(name="conv", type="Convolution")
    net.layer.add(name="relu", type="ReLU")
    out = tmp_path / "w.caffemodel.h5"
    write_weights_h5(out, net, {"conv": [np.ones((2, 1, 3, 3)), np.zeros(2)]})
    with h5py.File(out, "r") as f:
        assert set(f["data"]) == {"conv", "relu"}  # a group for every layer, as Net::ToHDF5
        assert f["data/conv/0"].dtype == np.float32 and f["data/conv/0"].shape == (2, 1, 3, 3)
        assert len(f["data/relu"]) == 0


def test_written_net_structure_is_the_template(tmp_path):
    net = caffe_pb2.NetParameter(name="n")
    conv = net.layer.add(name="conv", type="Convolution", bottom=["data"], top=["conv"])
    conv.convolution_param.num_output = 2
    out = tmp_path / "w.caffemodel"
    write_weights(out, net, {"conv": [np.arange(6, dtype=np.float64).reshape(2, 3)],
                             "extra": [np.float32(1.5)]})
    parsed = caffe_pb2.NetParameter.FromString(out.read_bytes())
    assert parsed.name == "n"
    assert [l.name for l in parsed.layer] == ["conv", "extra"]
    assert parsed.layer[0].convolution_param.num_output == 2
    assert list(parsed.layer[0].blobs[0].shape.dim) == [2, 3]
    assert list(parsed.layer[0].blobs[0].data) == [0, 1, 2, 3, 4, 5]
    assert not parsed.layer[1].blobs[0].HasField("shape")  # 0-axis blob, as Caffe writes it
    assert read_weights(out)["extra"][0].shape == ()


def test_torch_tensors_are_accepted(tmp_path):
    torch = pytest.importorskip("torch")
    out = tmp_path / "w.caffemodel"
    write_weights(out, None, {"a": [torch.nn.Parameter(torch.ones(2, 2))]})
    assert np.array_equal(read_weights(out)["a"][0], np.ones((2, 2), np.float32))


def test_interrupted_write_leaves_the_old_file(tmp_path):
    out = tmp_path / "w.caffemodel"
    out.write_bytes(b"old")

    class Boom:
        def __array__(self, *args, **kwargs):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_weights(out, None, {"a": [np.ones(3)], "b": [Boom()]})
    assert out.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["w.caffemodel"]


def test_non_numeric_blob_is_refused(tmp_path):
    with pytest.raises(CaffeFormatError, match="layer 'a'"):
        write_weights(tmp_path / "w.caffemodel", None, {"a": [np.array(["x"])]})


def test_mean_binaryproto_reads_to_caffes_array():
    case = case_dir("format_mean_binaryproto")
    mean = read_mean(case / "mean.binaryproto")
    with h5py.File(case / "reference.h5", "r") as f:
        ref = f["mean"][()]
    assert mean.dtype == np.float32 and mean.shape == (1, 3, 11, 13)
    assert np.array_equal(mean.reshape(ref.shape), ref)


def test_mean_with_double_data_and_unpacked_floats(tmp_path):
    blob = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=2)
    blob.double_data.extend([1.0, 2.0, 3.0, 4.5])
    (tmp_path / "d.binaryproto").write_bytes(blob.SerializeToString())
    assert read_mean(tmp_path / "d.binaryproto").tolist() == [[[[1, 2]], [[3, 4.5]]]]


# deploy nets whose fork fields are one fork's (read without naming it: the default mixture)
ONE_FORK = ["ssd300_vgg16", "mobilenet_ssd", "pspnet50_ade20k", "faster_rcnn_zf",
            "shufflenet_g3", "densenet121", "yolov2_reorg"]


@pytest.mark.parametrize("family", ONE_FORK)
def test_a_net_whose_fields_are_one_forks_is_written_with_that_forks_numbers(family, tmp_path):
    net = next(n for n in FORK_NETS if n.family == family)
    param = read_net(net.path)
    assert schema_of(param).name == "default"
    path = tmp_path / "net.caffemodel"
    write_weights(path, param, {param.layer[-1].name: [np.ones(2, np.float32)]})
    back = read_weights_net(path, fork=net.fork)  # what the fork's own Caffe reads
    mine = read_net(net.path, fork=net.fork)
    assert [text_format.MessageToString(l) for l in back.layer if l.type != "Input"] == [
        text_format.MessageToString(l) for l in mine.layer if l.type != "Input"]


def test_fields_of_forks_that_number_them_alike_are_written_with_that_number(tmp_path):
    # bn_mode is SegNet's; both SegNet forks number bn_param 45
    param = read_net('layer { name: "b" type: "BN" bottom: "x" top: "y" '
                     'bn_param { bn_mode: INFERENCE } }')
    write_weights(tmp_path / "m.caffemodel", param, {})
    for fork in ("segnet", "segnet-cudnn5"):
        layer = read_weights_net(tmp_path / "m.caffemodel", fork=fork).layer[0]
        assert layer.bn_param.bn_mode == 1


def test_fields_of_forks_that_number_them_differently_need_the_fork_named(tmp_path):
    text = (FORK_DEPLOY / "segnet" / "deploy.prototxt").read_text()
    param = read_net(text)
    with pytest.raises(CaffeFormatError, match=r"dense_image_data_param.*46 in segnet-cudnn5.*"
                       r"138 in segnet.*fit forks segnet, segnet-cudnn5.*--fork NAME"):
        write_weights(tmp_path / "m.caffemodel", param, {})
    write_weights(tmp_path / "m.caffemodel", read_net(text, fork="segnet"), {})


SPLIT_CASES = ["voc_fcn8s_atonce_narrow", "siftflow_fcn16s_narrow", "voc_fcn16s_narrow", "layers_eltwise"]


def _inserted(layer) -> bool:
    """A Split layer of Caffe's InsertSplits (named ``<layer>_<blob>_<i>_split``, tops
    ``..._split_<k>``), not one the prototxt declares."""
    return (layer.type == "Split" and layer.name.endswith("_split")
            and all(re.fullmatch(re.escape(layer.name) + r"_\d+", t) for t in layer.top))


def _without_splits(net_param):
    """Caffe's file as a net read from its prototxt writes it: the Split layers Caffe's
    InsertSplits added left out, their readers' bottoms back on the blob split."""
    source = {t: l.bottom[0] for l in net_param.layer if _inserted(l) for t in l.top}
    layers = []
    for layer in net_param.layer:
        if not _inserted(layer):
            copy = caffe_pb2.LayerParameter()
            copy.CopyFrom(layer)
            copy.bottom[:] = [source.get(b, b) for b in layer.bottom]
            layers.append(copy)
    return layers


@pytest.mark.parametrize("case", SPLIT_CASES)
def test_a_net_from_its_prototxt_writes_caffes_layers_without_the_split_layers(case, tmp_path):
    """What README states: a CaffeNet built from the prototxt (``save_weights``, ``convert -o
    x.caffemodel``) writes every layer of Caffe's own file with the same fields and the same
    param bytes, but not the Split layers Caffe inserts where a blob has several readers
    (voc_fcn8s_atonce_narrow: 56 layers -> 51; a Split the prototxt declares, as in
    layers_eltwise, is kept); Caffe reads both to the same net. Given the
    file's own layer list (test above) the bytes are Caffe's."""
    from caffe_import.net import CaffeNet
    d = case_dir(case)
    caffe = caffe_pb2.NetParameter.FromString((d / "weights.caffemodel").read_bytes())
    out = tmp_path / "out.caffemodel"
    CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel")).save_weights(out)
    ours = caffe_pb2.NetParameter.FromString(out.read_bytes())
    splits = sum(_inserted(l) for l in caffe.layer)
    assert splits and len(ours.layer) == len(caffe.layer) - splits
    assert list(ours.layer) == _without_splits(caffe)  # fields and blobs alike
    if case == "voc_fcn8s_atonce_narrow":
        assert (len(caffe.layer), len(ours.layer)) == (56, 51)
    assert_identical(read_weights(out), read_weights(d / "weights.caffemodel"))  # same weights


def test_readme_states_what_the_caffemodel_writer_keeps():
    """The writer's row in README says exactly what the two tests above hold."""
    from support import ROOT
    row = next(l for l in (ROOT / "README.md").read_text().splitlines()
               if l.startswith("| `write_weights(path, net, weights)`"))
    assert "byte-identical to Caffe's own file when `net` is the net Caffe wrote it from" in row
    assert "Split layers Caffe inserts" in row and "are not written" in row
