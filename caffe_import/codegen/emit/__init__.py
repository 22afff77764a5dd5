"""The emitters, one module per layer family as under ``caffe_import/layers`` (and per fork
unit under ``emit/forks``); importing this package fills ``base.EMITTERS``."""
from __future__ import annotations

from . import (combine, conv, crop, embed, inner_product, inputs, loss, neuron,  # noqa: F401
               norm, pooling, scale, shape, softmax)
from .base import EMITTERS, Emission, LayerContext, ParamMap, emits, emitter_for

__all__ = ["EMITTERS", "Emission", "LayerContext", "ParamMap", "emits", "emitter_for"]
