"""Loss layers and Accuracy against real Caffe (layers_losses), and Caffe's normalisation,
clamping, ignore and tie rules."""
from __future__ import annotations

import math

import numpy as np

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from support.layer_fixture import check_layer, layer_names, make

CASE = "layers_losses"


def softmax_loss(loss_param: str, shapes, tops=1):
    top = ' top: "loss"' + (' top: "prob"' if tops == 2 else "")
    return make(f'name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "t"{top} '
                f'loss_param {{ {loss_param} }}', shapes)


@pytest.mark.parametrize("name", layer_names(CASE, "SoftmaxWithLoss", "SigmoidCrossEntropyLoss",
                                             "EuclideanLoss", "Accuracy"))
def test_matches_caffe(name):
    check_layer(CASE, name)


def test_reported_loss_is_not_multiplied_by_loss_weight():
    # loss_weighted has loss_weight 0.5 and NONE normalisation: the top is the plain sum
    (weighted,) = check_layer(CASE, "loss_weighted")
    (batch,) = check_layer(CASE, "loss_batch")
    assert weighted.item() == pytest.approx(batch.item() * 2, rel=1e-5)


@pytest.mark.parametrize("param, divisor", [
    ("", 3), ("normalization: FULL", 4), ("normalization: BATCH_SIZE", 2),
    ("normalization: NONE", 1), ("normalize: false", 2), ("normalize: true", 3),
])
def test_normalization_modes(param, divisor):
    x = torch.zeros(2, 3, 2)  # uniform softmax: each counted term is ln 3
    t = torch.tensor([[0.0, 1.0], [2.0, 255.0]])
    (loss,) = softmax_loss(f"ignore_label: 255 {param}", [(2, 3, 2), (2, 2)])(x, t)
    assert loss.item() == pytest.approx(3 * math.log(3) / divisor)


def test_each_term_is_capped_at_minus_log_flt_min():
    (loss,) = softmax_loss("", [(1, 2), (1,)])(torch.tensor([[0.0, 200.0]]), torch.tensor([0.0]))
    assert loss.item() == pytest.approx(87.3365, abs=1e-3)


def test_everything_ignored_gives_zero_not_nan():
    layer = softmax_loss("ignore_label: 7", [(1, 2), (1,)])
    (loss,) = layer(torch.randn(1, 2), torch.tensor([7.0]))
    assert loss.item() == 0


def test_gradient_is_p_minus_onehot_over_the_normalizer_and_prob_top_is_detached():
    x = torch.randn(2, 4, requires_grad=True)
    t = torch.tensor([1.0, 3.0])
    loss, prob = softmax_loss("", [(2, 4), (2,)], tops=2)(x, t)
    loss.backward()
    onehot = torch.nn.functional.one_hot(t.long(), 4).float()
    torch.testing.assert_close(x.grad, (torch.softmax(x, 1) - onehot) / 2)
    assert not prob.requires_grad and prob.shape == (2, 4)


def test_out_of_range_label_is_an_error():
    with pytest.raises(CaffeFormatError, match="label 4"):
        softmax_loss("", [(1, 4), (1,)])(torch.randn(1, 4), torch.tensor([4.0]))


def test_label_count_must_match():
    with pytest.raises(CaffeFormatError, match="entries"):
        softmax_loss("", [(2, 3, 4), (2, 5)])


def test_sigmoid_cross_entropy_defaults_to_batch_size_and_skips_ignored():
    layer = make('name: "s" type: "SigmoidCrossEntropyLoss" bottom: "x" bottom: "t" top: "l" '
                 'loss_param { ignore_label: -1 }', [(2, 3), (2, 3)])
    x = torch.tensor([[0.0, 2.0, -3.0], [1.0, 0.5, 4.0]], requires_grad=True)
    t = torch.tensor([[1.0, 0.0, -1.0], [1.0, 1.0, 0.0]])
    (loss,) = layer(x, t)
    keep = t != -1
    per = torch.nn.functional.binary_cross_entropy_with_logits(x, t.clamp(min=0),
                                                               reduction="none")
    assert loss.item() == pytest.approx((per[keep].sum() / 2).item(), rel=1e-6)
    loss.backward()
    expected = torch.where(keep, torch.sigmoid(x) - t, torch.zeros_like(x)) / 2
    torch.testing.assert_close(x.grad, expected.detach())


