"""HDF5Data in a net built with ``data=True`` (it reads its files there): the same module as
the net built without data, checked by ``write_module`` on the rows the net read."""
from __future__ import annotations

import h5py
import numpy as np

from caffe_import.codegen import generate, write_module
from caffe_import.net import CaffeNet

NET = """
layer { name: "h5" type: "HDF5Data" top: "data" top: "label"
  hdf5_data_param { source: "%s" batch_size: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.1 } } }
"""


def test_a_reading_hdf5_net_generates_the_module_without_data(tmp_path):
    with h5py.File(tmp_path / "part.h5", "w") as f:
        f["data"] = np.arange(24, dtype=np.float32).reshape(3, 2, 2, 2)
        f["label"] = np.arange(3, dtype=np.float32)
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'part.h5'}\n")
    text = NET % (tmp_path / "list.txt")
    reading = CaffeNet(text, data=True)
    plain = CaffeNet(text, input_shapes={"data": (2, 2, 2, 2), "label": (2,)})
    assert reading.inputs == [] and plain.inputs == ["data", "label"]
    assert generate(reading).source == generate(plain).source
    said = []
    write_module(reading, tmp_path / "out", say=said.append)
    assert said[0].startswith("wrote ")
