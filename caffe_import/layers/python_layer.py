"""``type: "Python"`` layers, without importing anything a model file names.

Caffe imports ``python_param.module`` and instantiates ``python_param.layer`` from it: running
code chosen by a model file. Here a model file can only *select* a class its user registered
beforehand::

    from caffe_import.layers.python_layer import register_python_layer
    register_python_layer("voc_layers", "VOCSegDataLayer", MyVOCLayer)

``MyVOCLayer`` is a :class:`~caffe_import.layers.base.CaffeLayer` subclass, built like every
layer as ``cls(param, bottom_shapes, phase)``; ``param.python_param.param_str`` is the raw
string Caffe hands to ``setup`` (parse it yourself; never ``eval`` it). Subclassing
:class:`PythonLayer` gives ``self.param_str`` and Caffe's integer ``self.phase_id`` (TRAIN=0,
TEST=1). Like Caffe's, a Python layer is not a loss layer: give ``loss_weight`` explicitly.
"""
from __future__ import annotations

from typing import Sequence

from .base import CaffeLayer, Shape, DTYPE_FLOAT32
from .registry import register

_PYTHON_LAYERS: dict[tuple[str, str], type[CaffeLayer]] = {}


def register_python_layer(module: str, layer: str, cls: type[CaffeLayer]) -> None:
    """Let nets whose ``python_param`` names ``module`` and ``layer`` build ``cls``."""
    if not (isinstance(cls, type) and issubclass(cls, CaffeLayer)):
        raise TypeError(f"{cls!r} is not a CaffeLayer subclass")
    _PYTHON_LAYERS[(str(module), str(layer))] = cls


def unregister_python_layer(module: str, layer: str) -> None:
    """Forget a registration (no error when there was none)."""
    _PYTHON_LAYERS.pop((str(module), str(layer)), None)


def registered_python_layers() -> dict[tuple[str, str], type[CaffeLayer]]:
    """A copy of the ``(module, layer) -> class`` table."""
    return dict(_PYTHON_LAYERS)


@register("Python")
class PythonLayer(CaffeLayer):
    """Stands for ``type: "Python"`` in the registry; :meth:`resolve` picks the user's class.

    Also a convenient base for user classes (``self.param_str``, ``self.phase_id``).
    """
    #: float32 even under precision='fast': user code expects Caffe's float32 blobs
    dtype_policy = DTYPE_FLOAT32

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        self.param_str: str = param.python_param.param_str
        self.phase_id: int = 0 if phase == "train" else 1

    @classmethod
    def resolve(cls, param) -> type[CaffeLayer] | None:
        """The class registered for this layer's ``python_param``, or None."""
        p = param.python_param
        return _PYTHON_LAYERS.get((p.module, p.layer))

    @staticmethod
    def describe(param) -> str:
        p = param.python_param
        return f"Python layer module '{p.module}' layer '{p.layer}' is not registered " \
               f"(call caffe_import.layers.python_layer.register_python_layer)"
