"""The datasets by name: each dataset class registers itself beside its definition
(``@register_dataset("voc", train_split=..., eval_split=...)``), and every verb and library
function that takes a dataset name goes through :func:`dataset_info` (``eval``, ``train``, the
synthetic-data writer, the zoo's ``ModelSpec.dataset``): the canonical name, the class that
reads the release's layout, the splits the release trained and scored on, and the options a
release model implies (the NYUDv2 modality from the model's name).

``fcn_repro.data`` imports every dataset module, so the table is complete whenever this module
is reachable; the order of the table is the order that package imports them.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from caffe_import.errors import UsageError

if TYPE_CHECKING:
    from fcn_repro.data.base import SegmentationDataset

D = TypeVar("D", bound=type)


def _no_options(model: str | None) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: its canonical name, its class, the release's training and scoring splits,
    and the constructor options a model implies."""

    name: str
    cls: type["SegmentationDataset"]
    train_split: str
    eval_split: str
    model_options: Callable[[str | None], dict[str, Any]] = _no_options

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


#: canonical name -> its entry, in registration order
DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(name: str, *, train_split: str, eval_split: str,
                     model_options: Callable[[str | None], dict[str, Any]] = _no_options
                     ) -> Callable[[D], D]:
    """Class decorator: enter the dataset class under ``name`` with the release's training and
    scoring splits and the options a model name implies (a name registered twice is a bug)."""
    def add(cls: D) -> D:
        if name in DATASETS:
            raise RuntimeError(f"dataset {name!r} registered twice")
        DATASETS[name] = DatasetInfo(name, cls, train_split, eval_split, model_options)
        return cls
    return add


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
