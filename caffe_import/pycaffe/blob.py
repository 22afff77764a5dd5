"""pycaffe's ``Blob``: ``.data`` and ``.diff`` as numpy arrays that are the storage.

Caffe keeps each blob's data and diff in a ``SyncedMemory``: a host buffer and a device buffer
with a "head" saying which holds the newest values. ``Blob.data`` is ``mutable_cpu_data()``:
it brings the newest values to the host and marks the host as the newest, so the next GPU
layer copies them up. :class:`Memory` is the same idea over torch tensors:

* on CPU the host array *is* the tensor the net computes with (``tensor.numpy()`` shares
  memory): writing ``net.params['conv1'][0].data[...]`` changes the net, and forward and
  backward fill the same buffers, so arrays a user holds stay valid until the blob is
  reshaped to more elements than it has held (as in Caffe, where only such a reshape
  reallocates; a smaller shape reuses the memory and its values);
* on CUDA the host array is a mirror: reading ``.data`` copies the device tensor into it
  (only when the device is newer), and the net copies it back before it next runs (only when
  ``.data`` or ``.diff`` was read since, which may have written it). An array held across a
  forward is refreshed on the next ``.data`` access, as Caffe's host pointer is.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch

HOST, DEVICE, SYNCED = "host", "device", "synced"


class Memory:
    """One blob's data or diff: a torch tensor and, off the CPU, a host mirror.

    As a ``SyncedMemory`` behind a Caffe ``Blob``, it has a capacity: the tensor is a view of
    the first elements of a flat buffer, and a new shape that fits the buffer reuses it (the
    values stay, arrays held on the CPU still see it); only a larger count allocates anew."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self._own(tensor)
        self.head = SYNCED if self._host is not None else DEVICE

    def _own(self, tensor: torch.Tensor) -> None:
        """Make ``tensor`` the storage (its elements the capacity when contiguous)."""
        self._tensor = tensor
        self._base = tensor.reshape(-1) if tensor.is_contiguous() else None
        self._host = tensor if tensor.device.type == "cpu" else None

    def _fits(self, count: int) -> bool:
        return self._base is not None and count <= self._base.numel()

    def _view(self, shape: Sequence[int], count: int) -> None:
        self._tensor = self._base[:count].view(tuple(shape))
        if self.on_cpu:
            self._host = self._tensor

    @property
    def on_cpu(self) -> bool:
        return self._tensor.device.type == "cpu"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._tensor.shape)

    def host_array(self) -> np.ndarray:
        """The host buffer, brought up to date and marked newest (``mutable_cpu_data``)."""
        if self.on_cpu:
            return self._tensor.numpy()
        if self._host is None or self._host.shape != self._tensor.shape:
            self._host = torch.empty(self._tensor.shape, dtype=self._tensor.dtype)
            self.head = DEVICE
        if self.head == DEVICE:
            self._host.copy_(self._tensor)
        self.head = HOST
        return self._host.numpy()

    def tensor(self) -> torch.Tensor:
        """The compute tensor, with any host writes copied in first."""
        if self.head == HOST and self._host is not None and not self.on_cpu:
            self._tensor.copy_(self._host)
            self.head = SYNCED
        return self._tensor

    def write(self, value: torch.Tensor) -> None:
        """Store a layer's result: into the same buffer when the shape is unchanged."""
        value = value.detach()
        if tuple(value.shape) == tuple(self._tensor.shape) and value.dtype == self._tensor.dtype:
            if value.data_ptr() != self._tensor.data_ptr():
                self._tensor.copy_(value)
        elif self._fits(value.numel()) and value.device == self._tensor.device:
            self._view(value.shape, value.numel())  # Caffe's Reshape within the capacity
            self._tensor.copy_(value)
        else:
            self._own(value.to(torch.float32).clone(memory_format=torch.contiguous_format))
        self.head = SYNCED if self.on_cpu else DEVICE

    def reshape(self, shape: Sequence[int]) -> None:
        """Caffe's ``Blob::Reshape``: a count within the capacity reuses the memory (values
        kept), a larger one allocates zeros."""
        shape = tuple(int(d) for d in shape)
        if shape == self.shape:
            return
        t = self.tensor()
        count = int(np.prod(shape, dtype=np.int64))
        if self._fits(count):
            self._view(shape, count)
        elif count == t.numel():
            self._own(t.reshape(shape))
        else:
            self._own(torch.zeros(shape, dtype=t.dtype, device=t.device))
        if not self.on_cpu:
            self._host = None
        self.head = SYNCED if self.on_cpu else DEVICE

    def rebind(self, tensor: torch.Tensor) -> None:
        """Point at another tensor (a param shared or moved); the host mirror is rebuilt."""
        self._own(tensor)
        self.head = SYNCED if self._host is not None else DEVICE


