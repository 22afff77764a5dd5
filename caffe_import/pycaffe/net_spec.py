"""``caffe.net_spec``: the project's one net-spec DSL under pycaffe's names
(``layers``/``L``, ``params``/``P``, ``NetSpec``, ``to_proto``, ``Top``, ``Function``).

Differences from pycaffe's ``net_spec.py`` are the DSL's own (it checks keyword arguments
when a layer is written, and takes ``Deconvolution`` kwargs flat); see its module docstring.
"""
from __future__ import annotations

try:  # the DSL's home in caffe_import (its earlier home was fcn_repro)
    from caffe_import import netspec as _dsl  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the tree's age
    from fcn_repro import netspec as _dsl

NetSpec = _dsl.NetSpec
to_proto = _dsl.to_proto
Top = _dsl.Top
Function = _dsl.Function
layers = L = _dsl.L
params = P = _dsl.P

__all__ = ["NetSpec", "to_proto", "Top", "Function", "layers", "params"]
