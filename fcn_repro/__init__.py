"""The FCN release (Long, Shelhamer, Darrell; CVPR 2015 / PAMI 2016) as code on caffe_import.

Python API (the README's "fcn_repro from Python"; each is what the command of its name does):

    fcn_repro.evaluate.evaluate(model=..., weights=..., root=...)   fcn-repro eval -> the record
    fcn_repro.infer.infer(images, output_dir, model=... | net_path=..., weights=...)
                                                                    fcn-repro infer -> paths written
    fcn_repro.train.train_model(model, dataset, root, ...)          fcn-repro train -> TrainResult
    fcn_repro.zoo.get(name), fcn_repro.zoo.build_net(...)          the release's models
    fcn_repro.data.dataset_info(name).build(root, split)            the release's datasets

Every subpackage and module loads on first attribute access (``fcn_repro.zoo.names()``
after ``import fcn_repro``), and ``dir(fcn_repro)`` lists them.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

__version__ = "0.1.0"

#: the subpackages and modules, loaded on first attribute access
SUBMODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def __getattr__(name: str) -> Any:  # PEP 562: load a subpackage when it is first named
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'fcn_repro' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The version and every submodule, loaded or not."""
    return sorted({*(n for n in globals() if n.startswith("__")), "SUBMODULES", *SUBMODULES})
