"""evaluate_net as the one loop: shards add up to the whole split, label-fed nets report their
loss, heads may carry their class count, and the net comes back in the mode it went in."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("caffe_import.net")

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        loss_param { ignore_label: 255 normalize: false } }
"""


class Toy:
    score_heads = {"score": None}
    num_classes = {None: 3}

    def __init__(self, n: int = 5) -> None:
        rng = np.random.default_rng(0)
        self.items = []
        for _ in range(n):
            img = torch.from_numpy(rng.standard_normal((3, 8, 8)).astype(np.float32))
            lab = torch.from_numpy(rng.integers(0, 3, (8, 8)))
            lab[0, :2] = 255
            self.items.append((img, lab))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def tiny(phase: str = "train"):
    from caffe_import.net import CaffeNet
    torch.manual_seed(0)
    return CaffeNet(NET, phase=phase)


def run(net, ds, **kw):
    from fcn_repro.evaluate import evaluate_net
    return evaluate_net(net, ds, progress=False, input_names=["data"], label_names=["label"], **kw)


def test_shards_add_up_to_the_whole_split():
    net, ds = tiny(), Toy()
    whole = np.asarray(run(net, ds)["confusion_matrix"])
    parts = [np.asarray(run(net, ds, indices=list(range(5))[r::2])["confusion_matrix"]) for r in range(2)]
    np.testing.assert_array_equal(parts[0] + parts[1], whole)
    assert run(net, ds, indices=[])["images"] == 0


def test_label_fed_net_reports_its_mean_loss():
    net, ds = tiny(), Toy(3)
    res = run(net, ds)
    expected = []
    with torch.no_grad():
        for img, lab in ds:
            blobs = net.forward(data=img[None], label=lab[None, None].float())
            expected.append(float(net.total_loss(blobs)))
    assert res["loss"] == pytest.approx(np.mean(expected), rel=1e-6)
    assert "loss" not in run(net, ds, loss=False)


def test_heads_with_class_counts_and_no_dataset_counts():
    net, ds = tiny(), Toy(2)
    ds.num_classes = {}
    res = run(net, ds, heads={"score": (None, 3)})
    assert res["heads"]["score"]["num_classes"] == 3


def test_net_comes_back_in_training_mode():
    net = tiny()
    net.train()
    run(net, Toy(1))
    assert net.training
    net.eval()
    run(net, Toy(1))
    assert not net.training


def test_train_adapter_keeps_the_log_form():
    from fcn_repro.train import evaluate
    scores = evaluate(tiny(), Toy(2), ["data"], ["label"], {"score": (None, 3)})
    assert set(scores) == {"score", "loss"}
    assert "confusion_matrix" not in scores["score"] and "mean_iu" in scores["score"]