def test_euclidean_divides_by_batch_and_two_and_feeds_both_inputs():
    layer = make('name: "e" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "l"',
                 [(2, 3), (2, 3)])
    a = torch.ones(2, 3, requires_grad=True)
    b = torch.zeros(2, 3, requires_grad=True)
    (loss,) = layer(a, b)
    assert loss.item() == 6 / 2 / 2
    loss.backward()
    assert torch.equal(a.grad, torch.full((2, 3), 0.5)) and torch.equal(b.grad, -a.grad)


def test_accuracy_ties_count_against_and_per_class_top():
    layer = make('name: "a" type: "Accuracy" bottom: "x" bottom: "t" top: "acc" top: "per" '
                 'accuracy_param { ignore_label: 9 }', [(4, 3), (4,)])
    x = torch.tensor([[1.0, 1.0, 0.0],   # tie with the true class 0: wrong
                      [0.0, 2.0, 1.0],   # right (class 1)
                      [5.0, 0.0, 0.0],   # ignored
                      [0.0, 0.0, 3.0]])  # right (class 2)
    acc, per = layer(x, torch.tensor([0.0, 1.0, 9.0, 2.0]))
    assert acc.item() == pytest.approx(2 / 3)
    assert per.tolist() == [0.0, 1.0, 1.0]
    top2 = make('name: "a" type: "Accuracy" bottom: "x" bottom: "t" top: "acc" '
                'accuracy_param { top_k: 2 }', [(4, 3), (4,)])
    assert top2(x, torch.tensor([0.0, 1.0, 1.0, 2.0]))[0].item() == 0.75


