"""Precision modes: reduced precision and memory format, traded against Caffe's numbers.

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

A policy is a :class:`PrecisionPolicy`: the two modes above are ``PRECISIONS``, and any other
combination (fp16 on a GPU, channels_last alone) is ``PrecisionPolicy(name, dtype, ...)`` passed
as ``precision=``. The net applies it: :func:`cast_layer_params` when it is set,
:func:`cast_bottoms` before each layer, :func:`precision_scope` around each forward.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Iterable, Iterator, Sequence

import torch

from .errors import CaffeFormatError, UsageError
from .layers.base import DTYPE_FLOAT32, DTYPE_REDUCED, CaffeLayer


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
            raise UsageError(f"precision {precision!r}: expected one of "
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


def cast_layer_params(layers: Sequence[CaffeLayer], policy: PrecisionPolicy) -> None:
    """Put the params of ``"reduced"`` layers in ``policy``'s dtype (4-D ones in channels_last
    when it asks), in place, and tell every layer the policy. A param a ``"float32"`` layer
    also owns (shared by ``ParamSpec.name``) stays float32."""
    fp32_owned = {id(p) for layer in layers if layer.dtype_policy == DTYPE_FLOAT32
                  for p in layer.parameters()}
    with torch.no_grad():
        for layer in layers:
            if layer.dtype_policy != DTYPE_REDUCED:
                continue
            for p in layer.parameters():
                if id(p) in fp32_owned:
                    continue
                fmt = (torch.channels_last if policy.channels_last and p.dim() == 4
                       else torch.contiguous_format)
                p.data = p.data.to(policy.dtype).contiguous(memory_format=fmt)
    for layer in layers:
        layer.set_precision(policy)


def cast_bottoms(policy: PrecisionPolicy, dtype_policy: str,
                 bottoms: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Bottoms as a layer of this ``dtype_policy`` takes them under a reduced ``policy``:
    float32 for ``"float32"`` layers, the policy's dtype (and channels_last for 4-D) for
    ``"reduced"`` ones, as they come for ``"any"``."""
    bottoms = list(bottoms)
    if dtype_policy == DTYPE_FLOAT32:
        return [b.float() if b.is_floating_point() and b.dtype != torch.float32 else b
                for b in bottoms]
    if dtype_policy != DTYPE_REDUCED:
        return bottoms
    low, cl = policy.dtype, policy.channels_last
    out = []
    for b in bottoms:
        if b.is_floating_point() and b.dtype != low:
            b = b.to(low)
        if cl and b.dim() == 4 and not b.is_contiguous(memory_format=torch.channels_last):
            b = b.contiguous(memory_format=torch.channels_last)
        out.append(b)
    return out


def float32_results(blobs: dict[str, torch.Tensor]) -> None:
    """Give back float32 for every floating blob a reduced policy left in a lower dtype
    (in place): Caffe's blobs, and so the net's results, are float32."""
    for name, value in blobs.items():
        if value.is_floating_point() and value.dtype != torch.float32:
            blobs[name] = value.float()


__all__ = ["PrecisionPolicy", "PRECISIONS", "resolve_precision", "precision_scope",
           "score_agreement", "cast_layer_params", "cast_bottoms", "float32_results"]
