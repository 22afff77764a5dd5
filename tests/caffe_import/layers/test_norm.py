"""LRN, BatchNorm and MVN against real Caffe (layers_norm), and the Caffe rules
that differ from PyTorch's normalisation layers."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from support.layer_fixture import check_layer, layer_names, make

CASE = "layers_norm"


@pytest.mark.parametrize("name", layer_names(CASE, "LRN", "BatchNorm", "MVN"))
def test_matches_caffe(name):
    check_layer(CASE, name)


def test_lrn_across_channels_is_pytorch_local_response_norm():
    layer = make('name: "n" type: "LRN" bottom: "x" top: "y" lrn_param '
                 '{ local_size: 5 alpha: 0.1 beta: 0.75 k: 2 }', [(2, 7, 3, 3)])
    x = torch.randn(2, 7, 3, 3)
    torch.testing.assert_close(layer(x)[0], torch.nn.functional.local_response_norm(
        x, 5, 0.1, 0.75, 2.0))


def test_lrn_within_channel_ignores_k_and_divides_by_n_squared():
    text = ('name: "n" type: "LRN" bottom: "x" top: "y" lrn_param '
            '{{ local_size: 3 alpha: 0.9 beta: 1 norm_region: WITHIN_CHANNEL k: {} }}')
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 3.0
    (y,) = make(text.format(1), [(1, 1, 3, 3)])(x)
    (y5,) = make(text.format(5), [(1, 1, 3, 3)])(x)
    assert torch.equal(y, y5)
    assert y[0, 0, 1, 1].item() == pytest.approx(3 / (1 + 0.9 * 9 / 9))


def test_batchnorm_global_stats_divide_by_the_scale_factor():
    layer = make('name: "bn" type: "BatchNorm" bottom: "x" top: "y"', [(1, 2, 1, 1)])
    with torch.no_grad():
        layer.blobs[0].copy_(torch.tensor([4.0, -2.0]))
        layer.blobs[1].copy_(torch.tensor([8.0, 2.0]))
        layer.blobs[2].fill_(2.0)
    x = torch.tensor([3.0, 1.0]).view(1, 2, 1, 1)
    (y,) = layer(x)  # test phase: mean (2, -1), var (4, 1)
    expected = torch.tensor([(3 - 2) / (4 + 1e-5) ** 0.5, (1 + 1) / (1 + 1e-5) ** 0.5])
    torch.testing.assert_close(y.flatten(), expected)
    with torch.no_grad():
        layer.blobs[2].zero_()  # s == 0: mean = var = 0
    torch.testing.assert_close(layer(x)[0], x / (1e-5) ** 0.5)


def test_batchnorm_train_phase_updates_caffes_accumulators():
    layer = make('name: "bn" type: "BatchNorm" bottom: "x" top: "y" '
                 'batch_norm_param { moving_average_fraction: 0.5 }', [(2, 1, 1, 2)],
                 phase="train")
    assert not layer.use_global_stats
    x = torch.tensor([1.0, 2.0, 3.0, 6.0]).view(2, 1, 1, 2)
    (y,) = layer(x)
    mean, var = 3.0, (4 + 1 + 0 + 9) / 4
    torch.testing.assert_close(y.flatten(), (x.flatten() - mean) / (var + 1e-5) ** 0.5)
    assert layer.blobs[2].item() == 1.0 and layer.blobs[0].item() == pytest.approx(3.0)
    assert layer.blobs[1].item() == pytest.approx(var * 4 / 3)  # unbiased, m = 4
    layer(x)
    assert layer.blobs[2].item() == 1.5 and layer.blobs[0].item() == pytest.approx(4.5)


def test_batchnorm_stats_are_not_learned():
    layer = make('name: "bn" type: "BatchNorm" bottom: "x" top: "y"', [(1, 3)])
    assert [p.lr_mult for p in layer.param.param] == [0, 0, 0]
    assert layer.blob_shapes() == [(3,), (3,), (1,)]
    with pytest.raises(CaffeFormatError, match="lr_mult"):
        make('name: "bn" type: "BatchNorm" bottom: "x" top: "y" param { lr_mult: 1 }', [(1, 3)])


def test_mvn_adds_eps_to_the_standard_deviation():
    layer = make('name: "m" type: "MVN" bottom: "x" top: "y" mvn_param { eps: 0.5 }',
                 [(1, 1, 1, 2)])
    (y,) = layer(torch.tensor([[[[1.0, 3.0]]]]))
    assert y.flatten().tolist() == pytest.approx([-1 / 1.5, 1 / 1.5])
