"""``type: "Python"`` layers, without importing anything a model file names.

Caffe imports ``python_param.module`` and instantiates ``python_param.layer`` from it: running
code chosen by a model file. Here a model file can only *select* a class its user registered
beforehand, in the registry the net is built with::

    from caffe_import.layers.python_layer import register_python_layer
    register_python_layer("voc_layers", "VOCSegDataLayer", MyVOCLayer)  # the default one

    layers = PythonLayerRegistry({("voc_layers", "VOCSegDataLayer"): MyVOCLayer})
    net = CaffeNet("train.prototxt", phase="train", python_layers=layers)  # only this net

``MyVOCLayer`` is a :class:`~caffe_import.layers.base.CaffeLayer` subclass, built like every
layer as ``cls(param, bottom_shapes, phase)``; ``param.python_param.param_str`` is the raw
string Caffe hands to ``setup`` (parse it yourself; never ``eval`` it). Subclassing
:class:`PythonLayer` gives ``self.param_str`` and Caffe's integer ``self.phase_id`` (TRAIN=0,
TEST=1). Like Caffe's, a Python layer is not a loss layer: give ``loss_weight`` explicitly.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from .base import CaffeLayer, Shape, DTYPE_FLOAT32
from . import registry
from .registry import register


class PythonLayerRegistry:
    """``(python_param.module, python_param.layer) -> class``: where a net build finds the
    class of each ``type: "Python"`` layer (``CaffeNet(..., python_layers=registry)``).

    :data:`DEFAULT_PYTHON_LAYERS` is the one :func:`register_python_layer` fills and nets use
    unless given another; pycaffe's ``Net`` builds with its own, holding the classes it
    imported for that net."""

    def __init__(self, entries: Mapping[tuple[str, str], type[CaffeLayer]] | None = None
                 ) -> None:
        self._classes: dict[tuple[str, str], type[CaffeLayer]] = {}
        for (module, layer), cls in (entries or {}).items():
            self.register(module, layer, cls)

    def register(self, module: str, layer: str, cls: type[CaffeLayer]) -> None:
        """Let nets whose ``python_param`` names ``module`` and ``layer`` build ``cls``."""
        if not (isinstance(cls, type) and issubclass(cls, CaffeLayer)):
            raise TypeError(f"{cls!r} is not a CaffeLayer subclass")
        self._classes[(str(module), str(layer))] = cls

    def unregister(self, module: str, layer: str) -> None:
        """Forget a registration (no error when there was none)."""
        self._classes.pop((str(module), str(layer)), None)

    def entries(self) -> dict[tuple[str, str], type[CaffeLayer]]:
        """A copy of the ``(module, layer) -> class`` table."""
        return dict(self._classes)

    def resolve(self, param) -> type[CaffeLayer] | None:
        """The class registered for this LayerParameter's ``python_param``, or None."""
        p = param.python_param
        return self._classes.get((p.module, p.layer))


#: the registry nets build with unless given another
DEFAULT_PYTHON_LAYERS = PythonLayerRegistry()


def register_python_layer(module: str, layer: str, cls: type[CaffeLayer]) -> None:
    """Let nets whose ``python_param`` names ``module`` and ``layer`` build ``cls`` (in
    :data:`DEFAULT_PYTHON_LAYERS`)."""
    DEFAULT_PYTHON_LAYERS.register(module, layer, cls)


def unregister_python_layer(module: str, layer: str) -> None:
    """Forget a registration in :data:`DEFAULT_PYTHON_LAYERS` (no error when there was none)."""
    DEFAULT_PYTHON_LAYERS.unregister(module, layer)


#: ``"module.Layer"`` -> (class, the Python call that enables it): caffe_import's own classes
#: for well-known Python layers, offered by the fork units that hold them (filled when the
#: layer registry loads them)
_BUILTIN: dict[str, tuple[type[CaffeLayer], str]] = {}


def offer_builtin_python_layer(module: str, layer: str, cls: type[CaffeLayer],
                               enable: str) -> None:
    """Name ``cls`` as the built-in class for ``python_param { module layer }``: the error for
    such an unregistered layer then names ``enable`` (the call that registers it) and the
    command lines' ``--builtin-python-layer module.Layer``."""
    _BUILTIN[f"{module}.{layer}"] = (cls, enable)


def builtin_python_layers() -> dict[str, tuple[type[CaffeLayer], str]]:
    """``"module.Layer"`` -> (class, enabling call) for every built-in Python layer class."""
    registry.get("Python")  # loads every layer module, the fork units' too
    return dict(_BUILTIN)


def registered_python_layers() -> dict[tuple[str, str], type[CaffeLayer]]:
    """A copy of :data:`DEFAULT_PYTHON_LAYERS`'s ``(module, layer) -> class`` table."""
    return DEFAULT_PYTHON_LAYERS.entries()


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
        """The class :data:`DEFAULT_PYTHON_LAYERS` holds for this layer's ``python_param``, or
        None (a net build given its own registry asks that one instead)."""
        return DEFAULT_PYTHON_LAYERS.resolve(param)

    @staticmethod
    def describe(param) -> str:
        p = param.python_param
        builtin = _BUILTIN.get(f"{p.module}.{p.layer}")
        how = (f"caffe_import has a built-in one: call {builtin[1]} (on the command line "
               f"--builtin-python-layer {p.module}.{p.layer}), or register your own with "
               if builtin else "call ")
        return f"Python layer module '{p.module}' layer '{p.layer}' is not registered " \
               f"({how}caffe_import.layers.python_layer.register_python_layer)"
