"""Every Caffe layer as a PyTorch module; ``registry.get(type_name, fork=None)`` finds the class
(BVLC's here, a fork's in its unit, ``caffe_import/forks/<unit>/layers.py``)."""
from .base import CaffeLayer
from .registry import get, known_types, register

__all__ = ["CaffeLayer", "get", "known_types", "register"]
