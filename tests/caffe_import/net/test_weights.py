"""Weights by layer name: copied in (CopyTrainedLayersFrom), read out, shared with another
net (ShareTrainedLayersWith)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet, MissingWeightsWarning, strict_weights
from support.net_text import net_text

SHARED = net_text(
    'layer { name: "p1" type: "PReLU" bottom: "data" top: "p1" '
    'param { name: "slope" lr_mult: 2 } }',
    'layer { name: "p2" type: "PReLU" bottom: "data" top: "p2" param { name: "slope" } }',
    'layer { name: "p3" type: "PReLU" bottom: "data" top: "p3" param { lr_mult: 0 decay_mult: 3 } }')


@pytest.mark.filterwarnings("ignore::caffe_import.net.MissingWeightsWarning")
def test_weights_load_by_name_ignore_unknown_layers_and_round_trip(tmp_path):
    net = CaffeNet(SHARED)
    slope = np.arange(3, dtype=np.float32)
    net.load_weights({"p1": [slope], "not_in_net": [np.zeros(7, np.float32)]})
    assert np.array_equal(net.weights()["p2"][0], slope)  # shared: one blob
    path = tmp_path / "w.caffemodel"
    net.save_weights(path)
    again = CaffeNet(SHARED, weights=path)
    assert np.array_equal(again.weights()["p1"][0], slope)
    assert [p.name for p in tmp_path.iterdir()] == ["w.caffemodel"]


@pytest.mark.filterwarnings("ignore::caffe_import.net.MissingWeightsWarning")
def test_weight_blob_count_and_shape_mismatches_name_the_layer():
    net = CaffeNet(SHARED)
    with pytest.raises(CaffeFormatError, match="'p3'.*2 param blob.*has 1"):
        net.load_weights({"p3": [np.zeros(3, np.float32), np.zeros(3, np.float32)]})
    with pytest.raises(CaffeFormatError, match=r"'p3'.*\(4,\).*expects \(3,\)"):
        net.load_weights({"p3": [np.zeros(4, np.float32)]})


@pytest.mark.filterwarnings("ignore::caffe_import.net.MissingWeightsWarning")
def test_legacy_4d_weight_shapes_load_into_lower_rank_blobs():
    net = CaffeNet(SHARED)
    net.load_weights({"p3": [np.arange(3, dtype=np.float32).reshape(1, 1, 1, 3)]})
    assert net.params["p3"][0].tolist() == [0.0, 1.0, 2.0]


def test_a_net_shares_trained_layers_with_another_by_name():
    """Caffe's ShareTrainedLayersWith: a TEST net using its TRAIN net's storage, so what
    the train net learns the test net sees; the learnable records follow the storage."""
    train = CaffeNet(SHARED, phase="train")
    test = CaffeNet(SHARED.replace('"p3"', '"p4"'))
    test.share_trained_layers_with(train)
    assert test.params["p1"][0] is train.params["p1"][0]
    assert test.params["p2"][0] is train.params["p1"][0]  # p2 shares p1's by name already
    assert test.params["p4"][0] is not train.params["p3"][0]  # no layer p4 in train
    with torch.no_grad():
        train.params["p1"][0].fill_(0.5)
    assert test.weights()["p1"][0].tolist() == [0.5] * 3
    infos = {(i.layer, i.index): i.param for i in test.learnable_params()}
    assert infos[("p1", 0)] is train.params["p1"][0]


def test_sharing_needs_equal_blob_counts_and_shapes():
    train = CaffeNet(SHARED)
    other = CaffeNet(net_text('layer { name: "p1" type: "PReLU" bottom: "data" top: "p1" '
                              'prelu_param { channel_shared: true } }'))
    with pytest.raises(CaffeFormatError, match="'p1'.*Cannot share param 0"):
        other.share_trained_layers_with(train)


def test_layers_with_params_left_without_weights_are_named_in_a_warning(tmp_path):
    """Caffe's CopyTrainedLayersFrom skips a net layer the file does not name and keeps its
    initial values silently (a siftflow net on VOC weights: score_fr_sem all zeros); here a
    warning names them. p2 shares p1's blob by name, so it got weights with p1."""
    net = CaffeNet(SHARED)
    with pytest.warns(MissingWeightsWarning, match=r"1 layer\(s\).*: p3;.*--strict"):
        assert net.load_weights({"p1": [np.ones(3, np.float32)]}) == ["p3"]
    path = tmp_path / "w.caffemodel"
    CaffeNet(SHARED.replace('"p3"', '"other"')).save_weights(path)
    with pytest.warns(MissingWeightsWarning, match=f"in {path}.*: p3;"):
        CaffeNet(SHARED, weights=path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert CaffeNet(SHARED).load_weights({"p1": [np.ones(3)], "p3": [np.ones(3)]}) == []


def test_strict_loading_refuses_weights_that_leave_layers_without_values(tmp_path):
    path = tmp_path / "w.caffemodel"
    CaffeNet(SHARED.replace('"p3"', '"other"')).save_weights(path)
    with pytest.raises(CaffeFormatError, match=f"{path}: 1 layer.*no weights in this file: p3"):
        CaffeNet(SHARED, weights=path, strict=True)
    net = CaffeNet(SHARED)
    with strict_weights(), pytest.raises(CaffeFormatError, match="in the weights given: p3"):
        net.load_weights({"p1": [np.full(3, 7, np.float32)]})
    assert net.params["p1"][0].tolist() == [0.25] * 3  # its filler: refused before any copy
    with strict_weights(), pytest.warns(MissingWeightsWarning):
        net.load_weights({"p1": [np.ones(3)]}, strict=False)  # explicit beats the scope