def test_multinomial_logistic_loss_thresholds_probabilities():
    layer = make('name: "m" type: "MultinomialLogisticLoss" bottom: "p" bottom: "t" top: "l"',
                 [(2, 3), (2,)])
    p = torch.tensor([[0.2, 0.5, 0.3], [0.0, 1.0, 0.0]], requires_grad=True)
    (loss,) = layer(p, torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx((-math.log(0.5) - math.log(1e-20)) / 2, rel=1e-6)
    loss.backward()
    assert p.grad[0, 1].item() == pytest.approx(-1 / 0.5 / 2)
    assert p.grad[1, 0].item() == pytest.approx(-1 / 1e-20 / 2, rel=1e-6)


@pytest.mark.parametrize("norm, expected", [("L1", 0 + 2.5 + 1.5), ("L2", 0 + 2.5**2 + 1.5**2)])
def test_hinge_loss(norm, expected):
    layer = make(f'name: "h" type: "HingeLoss" bottom: "x" bottom: "t" top: "l" '
                 f'hinge_loss_param {{ norm: {norm} }}', [(1, 3), (1,)])
    # label 0: t = (-2, 1.5, 0.5) -> max(0, 1 + t) = (0, 2.5, 1.5)
    (loss,) = layer(torch.tensor([[2.0, 1.5, 0.5]]), torch.tensor([0.0]))
    assert loss.item() == pytest.approx(expected)


def test_infogain_with_identity_matrix_is_softmax_loss():
    x = torch.randn(2, 4, 3)
    t = torch.tensor([[0.0, 3.0, 255.0], [1.0, 2.0, 2.0]])
    info = make('name: "i" type: "InfogainLoss" bottom: "x" bottom: "t" bottom: "h" top: "l" '
                'loss_param { ignore_label: 255 }', [(2, 4, 3), (2, 3), (4, 4)])
    soft = softmax_loss("ignore_label: 255", [(2, 4, 3), (2, 3)])
    torch.testing.assert_close(info(x, t, torch.eye(4))[0], soft(x, t)[0])
    with pytest.raises(CaffeFormatError, match="normalization"):
        make('name: "i" type: "InfogainLoss" bottom: "x" bottom: "t" bottom: "h" top: "l" '
             'loss_param { normalize: true }', [(2, 4), (2,), (4, 4)])


# ----------------------------------------------------------------------------- ContrastiveLoss
def _contrastive(a, b, y, margin, legacy):
    """Caffe's ContrastiveLossLayer::Forward_cpu and Backward_cpu (loss weight 1), in numpy."""
    n = a.shape[0]
    diff = (a - b).reshape(n, -1)
    dist_sq = (diff * diff).sum(1)
    loss, grad = 0.0, np.zeros_like(diff)
    for i in range(n):
        if int(y.reshape(-1)[i]):
            loss += dist_sq[i]
            grad[i] = diff[i] / n
        elif legacy:
            loss += max(margin - dist_sq[i], 0.0)
            grad[i] = -diff[i] / n if margin - dist_sq[i] > 0 else 0
        else:
            dist = np.sqrt(dist_sq[i])
            loss += max(margin - dist, 0.0) ** 2
            grad[i] = -(1 / n) * (margin - dist) / (dist + 1e-4) * diff[i] if margin - dist > 0 else 0
    return loss / n / 2, grad


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_loss_is_caffes_with_its_own_backward(legacy):
    torch.manual_seed(0)
    a = (0.3 * torch.randn(6, 4, 1, 1)).requires_grad_(True)
    b = (0.3 * torch.randn(6, 4, 1, 1)).requires_grad_(True)
    y = torch.tensor([1.0, 0.0, 0.9, 1.0, 0.0, -1.0]).reshape(6, 1, 1, 1)  # 0.9 -> 0: dissimilar
    layer = make(f'name: "c" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "y" '
                 f'top: "l" contrastive_loss_param {{ margin: 0.8 legacy_version: '
                 f'{str(legacy).lower()} }}', [(6, 4, 1, 1), (6, 4, 1, 1), (6, 1, 1, 1)])
    (loss,) = layer(a, b, y)
    ref, grad = _contrastive(a.detach().double().numpy(), b.detach().double().numpy(),
                             y.numpy(), float(np.float32(0.8)), legacy)
    assert loss.shape == () and abs(float(loss.detach()) - ref) < 1e-6
    (2 * loss).backward()
    np.testing.assert_allclose(a.grad.reshape(6, 4).numpy(), 2 * grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b.grad.reshape(6, 4).numpy(), -2 * grad, rtol=1e-5, atol=1e-7)


def test_contrastive_loss_defaults_and_2d_bottoms():
    layer = make('name: "c" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "y" '
                 'top: "l"', [(2, 3), (2, 3), (2,)])
    a, b = torch.zeros(2, 3), torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, 0.5]])
    (loss,) = layer(a, b, torch.tensor([1.0, 0.0]))
    assert float(loss) == pytest.approx((0.25 + 0.25) / 2 / 2)  # margin 1: (1 - 0.5)^2


@pytest.mark.parametrize("shapes, match", [
    ([(2, 3), (2, 4), (2,)], "same C"),
    ([(2, 3, 2, 1), (2, 3, 2, 1), (2,)], "\\(N, C, 1, 1\\)"),
    ([(2, 3), (2, 3), (2, 2)], "y of \\(N, 1, 1, 1\\)"),
    ([(2, 3), (3, 3), (3,)], "same N"),
])
def test_contrastive_loss_bad_bottoms_are_clear_errors(shapes, match):
    with pytest.raises(CaffeFormatError, match=match):
        make('name: "c" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "y" top: "l"',
             shapes)


@pytest.mark.parametrize("name", layer_names("layers_more", "ContrastiveLoss"))
def test_contrastive_loss_matches_real_caffe(name):
    """BVLC 9b891540's ContrastiveLoss on the bottoms it saw in layers_more (forward; the case's
    gradients are checked by the parity tests)."""
    check_layer("layers_more", name)
