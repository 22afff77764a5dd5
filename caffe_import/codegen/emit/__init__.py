"""The emitters, one module per layer family as under ``caffe_import/layers`` (and one per
fork unit under ``emit/forks``); importing this package fills ``base.EMITTERS``."""
from __future__ import annotations

from . import (argmax, combine, conv, crop, data, data_read, eltwise, embed,  # noqa: F401
               hdf5_data, hdf5_output, inner_product, input, loss, memory_data, misc,
               mobilenet, neuron, norm, pooling, recurrent, reduction, scale, senet, shape,
               softmax, window_data)
from .forks import (deeplab, deeplab_v1, fast_rcnn, pspnet, segnet, shufflenet,  # noqa: F401
                    ssd, yolo, yolov2)
from .base import EMITTERS, Emission, LayerContext, ParamMap, emits, emitter_for

__all__ = ["EMITTERS", "Emission", "LayerContext", "ParamMap", "emits", "emitter_for"]
