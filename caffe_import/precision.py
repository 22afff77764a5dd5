"""Devices, memory format and reduced precision for inference.

Caffe computes in float32 (or float64) in NCHW only; these are PyTorch-side speedups that
trade Caffe's exact numbers for throughput. Parity with Caffe (``caffe_import.parity``) holds
in float32 only: bf16 autocast changes results at the 1e-2 relative level, fp16 a little less
(with overflow risk for unnormalised FCN scores); channels_last changes only summation order.

Precision modes (``CaffeNet(..., precision=...)``, ``--precision`` on the command lines):

``"exact"`` (default)
    float32 everywhere, NCHW, no TF32: ``torch.backends.cuda.matmul.allow_tf32``,
    ``torch.backends.cudnn.allow_tf32`` (PyTorch's default is True for convolutions, which
    breaks parity with Caffe at the 1e-3 level) and ``torch.float32_matmul_precision`` are set
    to IEEE float32 for the duration of each forward and put back afterwards
    (:func:`precision_scope`), so the user's global settings are not changed.
``"fast"``
    bfloat16 weights and activations in the layers that allow it (``CaffeLayer.dtype_policy``:
    ``"reduced"`` layers - convolutions, inner products - compute in bf16; ``"float32"``
    layers - softmax, losses, accuracy, argmax, batch norm, reductions, Python layers -
    always get float32 bottoms and keep float32 params; ``"any"`` layers run in the dtype that
    reaches them), 4-D weights and activations in channels_last, Convolution + in-place ReLU
    fused into one kernel where the backend has one (oneDNN on CPU), TF32 allowed on CUDA,
    and ``torch.compile`` of the whole forward where it works (by default on CUDA only: on
    CPU the convolutions dominate and compiling costs minutes; ``compile=True`` forces it).
    Outputs come back as float32. Agreement with ``exact``: see docs/performance.md.

``inference_context(net, dtype=torch.bfloat16, channels_last=True)`` is a context manager: the
net's 4-D params are put in channels_last for its duration (and put back after), autograd is
off (``no_grad``: not ``inference_mode``, whose tensors would then sit in
``net.blobs``), and matmul/conv run under ``torch.autocast`` for the net's device. Feed it inputs from
``prepare_inputs`` so they match that memory format.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from .errors import CaffeFormatError

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
           "half": torch.float16}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"bf16"``, ``"fp16"``, ``"fp32"`` (or a torch dtype, or None) -> torch dtype."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise CaffeFormatError(f"dtype {dtype!r}: expected one of {sorted(_DTYPES)}") from None


@dataclass(frozen=True)
class PrecisionPolicy:
    """What a precision mode does (see the module doc). ``compile``: None = CUDA only."""

    name: str
    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    fuse: bool = False
    allow_tf32: bool = False
    compile: bool | None = False

    @property
    def reduced(self) -> bool:
        """True when some layers compute below float32."""
        return self.dtype != torch.float32

    def compiles_on(self, device: torch.device) -> bool:
        return self.compile if self.compile is not None else device.type == "cuda"


PRECISIONS: dict[str, PrecisionPolicy] = {
    "exact": PrecisionPolicy("exact", fuse=True),
    "fast": PrecisionPolicy("fast", torch.bfloat16, channels_last=True, fuse=True,
                            allow_tf32=True, compile=None),
}


def resolve_precision(precision: "str | PrecisionPolicy | None" = None,
                      compile: bool | None = None) -> PrecisionPolicy:
    """``"exact"`` / ``"fast"`` (or a policy; None = exact) -> the policy; ``compile``
    overrides the mode's torch.compile choice when given."""
    if isinstance(precision, PrecisionPolicy):
        policy = precision
    else:
        try:
            policy = PRECISIONS[str(precision or "exact").lower()]
        except KeyError:
            raise CaffeFormatError(f"precision {precision!r}: expected one of "
                                   f"{sorted(PRECISIONS)}") from None
    return policy if compile is None else replace(policy, compile=bool(compile))


