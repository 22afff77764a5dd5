"""evaluate_net as the one loop: shards add up to the whole split, label-fed nets report their
loss, heads may carry their class count, and the net comes back in the mode it went in."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("caffe_import.net")

from support.tiny_segmentation import NET, Toy  # noqa: E402


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
