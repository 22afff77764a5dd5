"""The check against the CaffeNet: a faithful module passes, a changed weight is named."""
from __future__ import annotations

import pytest

from caffe_import.codegen import check, generate, verify
from caffe_import.codegen.write import checking_inputs
from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet
from support import case_dir


@pytest.fixture(scope="module")
def train_net():
    d = case_dir("train_fcn8s_narrow")
    return CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel"), phase="train")


def test_a_faithful_module_passes_outputs_and_gradients(train_net):
    gen = generate(train_net)
    assert verify(gen, train_net, checking_inputs(train_net)) == []


def test_a_changed_weight_is_named(train_net):
    gen = generate(train_net)
    gen.state["score_fr.weight"] = gen.state["score_fr.weight"] * 1.5
    with pytest.raises(CaffeFormatError, match=r"differs from the CaffeNet: loss: rel_l2"):
        check(gen, train_net, checking_inputs(train_net))


def test_labels_are_made_valid(train_net):
    feed = checking_inputs(train_net)
    label = feed["label"]
    assert label.min() >= 0 and label.max() < 21 and (label == label.trunc()).all()


def test_a_train_net_with_dropout_is_checked_without_its_masks():
    d = case_dir("voc_fcn32s_narrow")
    net = CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel"), phase="train")
    gen = generate(net)
    assert "nn.Dropout(0.5)" in gen.source
    assert verify(gen, net, checking_inputs(net)) == []
    assert [m.ratio for m in net.layers if type(m).__name__ == "Dropout"] == [0.5, 0.5]


def test_unscaled_dropout_is_checked_in_both_phases():
    text = ('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 8 } } }'
            'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" inner_product_param {'
            ' num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }'
            'layer { name: "d" type: "Dropout" bottom: "ip" top: "d" dropout_param {'
            ' dropout_ratio: 0.25 scale_train: false } }'
            'layer { name: "loss" type: "EuclideanLoss" bottom: "d" bottom: "x2" top: "loss" }')
    text = text.replace('top: "x" input_param { shape { dim: 2 dim: 8 } }',
                        'top: "x" top: "x2" input_param { shape { dim: 2 dim: 8 } '
                        'shape { dim: 2 dim: 3 } }')
    for phase in ("test", "train"):
        net = CaffeNet(text, phase=phase, fork="fast-rcnn")
        gen = generate(net)
        assert "* (1 - self.d.p)  # scale_train: false" in gen.source
        assert verify(gen, net, checking_inputs(net)) == [], phase
