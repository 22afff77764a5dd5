"""The catalogue of shipped Caffe forks: which there are, what each owns, in which order.

Every fork is one unit under ``caffe_import/forks/`` (see that package); this module finds
them by importing each unit's ``__init__`` (its ``FORK`` entry, nothing heavy) and derives what
the rest of the package asks: the canonical names and aliases (:func:`canonical_fork`), the
default mixture's order (:data:`DEFAULT_ORDER`, by each entry's ``rank``), the layer types
reading a ``*_param`` field (:func:`param_types`), the V1 type names (:data:`V1_TYPE_NAMES`),
and each fork's compiled schema delta (:func:`delta`).
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Optional

from google.protobuf import descriptor_pb2 as dpb

from .. import forks as _units
from ..errors import UsageError
from ..forks import Fork

__all__ = ["BVLC", "DEFAULT", "DEFAULT_ORDER", "FORKS", "Fork", "V1_TYPE_NAMES",
           "canonical_fork", "delta", "fork_names", "forks_defining", "package_of",
           "param_types"]

DEFAULT = "default"
BVLC = "bvlc"

#: LayerParameter ``*_param`` fields of BVLC's own whose layer types are not the CamelCase of
#: the field name (the forks' own are in their entries' ``param_types``)
BVLC_PARAM_TYPES: dict[str, tuple[str, ...]] = {
    "recurrent_param": ("Recurrent", "RNN", "LSTM"), "inner_product_param": ("InnerProduct",),
    "lrn_param": ("LRN",), "mvn_param": ("MVN",), "hdf5_data_param": ("HDF5Data",),
    "hdf5_output_param": ("HDF5Output",), "relu_param": ("ReLU",), "prelu_param": ("PReLU",),
    "elu_param": ("ELU",), "tanh_param": ("TanH",), "loss_param": (),
    "transform_param": (), "argmax_param": ("ArgMax",),
}


def _discover() -> dict[str, tuple[Fork, str]]:
    """Fork name -> (its entry, its unit's package), in the default order."""
    found = []
    for info in pkgutil.iter_modules(_units.__path__):
        if not info.ispkg:
            continue
        package = f"{_units.__name__}.{info.name}"
        entry = getattr(importlib.import_module(package), "FORK", None)
        if not isinstance(entry, Fork):
            raise RuntimeError(f"{package} has no FORK = Fork(...) entry")
        found.append((entry, package))
    found.sort(key=lambda item: (item[0].rank, item[0].name))
    return {entry.name: (entry, package) for entry, package in found}


_UNITS = _discover()

#: fork name -> its catalogue entry, in the default order
FORKS: dict[str, Fork] = {name: entry for name, (entry, _) in _UNITS.items()}

#: who keeps a name two forks define differently in the default schema (first wins)
DEFAULT_ORDER: tuple[str, ...] = tuple(FORKS)

#: V1 ``LayerType`` enum names of the forks whose string type is not the name in CamelCase
V1_TYPE_NAMES: dict[str, str] = {k: v for f in FORKS.values() for k, v in f.v1_types.items()}


def _param_table() -> dict[str, tuple[str, ...]]:
    table = dict(BVLC_PARAM_TYPES)
    for fork in FORKS.values():
        for name, types in fork.param_types.items():
            table[name] = tuple(dict.fromkeys(table.get(name, ()) + tuple(types)))
    return table


_PARAM_TYPES = _param_table()


def param_types(name: str) -> tuple[str, ...]:
    """The layer types that read the ``LayerParameter`` field ``name`` (``bn_param`` ->
    ``("BN",)``; by default the field name in CamelCase: ``interp_param`` -> ``Interp``)."""
    if name in _PARAM_TYPES:
        return _PARAM_TYPES[name]
    if not name.endswith("_param"):
        return ()
    return ("".join(p[:1].upper() + p[1:] for p in name[:-len("_param")].split("_")),)


def fork_names() -> list[str]:
    """The shipped forks' names, in the default schema's order."""
    return list(DEFAULT_ORDER)


def canonical_fork(name: str) -> str:
    """A fork name (or alias, any case) -> its canonical name; UsageError when unknown."""
    key = str(name).strip().lower().replace("_", "-")
    if key in (BVLC, "caffe", "master"):
        return BVLC
    if key in (DEFAULT, "auto", "all"):
        return DEFAULT
    for fork in FORKS.values():
        if key == fork.name or key in fork.aliases:
            return fork.name
    raise UsageError(f"unknown Caffe fork {name!r}; known: {', '.join([BVLC] + fork_names())} "
                     "(or pass the fork's own caffe.proto with proto=/--proto)")


def forks_defining(layer_type: str) -> list[str]:
    """The shipped forks that add a layer of this type (in the default order)."""
    return [f.name for f in FORKS.values() if layer_type in f.layers]


def package_of(name: str) -> Optional[str]:
    """The unit package of a shipped fork (``caffe_import.forks.segnet_cudnn5``), else None."""
    unit = _UNITS.get(name)
    return unit[1] if unit is not None else None


@functools.lru_cache(maxsize=None)
def delta(name: str) -> dpb.FileDescriptorProto:
    """A shipped fork's compiled delta (its unit's ``delta_pb.py``, package ``caffe.<fork>``)."""
    module = importlib.import_module(f"{package_of(name)}.delta_pb")
    return dpb.FileDescriptorProto.FromString(module.DELTA)
