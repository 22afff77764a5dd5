"""The base class of every Caffe layer module, and the small rules every layer family shares
(Caffe's axis indexing, float32 rounding of proto values, whether a trace is running)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..compat import is_compiling
from ..errors import CaffeFormatError

Shape = tuple[int, ...]

#: C's ``FLT_MAX``: Caffe's ``-FLT_MAX`` marks an empty pooling window (MAX pooling, ROIPooling,
#: SSD's box search starts from it)
FLT_MAX = 3.4028234663852886e38

#: ``CaffeLayer.dtype_policy`` values: how a layer takes part in reduced-precision inference
#: (``precision="fast"``, see ``caffe_import.precision``).
DTYPE_ANY, DTYPE_FLOAT32, DTYPE_REDUCED = "any", "float32", "reduced"


def canonical_axis(axis: int, num_axes: int, layer: str, what: str = "axis") -> int:
    """Caffe's ``CanonicalAxisIndex``: ``axis`` in ``[-num_axes, num_axes)``, negatives wrap."""
    if not -num_axes <= axis < num_axes:
        raise CaffeFormatError(f"{what} {axis} is out of range for a blob with {num_axes} "
                               f"axes (expected -{num_axes} <= {what} < {num_axes})", layer=layer)
    return axis + num_axes if axis < 0 else axis


def _counts(allowed: int | Sequence[int]) -> tuple[int, ...]:
    return (allowed,) if isinstance(allowed, int) else tuple(allowed)


def check_arity(param, bottoms: int | Sequence[int], tops: int | Sequence[int],
                roles: str = "") -> None:
    """Caffe's ``ExactNumBottomBlobs``/``ExactNumTopBlobs`` (or the allowed counts): a
    ``CaffeFormatError`` naming the layer and the counts otherwise; ``roles`` names the
    bottoms in the message, e.g. ``"features, rois"``."""
    nb, nt = _counts(bottoms), _counts(tops)
    if len(param.bottom) not in nb or len(param.top) not in nt:
        words = [" or ".join(filter(None, (", ".join(map(str, c[:-1])), str(c[-1]))))
                 for c in (nb, nt)]
        roles = f" ({roles})" if roles else ""
        raise CaffeFormatError(f"{param.type} takes {words[0]} bottom(s){roles} and {words[1]} "
                               f"top(s), got {len(param.bottom)} and {len(param.top)}",
                               layer=param.name)


def check_4d(shape: Sequence[int], layer: str, kind: str, what: str = "bottom") -> None:
    """A ``CaffeFormatError`` unless ``shape`` is 4-D (N, C, H, W)."""
    if len(shape) != 4:
        raise CaffeFormatError(f"{kind} needs a 4-D {what} (N, C, H, W), got {tuple(shape)}",
                               layer=layer)


def legacy_4d(shape: Sequence[int], layer: str, what: str = "bottom") -> tuple[int, int, int, int]:
    """``(num, channels, height, width)`` as Caffe's legacy blob accessors read ``shape``:
    missing trailing axes are 1; more than 4 axes is a ``CaffeFormatError`` (Caffe refuses
    them there too)."""
    if len(shape) > 4:
        raise CaffeFormatError(f"{what} {tuple(shape)} has more than 4 axes: the layer reads "
                               f"it as (N, C, H, W)", layer=layer)
    full = tuple(int(d) for d in shape) + (1,) * (4 - len(shape))
    return full[0], full[1], full[2], full[3]


def check_channels(shape: Sequence[int], channels: int, layer: str) -> None:
    """A ``CaffeFormatError`` unless axis 1 of ``shape`` has the ``channels`` the layer's
    params were sized for at build time."""
    if len(shape) < 2 or shape[1] != channels:
        raise CaffeFormatError(f"bottom {tuple(shape)} does not have the {channels} channels "
                               f"this layer was built for", layer=layer)


def f32(value: float) -> float:
    """``value`` rounded to float32, as Caffe holds a ``float`` proto field or a ``Dtype``."""
    return float(np.float32(value))


def tracing() -> bool:
    """Whether torch.export / torch.compile / jit tracing is running: no data-dependent checks
    or host reads then."""
    return is_compiling() or torch.jit.is_tracing()


