"""``caffe.Layer``: Python layers as pycaffe runs them.

Caffe's ``PythonLayer`` imports ``python_param.module`` (from ``sys.path``), instantiates
``python_param.layer`` from it with the layer's parameter, sets ``param_str`` and ``phase``,
and calls ``setup(bottom, top)`` then ``reshape(bottom, top)`` when the net is built; every
forward calls ``reshape`` then ``forward``, every backward ``backward(top, propagate_down,
bottom)``. ``bottom`` and ``top`` are lists of the net's own :class:`Blob` objects.

Importing the module a model file names runs code the model chose. Plain ``CaffeNet`` refuses
to (see ``caffe_import.layers.python_layer``); pycaffe does it because running a pycaffe script
(``caffe-import run``) is the user's opt-in, as running it under Caffe would be. The import is
made when a pycaffe ``Net`` is built, by the registry that net alone is built with
(:class:`ImportingPythonLayers`).

Gradients: a Python layer's ``backward`` is wrapped in a ``torch.autograd.Function``, so it
feeds autograd like any other layer: the top gradients arrive in ``top[i].diff``, what the
layer writes into ``bottom[i].diff`` flows on, and what it writes into its own param blobs'
diffs (``self.blobs[i].diff``) is the gradient the solver uses, as in Caffe.
"""
from __future__ import annotations

import importlib
import sys
from typing import Sequence

import torch

from ..errors import CaffeFormatError
from ..layers.base import CaffeLayer, Shape
from ..layers.python_layer import PythonLayerRegistry
from .blob import Blob, BlobVec, ParamBlob

_PATH_SHOWN = 3  # sys.path entries a failed Python-layer import names


class Layer:
    """Base class of pycaffe Python layers (``class MyLayer(caffe.Layer)``).

    Attributes Caffe sets before ``setup``: ``param_str`` (the raw ``python_param.param_str``),
    ``phase`` (``caffe.TRAIN`` = 0 or ``caffe.TEST`` = 1); also ``blobs`` (the layer's param
    blobs; ``self.blobs.add_blob(*shape)`` adds one) and ``type`` (``"Python"``).
    """

    type = "Python"

    def __init__(self, param=None) -> None:
        self.param_str = ""
        self.phase = 1
        self._adapter: "PythonLayerAdapter | None" = None

    @property
    def blobs(self) -> BlobVec:
        adapter = self.__dict__.get("_adapter")
        if adapter is None:
            return BlobVec()
        return BlobVec(adapter.param_blobs, owner=adapter)

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        pass

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        pass

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        pass

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        pass


class PythonLayerSetupError(CaffeFormatError):
    """A user layer's ``setup`` or ``reshape`` raised: carries that exception (its
    ``__cause__``) through the net's build, which passes ``CaffeFormatError`` on unwrapped;
    ``caffe.Net`` re-raises the user's exception itself, as pycaffe does."""


class PythonLayerAdapter(CaffeLayer):
    """The ``CaffeLayer`` that stands for one user Python layer inside a ``CaffeNet``.

    The pycaffe ``Net`` drives it with the net's own blobs (:meth:`run_forward`); its
    ``top_shapes`` are what the user's ``reshape`` gave at setup.
    """

    user_class: type = Layer

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        self.param_blobs: list[ParamBlob] = []
        user = self.user_class(param)
        user.__dict__["_adapter"] = self
        user.param_str = param.python_param.param_str
        user.phase = 0 if phase == "train" else 1
        self.user = user
        bottoms = [Blob.zeros(s) for s in bottom_shapes]
        tops = [Blob.zeros(()) for _ in param.top]
        try:
            user.setup(bottoms, tops)
            user.reshape(bottoms, tops)
        except CaffeFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - carried through the build, re-raised as is
            raise PythonLayerSetupError(f"Python layer setup raised {type(exc).__name__}: "
                                        f"{exc}", layer=self.name) from exc
        self._setup_shapes = [t.shape for t in tops]

    def _add_param_blob(self, shape: tuple[int, ...]) -> None:
        self.add_blob(shape)
        self.param_blobs.append(ParamBlob(self, len(self.param_blobs), self.name))

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return list(self._setup_shapes)

    def forward(self, *bottoms: torch.Tensor):  # pragma: no cover - the pycaffe Net drives it
        raise CaffeFormatError("a pycaffe Python layer runs only inside a caffe.Net",
                               layer=self.name)

    def run_forward(self, bottoms: list[Blob], tops: list[Blob],
                    live: list[torch.Tensor] | None) -> list[torch.Tensor]:
        """Caffe's ``Layer::Forward``: ``reshape`` then ``forward`` on the net's blobs.

        ``live``: the bottoms as autograd tensors when gradients are recorded; the tops
        returned are then outputs of a ``torch.autograd.Function`` whose backward calls the
        user's ``backward``.
        """
        self.user.reshape(bottoms, tops)
        if live is not None and any(t.requires_grad for t in live):
            return list(_PythonFunction.apply(self, bottoms, tops, *live))
        self.user.forward(bottoms, tops)
        return [t._data_memory.tensor() for t in tops]