class Blob:
    """A named blob of a net (or a param blob of a layer), as pycaffe exposes it.

    ``.data`` / ``.diff``: writable float32 arrays (see the module docstring for when they are
    the storage and when a mirror). Assigning ``blob.data = array`` copies into the storage.
    ``.shape``, ``.count``, ``.num``/``.channels``/``.height``/``.width`` (Caffe's legacy
    accessors: axes 0..3 counted from the front, 1 where the blob has fewer axes; Caffe refuses
    them on blobs of more than 4 axes, so do we).
    """

    def __init__(self, data: Memory, diff: Memory, name: str = "",
                 on_reshape: Callable[["Blob", tuple[int, ...]], None] | None = None) -> None:
        self._data_memory = data
        self._diff_memory = diff
        self.name = name
        self._on_reshape = on_reshape

    @classmethod
    def zeros(cls, shape: Sequence[int], name: str = "", device: str | torch.device = "cpu"
              ) -> "Blob":
        shape = tuple(int(d) for d in shape)
        return cls(Memory(torch.zeros(shape, device=device)),
                   Memory(torch.zeros(shape, device=device)), name)

    # ---- storage -----------------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        return self._data_memory.host_array()

    @data.setter
    def data(self, value) -> None:
        self.data[...] = value

    @property
    def diff(self) -> np.ndarray:
        return self._diff_memory.host_array()

    @diff.setter
    def diff(self, value) -> None:
        self.diff[...] = value

    # ---- shape -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data_memory.shape

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def _legacy_axis(self, index: int) -> int:
        shape = self.shape
        if len(shape) > 4:
            raise ValueError(f"blob '{self.name}' has {len(shape)} axes; the legacy "
                             f"num/channels/height/width accessors need 4 or fewer (Caffe)")
        return shape[index] if index < len(shape) else 1

    num = property(lambda self: self._legacy_axis(0))
    channels = property(lambda self: self._legacy_axis(1))
    height = property(lambda self: self._legacy_axis(2))
    width = property(lambda self: self._legacy_axis(3))

    def reshape(self, *shape: int) -> None:
        """``blob.reshape(n, c, h, w)``: data and diff take the new shape (Caffe: same
        element count keeps the values; otherwise new zeroed storage)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        dims = tuple(int(d) for d in shape)
        if any(d < 0 for d in dims):
            raise ValueError(f"blob '{self.name}': negative dimension in {dims}")
        if self._on_reshape is not None:
            self._on_reshape(self, dims)
        self._data_memory.reshape(dims)
        self._diff_memory.reshape(dims)

    def __repr__(self) -> str:
        return f"<Blob {self.name!r} shape={self.shape}>"


class ParamBlob(Blob):
    """A layer's param blob: its data is the ``nn.Parameter`` itself, its diff the
    parameter's ``.grad`` (allocated once and accumulated into, as Caffe's diff is), looked
    up on every access so sharing (``Net.share_with``) and device moves are seen."""

    def __init__(self, layer, index: int, name: str = "") -> None:
        self._layer = layer
        self._index = index
        self._bound: tuple[int, int] | None = None
        super().__init__(Memory(torch.zeros(0)), Memory(torch.zeros(0)), name)

    def param(self) -> torch.nn.Parameter:
        """The owning parameter (a shared parameter's owner under PERMISSIVE sharing)."""
        return self._layer.blob_source(self._index)[0]

    def _refresh(self) -> None:
        p, view = self._layer.blob_source(self._index)
        if p.grad is None or p.grad.shape != p.shape or p.grad.device != p.device:
            p.grad = torch.zeros_like(p, memory_format=torch.contiguous_format)
        key = (id(p), id(p.grad), p.data_ptr())
        if self._bound != key:
            data, grad = p.detach(), p.grad
            if view is not None:
                data, grad = data.view(view), grad.view(view)
            self._data_memory.rebind(data)
            self._diff_memory.rebind(grad)
            self._bound = key

    @property
    def data(self) -> np.ndarray:
        self._refresh()
        return self._data_memory.host_array()

    @data.setter
    def data(self, value) -> None:
        self.data[...] = value

    @property
    def diff(self) -> np.ndarray:
        self._refresh()
        return self._diff_memory.host_array()

    @diff.setter
    def diff(self, value) -> None:
        self.diff[...] = value

    @property
    def shape(self) -> tuple[int, ...]:
        self._refresh()
        return self._data_memory.shape

    def memories(self) -> tuple[Memory, Memory]:
        self._refresh()
        return self._data_memory, self._diff_memory

    def reshape(self, *shape: int) -> None:
        raise ValueError(f"param blob {self.name or self._index} cannot be reshaped here: "
                         f"its layer's shape fixes it")


class BlobVec(list):
    """A layer's param blobs (pycaffe's ``BlobVec``). ``add_blob(*shape)`` is for Python
    layers: it appends a learnable param blob to the layer, which the solver then updates."""

    def __init__(self, items: Iterable[Blob] = (), owner=None) -> None:
        super().__init__(items)
        self._owner = owner

    def add_blob(self, *shape: int) -> None:
        if self._owner is None:
            raise ValueError("add_blob is only for a Python layer's own blobs")
        self._owner._add_param_blob(tuple(int(d) for d in shape))
