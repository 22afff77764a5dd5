"""Shared helpers of the dataset classes: split lists, required paths, clear errors."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.io

from fcn_repro.errors import DatasetError, DatasetLayoutError

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "fcn_release" / "data"


def require(path: Path, dataset: str, layout: str) -> Path:
    """``path`` if it exists, else a :class:`DatasetLayoutError` that names it and describes
    the on-disk layout the dataset expects."""
    if not path.exists():
        raise DatasetLayoutError(
            f"{dataset}: expected {path} but it does not exist.\n"
            f"The {dataset} dataset is read from this layout:\n{layout}")
    return path


def read_split(path: Path, dataset: str, layout: str) -> list[str]:
    """The image ids of a split list (one per line, blank lines dropped)."""
    require(path, dataset, layout)
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DatasetError(f"{dataset}: split list is empty", path=path)
    return ids


def load_mat_field(path: Path, field: str, dataset: str, layout: str) -> np.ndarray:
    """One variable of a MATLAB file (``scipy.io.loadmat``; no code execution)."""
    require(path, dataset, layout)
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for bad files
        raise DatasetError(f"{dataset}: not a readable MATLAB file ({exc})", path=path) from exc
    if field not in mat:
        raise DatasetError(f"{dataset}: no variable {field!r} in the .mat file "
                           f"(has {sorted(k for k in mat if not k.startswith('__'))})",
                           path=path)
    return mat[field]


def limit_ids(ids: Sequence[str], limit: int | None) -> list[str]:
    return list(ids if limit is None else ids[:limit])
