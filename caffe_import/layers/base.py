"""The base class of every Caffe layer module."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

Shape = tuple[int, ...]


class CaffeLayer(nn.Module):
    """One Caffe layer as a PyTorch module.

    Built from its ``LayerParameter`` and the shapes of its bottoms (Caffe's ``LayerSetUp``
    sees them too: InnerProduct, Scale, PReLU ... size their params from them). ``phase`` is
    ``"train"`` or ``"test"``: in Caffe the phase is fixed when the net is built, so layers read
    it here rather than from ``nn.Module.training``.

    ``self.blobs`` holds the param blobs in Caffe's order (``net.params[name]`` in pycaffe);
    ``forward(*bottoms)`` returns a tuple with one tensor per top.
    """

    type_names: tuple[str, ...] = ()

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__()
        self.param = param
        self.name: str = param.name
        self.phase = phase
        self.bottom_shapes = [tuple(int(d) for d in s) for s in bottom_shapes]
        self.blobs = nn.ParameterList()

    def add_blob(self, shape: Sequence[int], requires_grad: bool = True) -> nn.Parameter:
        """Append a param blob of ``shape`` (zeros; the net fills weights or Caffe's fillers)."""
        p = nn.Parameter(torch.zeros(tuple(int(d) for d in shape)), requires_grad=requires_grad)
        self.blobs.append(p)
        return p

    def blob_shapes(self) -> list[Shape]:
        """Shapes Caffe gives this layer's param blobs (what a caffemodel must match)."""
        return [tuple(p.shape) for p in self.blobs]

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        """Shapes of the tops for bottoms of these shapes.

        Default: run ``forward`` on meta tensors (no memory, no compute). Layers whose forward
        cannot run on the meta device override this.
        """
        from torch.func import functional_call

        with torch.no_grad():
            bottoms = [torch.empty(s, device="meta") for s in bottom_shapes]
            state = {k: torch.empty(v.shape, device="meta", dtype=v.dtype)
                     for k, v in [*self.named_parameters(), *self.named_buffers()]}
            tops = functional_call(self, state, tuple(bottoms))
        return [tuple(t.shape) for t in tops]

    def extra_repr(self) -> str:
        return f"name={self.name!r}"
