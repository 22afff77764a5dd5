"""pycaffe's API (``import caffe``) over ``caffe_import``: run existing pycaffe scripts on
PyTorch with ``caffe-import run SCRIPT [ARGS...]`` (see docs/pycaffe.md).

This package is never installed as ``caffe`` (that would shadow a real Caffe): ``caffe-import
run`` maps ``caffe`` and its submodules to it for the script it runs (``runner.py``). In
code, ``from caffe_import import pycaffe as caffe`` gives the same surface. With ``--fork
NAME`` the script gets this surface bound to that fork's schema (``bound.py``).
"""
from __future__ import annotations

import logging as _logging
import sys as _sys

from .. import proto
from ..layers import registry as _registry
from ..proto import caffe_pb2 as _pb2
from . import io
from .blob import Blob, BlobVec
from .classifier import Classifier
from .detector import Detector
from .mode import (NCCL, Timer, has_nccl, set_device, set_mode_cpu, set_mode_gpu,
                   set_multiprocess, set_random_seed, set_solver_count, set_solver_rank,
                   solver_count, solver_rank)
from .net import Net
from .net_spec import NetSpec, layers, params, to_proto
from . import classifier, detector, net_spec
from .python_layer import Layer
from .solver import (AdaDeltaSolver, AdaGradSolver, AdamSolver, NesterovSolver,
                     RMSPropSolver, SGDSolver, Solver, get_solver)

# pycaffe's __init__ leaves its submodules ``caffe.pycaffe`` (the Python wrappers) and
# ``caffe._caffe`` (the C++ module) bound as attributes; here both are this package.
pycaffe = _caffe = _sys.modules[__name__]
TRAIN = _pb2.TRAIN
TEST = _pb2.TEST
__version__ = "1.0.0"


def layer_type_list() -> list[str]:
    """The layer types nets can use (Caffe's ``LayerRegistry::LayerTypeList``)."""
    return _registry.known_types()


def init_log(*args, **kwargs) -> None:
    """Caffe's glog setup; nothing to do here (the library logs through ``logging``)."""


def log(message: str) -> None:
    _logging.getLogger("caffe").info(message)


__all__ = ["Net", "Layer", "Blob", "BlobVec", "TRAIN", "TEST", "set_mode_cpu", "set_mode_gpu",
           "set_device", "set_random_seed", "Solver", "SGDSolver", "NesterovSolver",
           "AdaGradSolver", "RMSPropSolver", "AdaDeltaSolver", "AdamSolver", "get_solver",
           "Classifier", "Detector", "io", "layers", "params", "NetSpec", "to_proto",
           "layer_type_list", "init_log", "log", "solver_count", "solver_rank", "has_nccl", "set_solver_count", "set_solver_rank",
           "set_multiprocess", "NCCL", "Timer", "proto", "classifier", "detector",
           "net_spec", "pycaffe"]
