"""Datasets in the release's on-disk layouts, with its exact preprocessing.

``get_dataset(name, root, split=None, model=None, **options)`` builds one by name (``voc``,
``sbd``, ``siftflow``, ``nyud``, ``pascalcontext``); :mod:`fcn_repro.data.registry` is the table
of what the tools know about each (default splits, options implied by a model name). Items are
``(image, label)`` as docs/design.md says. The dataset classes are imported on first use (they
bring torch, PIL and scipy; the table does not).
"""
from __future__ import annotations

import importlib
from typing import Any

from fcn_repro.data.registry import DATASETS, DatasetInfo, dataset_info, dataset_names, get_dataset

_LAZY = {
    "SegmentationDataset": "base", "VOCSegmentation": "voc", "SBDSegmentation": "sbd",
    "SIFTFlowSegmentation": "siftflow", "NYUDSegmentation": "nyud",
    "PascalContextSegmentation": "pascalcontext",
}

__all__ = ["DATASETS", "DatasetInfo", "dataset_info", "dataset_names", "get_dataset", *_LAZY]


def __getattr__(name: str) -> Any:  # PEP 562: the classes on first use
    if name in _LAZY:
        return getattr(importlib.import_module(f"fcn_repro.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'fcn_repro.data' has no attribute {name!r}")
