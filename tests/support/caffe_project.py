"""A tiny legacy Caffe project in a folder, as ``caffe train`` runs one: HDF5 data files and
their list files, a train/test net reading them (``HDF5Data``), a solver, seeded weights.

``write_project(folder, **solver_fields)`` returns the folder; file names inside are relative
to it (run the tools with it as the working directory, as Caffe runs). Rows: 32 train rows
(two files, 20 + 12), 12 test rows; batch 8 (train) and 6 (test).
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from caffe_import.io import write_weights

NET = """name: "TinyLegacy"
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TRAIN }
  hdf5_data_param { source: "data/train.txt" batch_size: 8 } }
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TEST }
  hdf5_data_param { source: "data/test.txt" batch_size: 6 } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
  include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

SOLVER = {"net": '"net.prototxt"', "test_iter": 2, "test_interval": 4, "base_lr": 0.1,
          "momentum": 0.9, "weight_decay": 0.0005, "lr_policy": '"inv"', "gamma": 0.0001,
          "power": 0.75, "display": 2, "max_iter": 8, "snapshot": 4,
          "snapshot_prefix": '"snap/tiny"'}


def _write(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f["data"] = x
        f["label"] = y


def write_project(folder: str | Path, **solver_fields: object) -> Path:
    """The project in ``folder`` (see the module docstring); ``solver_fields`` override or
    add solver prototxt fields (values written as given: quote strings yourself)."""
    folder = Path(folder)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "snap").mkdir(exist_ok=True)
    rng = np.random.default_rng(5)
    centres = rng.normal(0, 1, (3, 6))
    for name, n in (("train0", 20), ("train1", 12), ("test0", 12)):
        y = rng.integers(0, 3, n)
        x = (centres[y] + rng.normal(0, 0.7, (n, 6))).astype(np.float64)  # any dtype reads
        _write(folder / "data" / f"{name}.h5", x, y.astype(np.int32))
    (folder / "data" / "train.txt").write_text("data/train0.h5\ndata/train1.h5\n")
    (folder / "data" / "test.txt").write_text("data/test0.h5\n")
    (folder / "net.prototxt").write_text(NET)
    fields = {**SOLVER, **solver_fields}
    (folder / "solver.prototxt").write_text(
        "".join(f"{k}: {v}\n" for k, v in fields.items() if v is not None))
    weights = {"ip1": [rng.normal(0, 0.4, (5, 6)), rng.normal(0, 0.1, 5)],
               "ip2": [rng.normal(0, 0.4, (3, 5)), rng.normal(0, 0.1, 3)]}
    write_weights(folder / "init.caffemodel", None,
                  {k: [np.asarray(b, np.float32) for b in v] for k, v in weights.items()})
    return folder
