"""pycaffe's ``caffe`` package bound to one Caffe fork schema: what ``caffe-import run --fork
NAME`` (or ``--proto FILE``) gives the script it runs.

:func:`caffe_modules` makes fresh module objects for ``caffe`` (and ``caffe.pycaffe``,
``caffe._caffe``), ``caffe.proto``, ``caffe.proto.caffe_pb2``, ``caffe.net_spec``,
``caffe.classifier`` and ``caffe.detector``: the API of :mod:`caffe_import.pycaffe`, with

* ``Net`` (and ``Classifier``, ``Detector``) subclasses whose ``schema`` class attribute is
  the given schema, so ``caffe.Net(file, phase)`` reads the file with it;
* solver classes (and ``get_solver``) whose nets are those ``Net`` s and whose solver file is
  read with the schema;
* ``caffe.proto.caffe_pb2`` exposing the schema's message classes
  (``caffe_pb2.NetParameter``, a fork's ``NormalizeParameter``) and its top-level enums;
* ``caffe.net_spec`` (and ``caffe.layers``, ``caffe.params``, ``caffe.NetSpec``,
  ``caffe.to_proto``) writing the schema's messages, so a script can set a fork's fields.

Nothing module-level changes anywhere: the schema lives in the classes and modules made for
the run, so two runs with different schemas (nested, or in two threads) each see their own,
and the library's readers (``caffe_import.io.read_net``) keep choosing by content.
"""
from __future__ import annotations

import os
import types
from typing import Any

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from .. import netspec, pycaffe
from ..proto import caffe_pb2
from ..proto.schema import BVLC, Schema
from . import classifier as _classifier
from . import detector as _detector
from . import net_spec as _net_spec
from . import solver as _solver
from .net import Net


class SchemaPb2(types.ModuleType):
    """``caffe.proto.caffe_pb2`` of a schema: its message classes by name (``schema.message``)
    and the top-level enums of its file (``Phase``, ``TRAIN``, ``TEST``)."""

    def __init__(self, schema: Schema, name: str = "caffe.proto.caffe_pb2") -> None:
        super().__init__(name, f"Caffe's messages in schema {schema.name!r}.")
        self.schema = schema
        file = schema.NetParameter.DESCRIPTOR.file
        self.DESCRIPTOR = file
        for enum in file.enum_types_by_name.values():
            setattr(self, enum.name, EnumTypeWrapper(enum))
            for value in enum.values:
                setattr(self, value.name, value.number)

    def __getattr__(self, name: str) -> Any:
        if name[:1].isupper():
            try:
                return self.schema.message(name)
            except KeyError:
                pass
        raise AttributeError(f"schema {self.schema.name!r} has no message {name!r}")


def _module(name: str, like: types.ModuleType | None, attrs: dict[str, Any],
            package: bool = False) -> types.ModuleType:
    """A new module ``name``: the public names of ``like`` (if given), then ``attrs``."""
    module = types.ModuleType(name, like.__doc__ if like is not None else None)
    if like is not None:
        module.__dict__.update({k: v for k, v in vars(like).items()
                                if not k.startswith("__") or k == "__all__"})
    module.__dict__.update(attrs)
    if package:
        module.__path__ = []  # submodules (caffe.io, ...) are found by the run's finder
    return module


def _bound(cls: type, attrs: dict[str, Any], *also: type) -> type:
    """A subclass of ``cls`` (and of ``also``) named as ``cls``, with the class attributes
    ``attrs``."""
    attrs = {"__module__": cls.__module__, "__doc__": cls.__doc__, **attrs}
    return type(cls.__name__, (cls, *also), attrs)


def _solver_api(net_cls: type[Net]) -> dict[str, Any]:
    """The solver classes and ``get_solver``, their nets of ``net_cls``."""
    classes = {cls.__name__: _bound(cls, {"net_class": net_cls})
               for cls in (_solver.Solver, *_solver.SOLVERS)}
    solvers = tuple(classes[cls.__name__] for cls in _solver.SOLVERS)

    def get_solver(filename: str | os.PathLike) -> _solver.Solver:
        return _solver.get_solver(filename, solvers)

    get_solver.__doc__ = _solver.get_solver.__doc__
    return {**classes, "get_solver": get_solver}


def _net_spec_api(schema: Schema) -> dict[str, Any]:
    """``caffe.net_spec``'s names, writing ``schema``'s messages."""

    class NetSpec(netspec.NetSpec):
        __doc__ = netspec.NetSpec.__doc__

        def __init__(self) -> None:
            super().__init__(schema)

    def to_proto(*tops: netspec.Top, name: str | None = None) -> Any:
        return netspec.to_proto(*tops, name=name, schema=schema)

    to_proto.__doc__ = netspec.to_proto.__doc__
    layers, params = netspec.Layers(schema), netspec.Params(schema)
    return {"NetSpec": NetSpec, "to_proto": to_proto, "Top": netspec.Top,
            "Function": netspec.Function, "layers": layers, "params": params,
            "L": layers, "P": params}


def caffe_modules(schema: Schema) -> dict[str, types.ModuleType]:
    """``{module name: module}`` of the ``caffe`` package bound to ``schema`` (see the module
    docstring); the names not listed (``caffe.io``, ``caffe.coord_map``, ``caffe.draw``) hold
    nothing schema-bound and stay the library's own modules."""
    net_cls = _bound(Net, {"schema": schema})
    classifier_cls = _bound(_classifier.Classifier, {"schema": schema}, net_cls)
    detector_cls = _bound(_detector.Detector, {"schema": schema}, net_cls)
    pb2 = caffe_pb2 if schema.name == BVLC else SchemaPb2(schema)
    proto = _module("caffe.proto", None, {"caffe_pb2": pb2}, package=True)
    spec = _net_spec_api(schema)
    net_spec = _module("caffe.net_spec", _net_spec, spec)
    classifier = _module("caffe.classifier", _classifier, {"Classifier": classifier_cls})
    detector = _module("caffe.detector", _detector, {"Detector": detector_cls})
    caffe = _module("caffe", pycaffe, {}, package=True)
    caffe.__dict__.update(
        Net=net_cls, Classifier=classifier_cls, Detector=detector_cls, proto=proto,
        net_spec=net_spec, classifier=classifier, detector=detector, NetSpec=spec["NetSpec"],
        to_proto=spec["to_proto"], layers=spec["layers"], params=spec["params"],
        pycaffe=caffe, _caffe=caffe, **_solver_api(net_cls))
    return {"caffe": caffe, "caffe.pycaffe": caffe, "caffe._caffe": caffe,
            "caffe.proto": proto, "caffe.proto.caffe_pb2": pb2, "caffe.net_spec": net_spec,
            "caffe.classifier": classifier, "caffe.detector": detector}


__all__ = ["caffe_modules", "SchemaPb2"]