class CaffeLayer(nn.Module):
    """One Caffe layer as a PyTorch module.

    Built from its ``LayerParameter`` and the shapes of its bottoms (Caffe's ``LayerSetUp``
    sees them too: InnerProduct, Scale, PReLU ... size their params from them). ``phase`` is
    ``"train"`` or ``"test"``: in Caffe the phase is fixed when the net is built, so layers read
    it here rather than from ``nn.Module.training``.

    ``self.blobs`` holds the param blobs in Caffe's order (``net.params[name]`` in pycaffe);
    ``forward(*bottoms)`` returns a tuple with one tensor per top. Param blob ``i`` is
    registered as the parameter named ``"<i>"``, so a layer's ``state_dict`` keys are
    ``"0"``, ``"1"``, ... and a net's are ``"<layer>.<i>"``. Read params through
    ``self.blobs[i]`` in ``forward`` (not through an attribute kept from ``add_blob``): the net
    may replace a blob by one shared with another layer (``ParamSpec.name``), and under
    ``share_mode: PERMISSIVE`` ``self.blobs[i]`` is then a reshaped view of the owner's blob.

    A registered class may define ``resolve(param) -> type[CaffeLayer] | None`` (classmethod):
    the net then builds the class it returns, or reports the layer as unavailable when it
    returns None (``type: "Python"`` uses this to pick the user's registered class).

    Where Caffe forks implement one layer type differently (PSPNet's and SegNet's ``BN``), each
    fork's class is registered for its fork (``@register("BN", fork="segnet")``); when no fork
    is named, the registry builds the candidate whose ``claim(param)`` is highest (see
    :meth:`claim`), so no layer needs to know which other forks exist.
    """

    type_names: tuple[str, ...] = ()
    #: Set by the net when Caffe computes this layer in place (top == bottom) and no other
    #: layer or input holds the bottom's tensor: then, when no gradient is recorded, the layer
    #: may write its top into the bottom's memory, as Caffe does (ReLU uses this).
    may_overwrite_bottom: bool = False
    #: Under ``precision="fast"``: ``"reduced"`` layers compute in the reduced dtype (the net
    #: casts their floating bottoms and params to it; 4-D ones to channels_last);
    #: ``"float32"`` layers must stay exact (softmax, losses, accumulations, argmax ties,
    #: integer-valued bottoms such as labels or indices): the net hands them float32 bottoms
    #: and never casts their params; ``"any"`` (default) layers run in whatever dtype reaches
    #: them, params untouched (PyTorch promotes a mix to float32). A new layer whose forward
    #: mixes dtypes badly, or holds exact integers in float blobs, declares ``"float32"``.
    dtype_policy: str = DTYPE_ANY
    #: True when the layer has ``forward_relu(*bottoms)``: its forward followed by Caffe's
    #: ReLU (slope 0) in one pass; the net uses it under ``precision="fast"`` for an in-place
    #: ReLU that immediately follows and is the only reader of the layer's top.
    fuses_relu: bool = False
    #: Why the layer's forward must read values back from the device (an output whose size
    #: depends on the data: DetectionOutput's kept boxes, ROIPooling's widest window); empty
    #: for layers that never make the host wait. tools/gpu_check.sh checks every other layer
    #: under ``torch.cuda.set_sync_debug_mode("error")`` and reports these as documented.
    host_reads: str = ""

    @classmethod
    def claim(cls, param) -> int:
        """How clearly ``param`` is this class's layer when several forks implement its type
        and the schema names none (the default mixture, a user's schema): 2, the layer's own
        settings say so (fields only this fork has are set, its bottom count); 1, it could be
        (the schema has this fork's fields); 0, no sign. The highest claim is built, the first
        fork in the default order on a tie. Default: 0."""
        return 0

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__()
        self.param = param
        self.name: str = param.name
        self.phase = phase
        self.bottom_shapes = [tuple(int(d) for d in s) for s in bottom_shapes]
        self._num_blobs = 0
        # blob index -> (owner parameter, shape this layer sees): PERMISSIVE sharing only
        self._blob_views: dict[int, Shape] = {}

    @property
    def blobs(self) -> list[torch.Tensor]:
        """Param blobs in Caffe's order (``nn.Parameter``; a view for PERMISSIVE sharing)."""
        out = []
        for i in range(self._num_blobs):
            p = self._parameters[str(i)]
            shape = self._blob_views.get(i)
            out.append(p if shape is None else p.view(shape))
        return out

    def add_blob(self, shape: Sequence[int], requires_grad: bool = True) -> nn.Parameter:
        """Append a param blob of ``shape`` (zeros; the layer or its fillers initialise it)."""
        p = nn.Parameter(torch.zeros(tuple(int(d) for d in shape)), requires_grad=requires_grad)
        self.register_parameter(str(self._num_blobs), p)
        self._num_blobs += 1
        return p

    def set_blob(self, index: int, param: nn.Parameter, view_shape: Shape | None = None) -> None:
        """Make blob ``index`` the parameter ``param`` (Caffe's param sharing).

        ``view_shape``: the shape this layer expects when it differs from ``param``'s (equal
        element counts, ``share_mode: PERMISSIVE``); ``self.blobs[index]`` is then a view.
        Attributes of this module that still pointed at the replaced parameter are rebound.
        """
        old = self._parameters[str(index)]
        for key, value in list(self._parameters.items()):
            if value is old:
                self._parameters[key] = param
        if view_shape is not None and tuple(view_shape) != tuple(param.shape):
            self._blob_views[index] = tuple(int(d) for d in view_shape)
        else:
            self._blob_views.pop(index, None)

    def blob_source(self, index: int) -> tuple[nn.Parameter, Shape | None]:
        """The parameter behind blob ``index`` and the shape this layer views it as (None when
        its own): what :meth:`set_blob` takes, so another layer can share this blob."""
        return self._parameters[str(index)], self._blob_views.get(index)

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
                     for k, v in [*self.named_parameters(remove_duplicate=False),
                                 *self.named_buffers(remove_duplicate=False)]}
            tops = functional_call(self, state, tuple(bottoms))
        return [tuple(t.shape) for t in tops]

    def set_precision(self, policy) -> None:
        """Called by the net when its precision mode is set (``caffe_import.precision``'s
        ``PrecisionPolicy``): a layer may pick its kernels here. Default: nothing."""

    def extra_repr(self) -> str:
        return f"name={self.name!r}"
