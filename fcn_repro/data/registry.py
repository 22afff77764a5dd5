"""The datasets by name: one table of what the tools know about each one.

Every verb and library function that takes a dataset name goes through :func:`dataset_info`
(``eval``, ``train``, the synthetic-data writer, the zoo's ``ModelSpec.dataset``): the canonical
name, the class that reads the release's layout, the splits the release trained and scored on,
and the options a release model implies (the NYUDv2 modality from the model's name).

This module imports no dataset class (they bring torch, PIL and scipy): the command line
builds its choices from the table in a fraction of a second, and :attr:`DatasetInfo.cls`
imports a class when a dataset is made.
"""
from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from caffe_import.errors import UsageError

if TYPE_CHECKING:
    from fcn_repro.data.base import SegmentationDataset

#: NYUDv2 modality -> the input blobs its nets take (and the dataset gives), in top order
MODALITIES: dict[str, tuple[str, ...]] = {
    "color": ("color",), "depth": ("depth",), "hha": ("hha",),
    "color-depth": ("color", "depth"), "color-hha": ("color", "hha"),
}
#: the release's own spelling (``nyud-fcn32s-color-d``) -> the name used here
MODALITY_ALIASES = {"color-d": "color-depth"}
#: a release NYUDv2 model name: ``nyud-fcn<stride>s-<modality>``
_NYUD_MODEL = re.compile(r"nyud-fcn\d+s-(?P<modality>.+)")


def canonical_modality(modality: str) -> str:
    """``modality`` as a key of :data:`MODALITIES` (``color-d`` -> ``color-depth``); an unknown
    one is a :class:`UsageError` listing the known."""
    name = MODALITY_ALIASES.get(modality, modality)
    if name not in MODALITIES:
        raise UsageError(f"nyud: unknown modality {modality!r}; one of {', '.join(MODALITIES)}")
    return name


def _nyud_options(model: str | None) -> dict[str, Any]:
    """``{"modality": ...}`` a release NYUDv2 model's name implies (``nyud-fcn32s-color-d`` ->
    ``color-depth``); ``color`` for any other name (a custom net fed one colour image)."""
    match = _NYUD_MODEL.fullmatch(model or "")
    named = MODALITY_ALIASES.get(match["modality"], match["modality"]) if match else "color"
    return {"modality": named if named in MODALITIES else "color"}


def _no_options(model: str | None) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: its canonical name, its class (``module:Class`` under ``fcn_repro.data``),
    the release's training and scoring splits, and the constructor options a model implies."""

    name: str
    class_path: str
    train_split: str
    eval_split: str
    model_options: Callable[[str | None], dict[str, Any]] = _no_options

    @property
    def cls(self) -> type["SegmentationDataset"]:
        module, _, name = self.class_path.partition(":")
        return getattr(importlib.import_module(f"fcn_repro.data.{module}"), name)

    def build(self, root: str | Path, split: str | None = None, *, model: str | None = None,
              **options: Any) -> "SegmentationDataset":
        """The dataset at ``root``: ``split`` (default: the scoring split), with the options
        ``model`` implies, overridden by explicit ``options`` that are not None."""
        given = {k: v for k, v in options.items() if v is not None}
        accepted = inspect.signature(self.cls).parameters
        unknown = sorted(k for k in given if k not in accepted or k in ("root", "split"))
        if unknown:
            raise UsageError(f"dataset {self.name!r} takes no option {', '.join(unknown)}")
        return self.cls(root, split or self.eval_split, **{**self.model_options(model), **given})


DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (
    # the release trained its VOC models on SBD train and scored VOC2011 seg11valid
    DatasetInfo("voc", "voc:VOCSegmentation", train_split="train", eval_split="seg11valid"),
    DatasetInfo("sbd", "sbd:SBDSegmentation", train_split="train", eval_split="val"),
    DatasetInfo("siftflow", "siftflow:SIFTFlowSegmentation", train_split="trainval", eval_split="test"),
    DatasetInfo("nyud", "nyud:NYUDSegmentation", train_split="trainval", eval_split="test",
                model_options=_nyud_options),
    DatasetInfo("pascalcontext", "pascalcontext:PascalContextSegmentation", train_split="train",
                eval_split="val"),
)}


def dataset_names() -> tuple[str, ...]:
    """The canonical names, in table order (``voc``, ``sbd``, ``siftflow``, ``nyud``,
    ``pascalcontext``)."""
    return tuple(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """The table row of ``name``; an unknown name is a :class:`UsageError` listing the known."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UsageError(f"unknown dataset {name!r}; one of {', '.join(DATASETS)}") from None


def get_dataset(name: str, root: str | Path, split: str | None = None, *, model: str | None = None,
                **options: Any) -> "SegmentationDataset":
    """The dataset ``name`` at ``root``, split ``split`` (default: the split the release scored);
    ``model`` (a zoo name) supplies options such as the NYUDv2 modality."""
    return dataset_info(name).build(root, split, model=model, **options)
