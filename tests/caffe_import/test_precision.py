"""Devices and reduced precision: channels_last changes nothing but summation order, bf16
autocast stays close to Caffe's float32, and the net is left as it was found."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.parity import check_parity, read_reference
from caffe_import.precision import (inference_context, prepare_inputs, resolve_device,
                                    resolve_dtype, run_inference)
from support import case_dir
from support.compare import rel_l2

CASE = "layers_conv"


@pytest.fixture(scope="module")
def net():
    from caffe_import.net import CaffeNet

    d = case_dir(CASE)
    return CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel"))


@pytest.fixture(scope="module")
def ref():
    return read_reference(case_dir(CASE) / "reference.h5")


def test_channels_last_keeps_caffes_numbers_and_is_undone(net, ref):
    out = run_inference(net, ref.inputs, channels_last=True)
    for name, want in ref.blobs.items():
        assert rel_l2(out[name], want) <= 1e-5, name
    assert all(p.is_contiguous() for p in net.parameters())


def test_bf16_autocast_is_close_to_float32(net, ref):
    with inference_context(net, "bf16", channels_last=True) as n:
        feed = prepare_inputs(ref.inputs, "cpu", channels_last=True)
        assert feed["data"].is_contiguous(memory_format=torch.channels_last)
        out = n(**feed)
        assert any(out[name].dtype == torch.bfloat16 for name in net.outputs)
        assert not torch.is_grad_enabled()
    for name in net.outputs:
        assert rel_l2(out[name].float(), ref.blobs[name]) <= 2e-2, name
    assert torch.is_grad_enabled()
    # back in float32 afterwards: Caffe's numbers again
    assert check_parity(net, None, case_dir(CASE) / "reference.h5").ok


def test_run_inference_returns_float32(net, ref):
    out = run_inference(net, ref.inputs, dtype=torch.bfloat16)
    assert all(t.dtype == torch.float32 for t in out.values())


def test_dtype_and_device_names():
    assert resolve_dtype("bf16") is torch.bfloat16 and resolve_dtype("fp16") is torch.float16
    assert resolve_dtype(None) is None and resolve_dtype(torch.float32) is torch.float32
    with pytest.raises(CaffeFormatError, match="int8"):
        resolve_dtype("int8")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(CaffeFormatError, match="CUDA is not available"):
            resolve_device("cuda")


def test_inputs_follow_the_net_to_its_device(ref):
    """Inputs go where the net is: on the meta device (no GPU needed) every blob comes out
    there, with Caffe's shapes."""
    from caffe_import.net import CaffeNet

    d = case_dir(CASE)
    net = CaffeNet(d / "net.prototxt", d / "weights.caffemodel").to("meta")
    out = run_inference(net, ref.inputs)
    assert all(t.device.type == "meta" for t in out.values())
    assert all(tuple(out[k].shape) == ref.blobs[k].shape for k in ref.blobs)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_parity_and_fp16_autocast(ref):
    from caffe_import.net import CaffeNet

    d = case_dir(CASE)
    gpu = CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel")).to("cuda")
    # TF32 would change conv numbers at the 1e-3 level: Caffe computes in full float32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    report = check_parity(gpu, None, d / "reference.h5", device="cuda")
    assert report.ok, report.table()
    for dtype in (torch.float16, torch.bfloat16):
        out = run_inference(gpu, ref.inputs, dtype=dtype, channels_last=True)
        for name in gpu.outputs:
            assert out[name].is_cuda and rel_l2(out[name], ref.blobs[name]) <= 2e-2, name
