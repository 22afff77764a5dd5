"""The YOLOv3 ports' nearest Upsample, against the ports' CPU loop."""
from __future__ import annotations

import torch

from support.forks import build


def test_upsample_with_one_bottom_is_nearest():
    layer = build('name: "u" type: "Upsample" bottom: "x" top: "y" upsample_param { scale: 2 }',
                  [(1, 2, 3, 4)], fork="yolo")
    x = torch.randn(1, 2, 3, 4, requires_grad=True)
    (y,) = layer(x)
    for h in range(6):
        for w in range(8):
            assert torch.equal(y[:, :, h, w], x[:, :, h // 2, w // 2])
    y.sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, 4.0))  # each input feeds a 2x2 block
