"""Datasets in the release's on-disk layouts, with its exact preprocessing.

``get_dataset(name, root, split, **options)`` builds one by name (``voc``, ``sbd``, ``siftflow``,
``nyud``, ``pascalcontext``). Items are ``(image, label)`` as docs/design.md says.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fcn_repro.data.base import SegmentationDataset
from fcn_repro.data.nyud import NYUDSegmentation
from fcn_repro.data.pascalcontext import PascalContextSegmentation
from fcn_repro.data.sbd import SBDSegmentation
from fcn_repro.data.siftflow import SIFTFlowSegmentation
from fcn_repro.data.voc import VOCSegmentation

DATASETS: dict[str, type[SegmentationDataset]] = {
    "voc": VOCSegmentation,
    "sbd": SBDSegmentation,
    "siftflow": SIFTFlowSegmentation,
    "nyud": NYUDSegmentation,
    "pascalcontext": PascalContextSegmentation,
}


def get_dataset(name: str, root: str | Path, split: str, **options: Any) -> SegmentationDataset:
    """The dataset ``name`` (a key of :data:`DATASETS`) at ``root``, split ``split``."""
    try:
        cls = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; one of {sorted(DATASETS)}") from None
    return cls(root, split, **options)


__all__ = ["DATASETS", "get_dataset", "SegmentationDataset", "VOCSegmentation", "SBDSegmentation",
           "SIFTFlowSegmentation", "NYUDSegmentation", "PascalContextSegmentation"]
