"""Every fork layer gives on CUDA what it gives on CPU (values and gradients)."""
from __future__ import annotations

import pytest
import torch

from support.forks import build

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _ssd_inputs():
    g = torch.Generator().manual_seed(0)
    p, classes = 50, 4
    c = torch.rand(p, 2, generator=g) * 0.8 + 0.1
    s = torch.rand(p, 2, generator=g) * 0.3 + 0.05
    pri = torch.cat([c - s / 2, c + s / 2], 1).reshape(-1)
    var = torch.tensor([0.1, 0.1, 0.2, 0.2]).repeat(p)
    prior = torch.stack([pri, var])[None]
    conf = torch.softmax(torch.randn(2, p, classes, generator=g) * 3, -1).reshape(2, -1)
    return [torch.randn(2, p * 4, generator=g) * 0.5, conf, prior]


CASES = {
    "Normalize": ("ssd", 'type: "Normalize" norm_param { across_spatial: false '
                  'channel_shared: false }', lambda: [torch.randn(2, 3, 4, 5)]),
    "DetectionOutput": ("ssd", 'type: "DetectionOutput" detection_output_param { num_classes: 4 '
                        'keep_top_k: 20 confidence_threshold: 0.05 nms_param { nms_threshold: '
                        '0.45 top_k: 30 eta: 0.9 } }', _ssd_inputs),
    "PriorBox": ("ssd", 'type: "PriorBox" prior_box_param { min_size: 30 max_size: 60 '
                 'aspect_ratio: 2 variance: 0.1 }',
                 lambda: [torch.randn(1, 2, 3, 4), torch.randn(1, 3, 30, 40)]),
    "Interp": ("pspnet", 'type: "Interp" interp_param { zoom_factor: 3 pad_beg: -1 }',
               lambda: [torch.randn(1, 2, 6, 7)]),
    "BN": ("pspnet", 'type: "BN" bn_param { slope_filler { type: "constant" value: 2 } }',
           lambda: [torch.randn(2, 3, 4, 4)]),
    "ROIPooling": ("fast-rcnn", 'type: "ROIPooling" roi_pooling_param { pooled_h: 3 '
                   'pooled_w: 2 spatial_scale: 0.5 }',
                   lambda: [torch.randn(2, 3, 8, 9),
                            torch.tensor([[0, 1, 2, 12, 15], [1, 0, 0, 17, 15.]])]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_matches_cpu(name):
    fork, body, make = CASES[name]
    inputs = make()
    tops = ' top: "y"'
    bottoms = "".join(f' bottom: "b{i}"' for i in range(len(inputs)))
    layer = build(f'name: "l"{bottoms}{tops} {body}', [tuple(t.shape) for t in inputs], fork=fork)
    cpu = layer(*inputs)
    gpu = layer.cuda()(*[t.cuda() for t in inputs])
    for a, b in zip(cpu, gpu):
        assert a.shape == b.shape
        torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-6)
