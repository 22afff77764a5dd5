"""Python-layer registries: a model file only selects a class its user registered."""
from __future__ import annotations

import pytest

from caffe_import.layers.base import CaffeLayer
from caffe_import.layers.python_layer import (DEFAULT_PYTHON_LAYERS, PythonLayer,
                                              PythonLayerRegistry, register_python_layer,
                                              registered_python_layers,
                                              unregister_python_layer)
from caffe_import.proto import caffe_pb2


class Mine(CaffeLayer):
    pass


def _param(module: str, layer: str):
    lp = caffe_pb2.LayerParameter(name="py", type="Python")
    lp.python_param.module, lp.python_param.layer = module, layer
    return lp


def test_the_module_functions_are_the_default_registry():
    register_python_layer("m", "L", Mine)
    try:
        assert registered_python_layers()[("m", "L")] is Mine
        assert DEFAULT_PYTHON_LAYERS.resolve(_param("m", "L")) is Mine
        assert PythonLayer.resolve(_param("m", "L")) is Mine
    finally:
        unregister_python_layer("m", "L")
    assert PythonLayer.resolve(_param("m", "L")) is None
    unregister_python_layer("m", "L")  # twice: no error


def test_a_registry_of_its_own_leaves_the_default_alone():
    own = PythonLayerRegistry({("m", "L"): Mine})
    assert own.resolve(_param("m", "L")) is Mine
    assert ("m", "L") not in registered_python_layers()
    entries = own.entries()
    entries.clear()  # a copy
    assert own.resolve(_param("m", "L")) is Mine
    with pytest.raises(TypeError, match="not a CaffeLayer subclass"):
        own.register("m", "X", dict)
