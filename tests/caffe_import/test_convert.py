"""The converted artefact: one file, no pickled code, rebuilds the same net; bad files are
CaffeFormatErrors."""
from __future__ import annotations

import os
import pickle
import stat

import numpy as np
import pytest
import torch

from caffe_import.cli import main
from caffe_import.convert import FORMAT, load, read_converted, save_converted
from caffe_import.errors import CaffeFormatError
from caffe_import.parity import check_parity, read_reference
from support import case_dir, case_meta

CASE = "layers_activations"  # has a channel-shared PReLU and params shared by ParamSpec.name


@pytest.fixture(scope="module")
def net():
    from caffe_import.net import CaffeNet

    d = case_dir(CASE)
    return CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel"))


@pytest.fixture(scope="module")
def data():
    return read_reference(case_dir(CASE) / "reference.h5").inputs["data"]


def _same_outputs(a, b, data) -> None:
    ours, theirs = a(data=data), b(data=data)
    assert list(ours) == list(theirs)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=0)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip_gives_the_same_net(tmp_path, net, data, suffix):
    path = tmp_path / f"model{suffix}"
    save_converted(net, path)
    back = load(path)
    assert back.layer_names == net.layer_names and back.phase == "test"
    for layer, blobs in net.params.items():
        for ours, theirs in zip(back.params[layer], blobs):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    _same_outputs(net, back, data)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # atomic: no temp left
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask   # not mkstemp's 0600


def test_the_loaded_artefact_still_matches_caffe(tmp_path, net):
    save_converted(net, tmp_path / "m.pt")
    assert check_parity(load(tmp_path / "m.pt"), None, case_dir(CASE) / "reference.h5").ok


def test_pt_form_is_plain_data_for_weights_only_loading(tmp_path, net):
    save_converted(net, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["format"] == FORMAT and payload["phase"] == "test"
    assert 'name: "prelu"' in payload["net_prototxt"]
    assert set(payload["params"]) == set(net.params)
    assert all(isinstance(t, torch.Tensor) for ts in payload["params"].values() for t in ts)


def test_safetensors_form_reads_with_safetensors(tmp_path, net):
    from safetensors import safe_open

    save_converted(net, tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
        assert f.metadata()["format"] == FORMAT
        assert "params/prelu/0" in set(f.keys())


def test_stages_and_level_are_kept(tmp_path):
    from caffe_import.net import CaffeNet

    d = case_dir("net_state_rules")
    states = case_meta("net_state_rules")["states"]
    built = CaffeNet(str(d / "net.prototxt"), phase="train", stages=("b",), level=3)
    assert built.layer_names == states["TRAIN|b|3"]
    save_converted(built, tmp_path / "s.pt")
    back = load(tmp_path / "s.pt")
    assert back.phase == "train" and back.layer_names == states["TRAIN|b|3"]
    assert read_converted(tmp_path / "s.pt")["stages"] == ["b"]
    assert read_converted(tmp_path / "s.pt")["level"] == 3


def test_load_honours_device(tmp_path, net):
    save_converted(net, tmp_path / "m.pt")
    back = load(tmp_path / "m.pt", device="meta")  # not the default, and needs no GPU
    assert all(p.device.type == "meta" for p in back.parameters())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_load_onto_cuda(tmp_path, net, data):
    save_converted(net, tmp_path / "m.pt")
    back = load(tmp_path / "m.pt", device="cuda")
    assert all(p.is_cuda for p in back.parameters())
    out = back(data=data)
    ref = net(data=data)
    for name in ref:
        torch.testing.assert_close(out[name].cpu(), ref[name], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------- bad files
class _Boom:
    def __reduce__(self):  # would run code if unpickled without weights_only
        return (print, ("code ran",))


def test_foreign_corrupt_and_code_carrying_files_are_refused(tmp_path, net, capsys):
    save_converted(net, tmp_path / "good.pt")
    raw = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    torch.save({"a": torch.zeros(1)}, tmp_path / "foreign.pt")
    torch.save({"format": FORMAT, "x": _Boom()}, tmp_path / "code.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 64)
    (tmp_path / "pickle.pt").write_bytes(pickle.dumps({"a": 1}))
    for name in ("cut.pt", "foreign.pt", "code.pt", "junk.pt", "pickle.pt"):
        with pytest.raises(CaffeFormatError, match=name):
            load(tmp_path / name)
    assert "code ran" not in capsys.readouterr().out


def test_safetensors_without_our_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CaffeFormatError, match="not a caffe_import artefact"):
        load(tmp_path / "other.safetensors")


def test_weights_that_do_not_fit_are_refused(tmp_path, net):
    save_converted(net, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["params"]["prelu"] = [torch.zeros(7)]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CaffeFormatError, match="prelu"):
        load(tmp_path / "bad.pt")


# ----------------------------------------------------------------------- CLI
def test_cli_convert(tmp_path, capsys, data, net):
    d = case_dir(CASE)
    out = tmp_path / "cli.pt"
    assert main(["convert", str(d / "net.prototxt"), str(d / "weights.caffemodel"),
                 "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    _same_outputs(net, load(out), data)
    assert main(["convert", str(d / "net.prototxt"), str(tmp_path / "nope.caffemodel"),
                 "-o", str(tmp_path / "x.pt")]) == 2
    assert not (tmp_path / "x.pt").exists()
    np.testing.assert_array_equal(read_converted(out)["params"]["prelu"][0].numpy(),
                                  net.params["prelu"][0].detach().numpy())
