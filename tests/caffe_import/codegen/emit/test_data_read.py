"""Data, ImageData and WindowData in a net built with ``data=True`` (they read there): the
generated module is the one of the net built without data (their tops are ``forward``'s
arguments, in the layers' order), and ``write_module`` checks it on the batch the net read."""
from __future__ import annotations

from pathlib import Path

import pytest

from caffe_import.codegen import generate, write_module
from caffe_import.net import CaffeNet
from support.datalayers import NET_NAMES, data_fixture

#: a layer after the data layer, so the module computes something from what it is fed
AFTER = ('layer { name: "score" type: "Convolution" bottom: "data" top: "score" '
         'convolution_param { num_output: 2 kernel_size: 1 '
         'weight_filler { type: "gaussian" std: 0.1 } } }\n')


def nets(name: str) -> tuple[CaffeNet, CaffeNet]:
    """(reading, not reading) builds of fixture net ``name`` with a convolution after it."""
    text = Path(f"nets/{name}.prototxt").read_text() + AFTER
    reading = CaffeNet(text, data=True)
    tops = reading.steps[0].tops
    shapes = {t: reading.blob_shapes[t] for t in tops}
    return reading, CaffeNet(text, input_shapes=shapes)


@pytest.mark.parametrize("name", NET_NAMES)
def test_a_reading_net_generates_the_module_of_the_net_without_data(name, tmp_path,
                                                                    monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    reading, inputs = nets(name)
    assert reading.inputs == [] and inputs.inputs == list(reading.steps[0].tops)
    ours = generate(reading)
    assert ours.source == generate(inputs).source
    assert ours.inputs == inputs.inputs


def test_write_module_checks_a_reading_net_on_the_batch_it_read(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    reading, _ = nets("data_lmdb_resized")
    said = []
    write_module(reading, tmp_path / "out", say=said.append)
    assert said[0].startswith("wrote ") and (tmp_path / "out" / "model.py").is_file()
