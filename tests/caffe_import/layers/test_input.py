"""DummyData: constants filled once, legacy num/channels/height/width shapes."""
from __future__ import annotations

import torch

from caffe_import.net import CaffeNet


def test_dummy_data_fills_constants_once_and_legacy_shapes():
    net = CaffeNet('layer { name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param { '
                   'num: 2 channels: 3 height: 1 width: 4 '
                   'data_filler { type: "constant" value: 7 } '
                   'data_filler { type: "gaussian" std: 1 } } }')
    first, second = net(), net()
    assert torch.equal(first["a"], torch.full((2, 3, 1, 4), 7.0))
    assert first["a"] is second["a"]
    assert not torch.equal(first["b"], second["b"])  # refilled on every forward
