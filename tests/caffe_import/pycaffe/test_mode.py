"""caffe_import.pycaffe.mode: CPU/GPU mode, device and seed; on CUDA, blob arrays are host
mirrors that read and write through the device."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe_import import pycaffe as caffe
from support.pycaffe_nets import batch


def test_cpu_mode_defaults_and_seed(tiny):
    caffe.set_mode_cpu()
    caffe.set_device(0)
    with pytest.raises(ValueError, match=">= 0"):
        caffe.set_device(-1)
    caffe.set_random_seed(5)
    a = caffe.Net(str(tiny / "train.prototxt"), caffe.TRAIN).params["conv"][0].data.copy()
    caffe.set_random_seed(5)
    b = caffe.Net(str(tiny / "train.prototxt"), caffe.TRAIN).params["conv"][0].data
    np.testing.assert_array_equal(a, b)  # fillers draw from the seeded generator


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_gpu_mode_without_cuda_says_so():
    with pytest.raises(RuntimeError, match="no CUDA device"):
        caffe.set_mode_gpu()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_net_reads_and_writes_through_the_device(tiny):
    x, _ = batch()
    p, w = str(tiny / "deploy.prototxt"), str(tiny / "weights.caffemodel")
    cpu = caffe.Net(p, caffe.TEST, weights=w).forward(data=x)["prob"].copy()
    caffe.set_mode_gpu()
    net = caffe.Net(p, caffe.TEST, weights=w)
    net.blobs["data"].data[...] = x  # a host write, copied up before the next run
    held = net.blobs["prob"].data
    net.forward()
    assert net.caffe_net.device.type == "cuda"
    np.testing.assert_allclose(net.blobs["prob"].data, cpu, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(held, cpu, rtol=1e-4, atol=1e-6)  # the same host buffer
    net.params["ip"][0].data[...] = 0
    net.params["ip"][1].data[...] = 0
    np.testing.assert_allclose(net.forward()["prob"], 0.2, rtol=1e-5)
    diffs = net.backward(prob=np.ones((2, 5), np.float32))
    assert diffs["data"].shape == (2, 3, 8, 8)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_solver_matches_cpu(tiny, monkeypatch):
    monkeypatch.chdir(tiny)
    x, y = batch()
    out = []
    for gpu in (False, True):
        caffe.set_mode_gpu() if gpu else caffe.set_mode_cpu()
        s = caffe.SGDSolver("solver.prototxt")
        s.net.copy_from("weights.caffemodel")
        s.net.blobs["data"].data[...] = x
        s.net.blobs["label"].data[...] = y
        s.step(3)
        out.append(s.net.params["conv"][0].data.copy())
    np.testing.assert_allclose(out[1], out[0], rtol=1e-4, atol=1e-6)
