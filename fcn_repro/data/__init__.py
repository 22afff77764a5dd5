"""Datasets in the release's on-disk layouts, with its exact preprocessing.

``get_dataset(name, root, split=None, model=None, **options)`` builds one by name (``voc``,
``sbd``, ``siftflow``, ``nyud``, ``pascalcontext``); each dataset class registers itself beside
its definition (:func:`fcn_repro.data.registry.register_dataset`), with what the tools know
about it (default splits, options implied by a model name). Items are ``(image, label)`` as
docs/design.md says. Importing this package imports every dataset module, in the table's order.
"""
from __future__ import annotations

from fcn_repro.data.registry import (DATASETS, DatasetInfo, dataset_info, dataset_names, get_dataset,
                                     register_dataset)
from fcn_repro.data.base import SegmentationDataset
from fcn_repro.data.voc import VOCSegmentation
from fcn_repro.data.sbd import SBDSegmentation
from fcn_repro.data.siftflow import SIFTFlowSegmentation
from fcn_repro.data.nyud import MODALITIES, NYUDSegmentation
from fcn_repro.data.pascalcontext import PascalContextSegmentation

__all__ = ["DATASETS", "DatasetInfo", "dataset_info", "dataset_names", "get_dataset",
           "register_dataset", "MODALITIES", "SegmentationDataset", "VOCSegmentation",
           "SBDSegmentation", "SIFTFlowSegmentation", "NYUDSegmentation",
           "PascalContextSegmentation"]
