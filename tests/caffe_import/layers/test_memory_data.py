"""caffe_import.layers.memory_data: Caffe's MemoryData layer (batches from given arrays)."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet

NET = """
layer { name: "mem" type: "MemoryData" top: "data" top: "label"
  memory_data_param { batch_size: 2 channels: 1 height: 2 width: 3 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
"""


def test_batches_in_order_wrapping_around():
    net = CaffeNet(NET, keep_blobs=True)  # "data" is read by a layer: kept only on request
    assert net.blob_shapes["data"] == (2, 1, 2, 3) and net.blob_shapes["label"] == (2,)
    with pytest.raises(CaffeFormatError, match="set_input_arrays"):
        net()
    data = np.arange(4 * 6, dtype=np.float32).reshape(4, 1, 2, 3)
    net.layer("mem").reset(data, np.array([0, 1, 2, 3]))
    for expect in (0, 2, 0):
        out = net()
        np.testing.assert_array_equal(out["data"].numpy(), data[expect:expect + 2])
        np.testing.assert_array_equal(out["label"].numpy().ravel(), [expect, expect + 1])
        assert out["label"].shape == (2, 1, 1, 1)  # Caffe's Forward_cpu reshapes the label


def test_reset_checks_the_arrays():
    mem = CaffeNet(NET).layer("mem")
    with pytest.raises(CaffeFormatError, match="float32"):
        mem.reset(np.zeros((2, 1, 2, 3)), np.zeros(2))
    with pytest.raises(CaffeFormatError, match="multiple of batch size"):
        mem.reset(np.zeros((3, 1, 2, 3), np.float32), np.zeros(3))
    with pytest.raises(CaffeFormatError, match="same first dimension"):
        mem.reset(np.zeros((2, 1, 2, 3), np.float32), np.zeros(4))
