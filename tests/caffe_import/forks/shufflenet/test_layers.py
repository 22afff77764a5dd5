"""ShuffleNet ports' ShuffleChannel against the port's loop and PyTorch's channel_shuffle."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from support.forks import build


def test_shuffle_channel_transposes_groups():
    layer = build('name: "s" type: "ShuffleChannel" bottom: "x" top: "y" '
                  'shuffle_channel_param { group: 3 }', [(1, 6, 1, 1)], fork="shufflenet")
    (y,) = layer(torch.arange(6.0).reshape(1, 6, 1, 1))
    # the port: output channel j * G + i = input channel i * (C / G) + j
    assert y.reshape(-1).tolist() == [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]
    x = torch.randn(2, 6, 3, 4)  # PyTorch's channel_shuffle is the same permutation
    assert torch.equal(layer(x)[0], F.channel_shuffle(x, 3))