@contextlib.contextmanager
def precision_scope(policy: PrecisionPolicy, device: torch.device | None = None
                    ) -> Iterator[None]:
    """Set the global float32 math flags ``policy`` needs, and put the user's back after.

    exact: no TF32 for cuDNN convolutions or CUDA matmuls, ``float32_matmul_precision``
    "highest" (which also keeps oneDNN from using bf16 for float32 matmuls on CPU). fast:
    TF32 allowed ("high") and cuDNN autotuning on. The flags are process-wide, so two
    threads running nets of different modes at once would see each other's settings.
    """
    cuda, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (cuda.allow_tf32, cudnn.allow_tf32, torch.get_float32_matmul_precision(),
             cudnn.benchmark)
    try:
        cuda.allow_tf32 = cudnn.allow_tf32 = policy.allow_tf32
        torch.set_float32_matmul_precision("high" if policy.allow_tf32 else "highest")
        if policy.allow_tf32 and device is not None and device.type == "cuda":
            cudnn.benchmark = True
        yield
    finally:
        cuda.allow_tf32, cudnn.allow_tf32 = saved[0], saved[1]
        torch.set_float32_matmul_precision(saved[2])
        cudnn.benchmark = saved[3]


def score_agreement(reference: torch.Tensor, scores: torch.Tensor, axis: int = 1
                    ) -> tuple[float, float, int]:
    """How far ``scores`` (e.g. the fast mode's) are from ``reference`` (exact's), both
    class scores with the class axis at ``axis``: ``(argmax pixel agreement (fraction),
    max |softmax probability difference|, positions compared)``, computed in float64."""
    r, s = reference.detach().double().cpu(), scores.detach().double().cpu()
    if r.shape != s.shape:
        raise CaffeFormatError(f"score shapes differ: {tuple(r.shape)} vs {tuple(s.shape)}")
    same = r.argmax(axis) == s.argmax(axis)
    diff = (r.softmax(axis) - s.softmax(axis)).abs()
    return float(same.double().mean()), float(diff.max()) if diff.numel() else 0.0, same.numel()


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when available, else MPS, else CPU; anything else as torch
    reads it. A CUDA device asked for on a machine without one raises ``CaffeFormatError``."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CaffeFormatError(f"device {device} asked for, but CUDA is not available here")
    return device


def prepare_inputs(inputs: Mapping[str, Any], device: str | torch.device = "cpu",
                   channels_last: bool = False) -> "OrderedDict[str, torch.Tensor]":
    """Arrays or tensors -> float32 tensors on ``device`` (4-D ones in channels_last when
    asked). Kept float32: autocast casts per op, and Caffe's blobs are float32."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, value in inputs.items():
        t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
        t = t.to(device=device, dtype=torch.float32)
        if channels_last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        out[name] = t
    return out


def _to_memory_format(net, fmt: torch.memory_format) -> None:
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 4:
                p.data = p.data.contiguous(memory_format=fmt)


@contextlib.contextmanager
def inference_context(net, dtype: str | torch.dtype | None = None, channels_last: bool = False
                      ) -> Iterator[Any]:
    """Run ``net`` for inference with autocast ``dtype`` and/or channels_last (see module doc).

    ``dtype`` None or float32: no autocast. The device is the net's (``net.to(device)``
    first). Yields the net. bf16 works on CPU and recent GPUs; fp16 autocast needs a GPU
    (CPU fp16 autocast exists in recent torch but is slow).
    """
    dtype = resolve_dtype(dtype)
    device = net.device
    if channels_last:
        _to_memory_format(net, torch.channels_last)
    was_training = net.training
    net.eval()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.no_grad())
            if dtype is not None and dtype != torch.float32:
                stack.enter_context(torch.autocast(device_type=device.type, dtype=dtype))
            yield net
    finally:
        net.train(was_training)
        if channels_last:
            _to_memory_format(net, torch.contiguous_format)


def run_inference(net, inputs: Mapping[str, Any], dtype: str | torch.dtype | None = None,
                  channels_last: bool = False, outputs: Any = None
                  ) -> "OrderedDict[str, torch.Tensor]":
    """One forward under ``inference_context``; results as float32 (autocast outputs may be
    bf16/fp16), on the net's device."""
    device = net.device
    feed = prepare_inputs(inputs, device, channels_last)
    with inference_context(net, dtype, channels_last):
        blobs = net(outputs=outputs, **feed)
    return OrderedDict((k, v.float() if v.is_floating_point() else v) for k, v in blobs.items())


__all__ = ["PrecisionPolicy", "PRECISIONS", "resolve_precision", "precision_scope",
           "score_agreement",
           "resolve_dtype", "resolve_device", "prepare_inputs", "inference_context",
           "run_inference"]
