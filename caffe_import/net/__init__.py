"""Caffe nets as ``torch.nn.Module``: :class:`CaffeNet` and the pieces it is made of.

Rooms, by concern (imports go down this list, never up):

* ``state.py`` - which layers exist in a net state (``filter_net``, Caffe's ``NetStateRule``);
* ``plan.py`` - how a built net runs: liveness, Convolution+ReLU fusion, in-place rights;
* ``build.py`` - instantiating and wiring the layers as Caffe's ``Net::Init`` (``Step``,
  ``ParamSpecInfo``, ``NetBuilder``);
* ``blobs.py`` - ``BlobTensors``, the blob mapping forward returns;
* ``weights.py`` - weights by layer name: copy in, share with another net, read out;
* ``caffenet.py`` - ``CaffeNet`` itself: construction, forward, gradients, precision.
"""
from __future__ import annotations

from ..layers.data_read import DataReading
from .blobs import BlobTensors
from .build import AUTO_TOP, NetBuilder, ParamSpecInfo
from .plan import Step
from .caffenet import CaffeNet
from .state import filter_net, layer_included, phase_name, state_meets_rule
from .weights import MissingWeightsWarning, strict_weights

__all__ = ["CaffeNet", "filter_net", "phase_name", "state_meets_rule", "layer_included",
           "ParamSpecInfo", "Step", "BlobTensors", "AUTO_TOP", "NetBuilder",
           "MissingWeightsWarning", "strict_weights", "DataReading"]
