"""The recurrent emitters: the generated module carries LSTM's and RNN's state from one
forward to the next as real Caffe does (layers_recurrent/second_forward.h5), ``reset()``
clears it, and the params are named after Caffe's unrolled blobs."""
from __future__ import annotations

import h5py
import torch

from caffe_import.codegen import generate, load_generated
from caffe_import.net import CaffeNet
from support import case_dir, case_meta
from support.compare import assert_within, rel_l2
from support.layer_fixture import reference_arrays


def _model():
    case = case_dir("layers_recurrent")
    net = CaffeNet(case / "net.prototxt", case / "weights.caffemodel", phase="train")
    generated = generate(net)
    return generated, load_generated(generated)


def _run(generated, model, feed: dict) -> dict:
    model.train()
    with torch.no_grad():
        return model(*[torch.from_numpy(feed[n]) for n in generated.inputs])


def test_the_state_carried_into_a_second_forward_is_caffes():
    generated, model = _model()
    first, _ = reference_arrays("layers_recurrent")
    with h5py.File(case_dir("layers_recurrent") / "second_forward.h5", "r") as f:
        second = {k: f["inputs"][k][()] for k in f["inputs"]}
        caffe = {k: f["blobs"][k][()] for k in f["blobs"]}
    tol = case_meta("layers_recurrent")["tolerance"]
    _run(generated, model, first)
    out = _run(generated, model, second)
    for blob in ("loss_h", "loss_o", "loss_h2", "loss_o2", "loss_h1"):
        assert_within(out[blob], caffe[blob], tol, blob)
    model.reset()
    assert model.lstm.state is None and model.rnn.state is None
    fresh = _run(generated, model, second)
    assert rel_l2(fresh["loss_h"], caffe["loss_h"]) > 1e-3  # the carried state mattered


def test_params_are_named_as_caffes_unrolled_blobs_and_the_state_is_not_saved():
    generated, model = _model()
    assert [k for k in generated.state if k.startswith("lstm_x.")] == [
        "lstm_x.W_hc", "lstm_x.W_xc", "lstm_x.W_xc_static", "lstm_x.b_c"]
    assert [k for k in generated.state if k.startswith("rnn.")] == [
        "rnn.W_hh", "rnn.W_ho", "rnn.W_xh", "rnn.b_h", "rnn.b_o"]
    _run(generated, model, reference_arrays("layers_recurrent")[0])
    assert model.lstm.state is not None
    assert sorted(model.state_dict()) == sorted(generated.state)
    assert "def reset(self)" in generated.source
