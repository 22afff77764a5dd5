"""evaluate_net as the one loop: shards add up to the whole split, label-fed nets report their
loss, heads may carry their class count, and the net comes back in the mode it went in."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe_import.errors import UsageError

pytest.importorskip("caffe_import.net")

from support.tiny_segmentation import NET, Toy  # noqa: E402


def tiny(phase: str = "train"):
    from caffe_import.net import CaffeNet
    torch.manual_seed(0)
    return CaffeNet(NET, phase=phase)


def run(net, ds, plan=None, **kw):
    from fcn_repro.evaluate import EvalPlan, evaluate_net
    plan = plan or EvalPlan.for_net(net, ds, labels=["label"])
    return evaluate_net(net, ds, plan, progress=False, **kw)


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
    from fcn_repro.evaluate import EvalPlan
    assert "loss" not in run(net, ds, EvalPlan.for_net(net, ds, labels=["label"], loss=False))


def test_heads_with_class_counts_and_no_dataset_counts():
    net, ds = tiny(), Toy(2)
    ds.num_classes = {}
    from fcn_repro.evaluate import EvalPlan, Head
    res = run(net, ds, EvalPlan.for_net(net, ds, labels=["label"], heads={"score": Head(None, 3)}))
    assert res["heads"]["score"]["num_classes"] == 3
    with pytest.raises(UsageError, match="class count"):  # a sharded run must know it up front
        run(net, ds, all_reduce=True)


def test_net_comes_back_in_training_mode():
    net = tiny()
    net.train()
    run(net, Toy(1))
    assert net.training
    net.eval()
    run(net, Toy(1))
    assert not net.training


def test_log_form_drops_the_matrix():
    from fcn_repro.evaluate import scores_by_head
    scores = scores_by_head(run(tiny(), Toy(2)))
    assert set(scores) == {"score", "loss"}
    assert "confusion_matrix" not in scores["score"] and "mean_iu" in scores["score"]


def test_a_plan_is_reusable():
    net, ds = tiny(), Toy(3)
    from fcn_repro.evaluate import EvalPlan
    plan = EvalPlan.for_net(net, ds, labels=["label"])
    assert run(net, ds, plan)["confusion_matrix"] == run(net, ds, plan)["confusion_matrix"]
