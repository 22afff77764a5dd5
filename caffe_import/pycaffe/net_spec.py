"""``caffe.net_spec``: the project's one net-spec DSL (``caffe_import.netspec``) under pycaffe's
names (``layers``/``L``, ``params``/``P``, ``NetSpec``, ``to_proto``, ``Top``, ``Function``).

Differences from pycaffe's ``net_spec.py`` are the DSL's own (it checks keyword arguments
when a layer is written, and takes ``Deconvolution`` kwargs flat); see its module docstring.
"""
from __future__ import annotations

from ..netspec import L, P, Function, NetSpec, Top, to_proto

layers = L
params = P

__all__ = ["NetSpec", "to_proto", "Top", "Function", "layers", "params"]