class _PythonFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adapter: PythonLayerAdapter, bottoms, tops, *live):
        ctx.adapter, ctx.bottoms, ctx.tops = adapter, bottoms, tops
        ctx.needs = [t.requires_grad for t in live]
        adapter.user.forward(bottoms, tops)
        return tuple(t._data_memory.tensor().clone() for t in tops)

    @staticmethod
    def backward(ctx, *grads):
        for top, g in zip(ctx.tops, grads):
            if g is None:
                top._diff_memory.reshape(top.shape)
                top._diff_memory.tensor().zero_()
            else:
                top._diff_memory.write(g)
        for b in ctx.bottoms:
            b._diff_memory.reshape(b.shape)
        ctx.adapter.user.backward(ctx.tops, list(ctx.needs), ctx.bottoms)
        out = [b._diff_memory.tensor().clone() if need else None
               for b, need in zip(ctx.bottoms, ctx.needs)]
        return (None, None, None, *out)


def _adapter_for(module_name: str, layer_name: str, where: str) -> type[CaffeLayer]:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        # one error, not importlib's chained frames: the layer, the module and where it was
        # looked for (Caffe's PythonLayer imports from sys.path the same way)
        raise ImportError(_import_failure(module_name, where, exc), name=module_name) from None
    cls = getattr(module, layer_name, None)
    if not isinstance(cls, type):
        raise CaffeFormatError(f"module '{module_name}' has no class '{layer_name}' "
                               f"(python_param.layer)", layer=where)
    return type(f"Python_{module_name}_{layer_name}", (PythonLayerAdapter,),
                {"user_class": cls})


def _import_failure(module_name: str, where: str, exc: ImportError) -> str:
    """The message for a Python layer whose module did not import."""
    shown = [p or "'' (the current directory)" for p in sys.path[:_PATH_SHOWN]]
    more = f" and {len(sys.path) - _PATH_SHOWN} more" if len(sys.path) > _PATH_SHOWN else ""
    missing = exc.name or ""
    if missing and missing != module_name and not module_name.startswith(missing + "."):
        why = f"the module was found but its own import failed: {exc}"
    else:
        why = f"no module named '{module_name}' on sys.path"
    return (f"Python layer '{where}': cannot import python_param.module '{module_name}' "
            f"({why}); sys.path starts with {', '.join(shown)}{more}. Put the folder that "
            f"holds {module_name.split('.')[0]}.py on PYTHONPATH or next to the script")


class ImportingPythonLayers(PythonLayerRegistry):
    """The registry a pycaffe ``Net`` builds with: each Python layer's class is imported from
    its ``python_param.module`` (on ``sys.path``) when the build asks for it, as Caffe's
    ``PythonLayer`` does. Registrations made in the default registry play no part and are
    left as they are."""

    def resolve(self, param) -> type[CaffeLayer]:
        found = super().resolve(param)
        if found is None:
            p = param.python_param
            found = _adapter_for(p.module, p.layer, param.name)
            self.register(p.module, p.layer, found)
        return found
