"""caffe_import.pycaffe.blob: Blob storage, and the host/device protocol of Memory (Caffe's
SyncedMemory), exercised on CPU tensors by a Memory that treats its tensor as a device's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe_import.pycaffe.blob import DEVICE, HOST, SYNCED, Blob, Memory


class _Mirrored(Memory):
    """A Memory whose tensor stands for device memory: the host array is a separate copy."""

    def __init__(self, tensor):
        super().__init__(tensor)
        self._host, self.head = None, DEVICE

    @property
    def on_cpu(self) -> bool:
        return False


def test_cpu_arrays_are_the_tensor():
    t = torch.zeros(2, 3)
    m = Memory(t)
    m.host_array()[...] = 5
    assert float(t.sum()) == 30 and m.tensor() is t
    m.write(torch.ones(2, 3))  # same shape: into the same buffer
    assert m.tensor() is t and float(t.sum()) == 6


def test_mirror_protocol_as_synced_memory():
    dev = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    m = _Mirrored(dev)
    host = m.host_array()  # device -> host, host is now the newest
    assert m.head == HOST and not np.shares_memory(host, dev.numpy())
    np.testing.assert_array_equal(host, dev.numpy())
    host[...] = -1  # a write through .data ...
    assert float(dev.sum()) == 15
    assert float(m.tensor().sum()) == -6 and m.head == SYNCED  # ... reaches the device
    m.write(torch.full((2, 3), 2.0))  # a layer writes on the device
    assert m.head == DEVICE
    again = m.host_array()  # the same host buffer, refreshed
    assert again is not None and np.shares_memory(again, host) and (host == 2).all()


def test_blob_shape_accessors_and_reshape():
    b = Blob.zeros((2, 3, 4), "x")
    assert (b.num, b.channels, b.height, b.width, b.count) == (2, 3, 4, 1, 24)
    b.data = np.arange(24).reshape(2, 3, 4)
    b.reshape(4, 6)  # same count: values kept (Caffe reuses the memory)
    assert b.shape == (4, 6) and b.data[3, 5] == 23 and b.diff.shape == (4, 6)
    held = b.data
    b.reshape((5,))  # within the capacity: Caffe keeps the memory and its values
    assert b.shape == (5,) and list(b.data) == [0, 1, 2, 3, 4]
    b.data[...] = -1
    assert held[0, :5].tolist() == [-1] * 5  # an array held before still sees the storage
    b.reshape(2, 3, 4)  # back to the capacity: the same memory, the rest of the values too
    assert b.data[1, 2, 3] == 23 and np.shares_memory(b.data, held)
    b.reshape(5, 5)  # larger than the capacity: fresh zeroed memory
    assert not b.data.any() and not np.shares_memory(b.data, held)
    with pytest.raises(ValueError, match="negative"):
        b.reshape(-1, 2)
    with pytest.raises(ValueError, match="legacy"):
        Blob.zeros((1, 1, 1, 1, 2)).num
