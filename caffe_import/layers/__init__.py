"""Every Caffe layer as a PyTorch module; ``registry.get(type_name)`` finds the class."""
from .base import CaffeLayer
from .registry import get, known_types, register

__all__ = ["CaffeLayer", "get", "known_types", "register"]
