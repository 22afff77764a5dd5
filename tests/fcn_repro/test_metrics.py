"""fcn_repro.metrics: score.py's definitions on a hand-computed confusion matrix."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fcn_repro.metrics import ConfusionMatrix, geometric_accuracy, scores_from_hist

# 3 classes, void 255. Ground truth / prediction pairs, pixel by pixel:
LABEL = torch.tensor([[0, 0, 0, 1], [1, 1, 2, 255]])
PRED = torch.tensor([[0, 0, 1, 1], [1, 2, 2, 0]])
# counted by hand (rows ground truth, columns prediction; the void pixel is dropped)
HIST = np.array([[2, 1, 0],
                 [0, 2, 1],
                 [0, 0, 1]])


def test_confusion_matrix_counts_by_hand_and_ignores_void():
    cm = ConfusionMatrix(3)
    cm.update(PRED, LABEL)
    np.testing.assert_array_equal(cm.numpy(), HIST)


def test_scores_are_score_py_definitions():
    cm = ConfusionMatrix(3)
    cm.update(PRED, LABEL)
    s = cm.compute()
    assert s["pixel_acc"] == pytest.approx(5 / 7)
    assert s["per_class_acc"] == pytest.approx([2 / 3, 2 / 3, 1 / 1])
    assert s["mean_acc"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    # IU = diag / (row + col - diag): 2/(3+2-2), 2/(3+3-2), 1/(1+2-1)
    iu = [2 / 3, 2 / 4, 1 / 2]
    assert s["per_class_iu"] == pytest.approx(iu)
    assert s["mean_iu"] == pytest.approx(sum(iu) / 3)
    freq = [3 / 7, 3 / 7, 1 / 7]
    assert s["fw_iu"] == pytest.approx(sum(f * i for f, i in zip(freq, iu)))
    assert s["pixels"] == 7


def test_labels_outside_range_are_ignored_including_negative():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 1, 1, 0]), torch.tensor([0, -1, 7, 1]))
    np.testing.assert_array_equal(cm.numpy(), [[1, 0], [1, 0]])


def test_accumulates_over_images_of_different_sizes():
    cm = ConfusionMatrix(3)
    cm.update(PRED, LABEL)
    cm.update(PRED[:, :2], LABEL[:, :2])
    np.testing.assert_array_equal(cm.numpy(), HIST + np.array([[2, 0, 0], [0, 1, 1], [0, 0, 0]]))


def test_update_scores_takes_the_channel_argmax():
    scores = torch.nn.functional.one_hot(PRED, 3).permute(2, 0, 1).float()[None]
    cm = ConfusionMatrix(3)
    cm.update_scores(scores, LABEL[None])
    np.testing.assert_array_equal(cm.numpy(), HIST)


def test_absent_class_is_nan_accuracy_but_zero_iu_when_predicted_as_in_score_py():
    hist = np.array([[4, 1], [0, 0]])  # class 1 never in the ground truth, predicted once
    s = scores_from_hist(hist)
    assert math.isnan(s["per_class_acc"][1])
    assert s["per_class_iu"][1] == 0.0
    assert s["mean_acc"] == pytest.approx(0.8)  # nanmean skips the NaN
    assert s["mean_iu"] == pytest.approx(0.4)   # the 0 IU counts
    assert scores_from_hist(hist, exclude_absent=True)["mean_iu"] == pytest.approx(0.8)
    assert scores_from_hist(hist, exclude=[1])["mean_iu"] == pytest.approx(0.8)
    assert scores_from_hist(hist, exclude=[1])["excluded_classes"] == [1]


def test_empty_matrix_gives_nan_not_an_error():
    s = ConfusionMatrix(4).compute()
    assert all(math.isnan(s[k]) for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"))


def test_geometric_accuracy_is_pixel_accuracy():
    assert geometric_accuracy(HIST) == pytest.approx(5 / 7)


def test_matrices_add_like_split_shards():
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(PRED[0], LABEL[0])
    b.update(PRED[1], LABEL[1])
    a.add(b)
    np.testing.assert_array_equal(a.numpy(), HIST)


def test_all_reduce_is_a_noop_without_distributed_and_sums_with_it(tmp_path):
    import torch.distributed as dist
    cm = ConfusionMatrix(3)
    cm.update(PRED, LABEL)
    cm.all_reduce()
    np.testing.assert_array_equal(cm.numpy(), HIST)
    if not dist.is_available():
        pytest.skip("torch.distributed not built")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        cm.all_reduce()  # one rank: the sum is itself
        np.testing.assert_array_equal(cm.numpy(), HIST)
    finally:
        dist.destroy_process_group()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matrix_matches_cpu():
    cm = ConfusionMatrix(3, "cuda")
    cm.update(PRED.cuda(), LABEL.cuda())
    np.testing.assert_array_equal(cm.numpy(), HIST)
