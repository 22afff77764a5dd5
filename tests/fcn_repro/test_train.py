"""Training loop: a tiny segmentation net learns on synthetic data; snapshots resume exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.proto import caffe_pb2
from fcn_repro.data.base import SegmentationDataset
from fcn_repro.feeding import feed_net, item_to_blobs
from fcn_repro.train import latest_snapshot, shuffled_index, train
from support.tiny_segmentation import release_train_net

TINY = release_train_net(3)


class ColourDataset(SegmentationDataset):
    """Each pixel's class is its strongest channel; a few pixels are void (255)."""

    name = "colour"
    num_classes = {None: 3}

    def __init__(self, n: int, seed: int, budget: int | None = None) -> None:
        self.split, self.ids = "all", [f"c{i}" for i in range(n)]
        rng = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            h, w = rng.integers(8, 13, size=2)
            img = rng.standard_normal((3, h, w)).astype(np.float32)
            lab = img.argmax(0).astype(np.int64)
            lab[0, 0] = 255
            self.items.append((torch.from_numpy(img), torch.from_numpy(lab)))
        self.budget = budget  # __getitem__ calls before a simulated Ctrl-C

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        if self.budget is not None:
            if self.budget == 0:
                raise KeyboardInterrupt
            self.budget -= 1
        return self.items[i]


def tiny_net() -> caffe_pb2.NetParameter:
    from caffe_import.io import read_net
    return read_net(TINY)


def solver(**kw) -> caffe_pb2.SolverParameter:
    p = caffe_pb2.SolverParameter(base_lr=2e-3, lr_policy="fixed", momentum=0.9, weight_decay=5e-4,
                                  average_loss=5, max_iter=40, snapshot=0)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def test_feed_net_swaps_python_data_layer_for_inputs():
    net = feed_net(tiny_net(), {"data": (1, 3, 5, 6), "label": (1, 1, 5, 6)})
    assert net.layer[0].type == "Input" and list(net.layer[0].top) == ["data", "label"]
    assert list(net.layer[0].input_param.shape[1].dim) == [1, 1, 5, 6]
    assert [l.name for l in net.layer] == ["data", "conv", "loss"]
    with pytest.raises(CaffeFormatError, match="label"):
        feed_net(tiny_net(), {"data": (1, 3, 5, 6)})


def test_items_become_batch_one_blobs_with_float_labels():
    blobs = item_to_blobs((torch.zeros(3, 4, 5), torch.ones(4, 5, dtype=torch.int64)), ["data"], ["label"])
    assert blobs["data"].shape == (1, 3, 4, 5) and blobs["label"].shape == (1, 1, 4, 5)
    assert blobs["label"].dtype == torch.float32


def test_shuffle_is_a_permutation_per_epoch_and_reproducible():
    first = [shuffled_index(k, 7, seed=3) for k in range(7)]
    assert sorted(first) == list(range(7))
    assert first == [shuffled_index(k, 7, seed=3) for k in range(7)]
    assert sorted(shuffled_index(k, 7, seed=3) for k in range(7, 14)) == list(range(7))  # next epoch


def test_training_lowers_the_loss_and_writes_logs(tmp_path):
    pytest.importorskip("caffe_import.net")
    result = train(tiny_net(), solver(), ColourDataset(6, 0), ColourDataset(3, 1), out=tmp_path,
                   eval_interval=20, progress=False)
    losses = [r["loss"] for r in result.records]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert [e["iter"] for e in result.evals] == [20, 40]
    assert result.evals[-1]["mean_iu"] > result.evals[0]["mean_iu"] - 0.05
    for name in ("log.csv", "log.json", "curves.png"):
        assert (tmp_path / name).is_file()
    header = (tmp_path / "log.csv").read_text().splitlines()[0]
    assert header.startswith("iter,loss,smoothed_loss,lr")
    assert latest_snapshot(tmp_path / "snapshots").name == "train_iter_40.solverstate.safetensors"
    assert (tmp_path / "snapshots" / "train_iter_40.caffemodel").is_file()


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    pytest.importorskip("caffe_import.net")
    from caffe_import.io import read_weights
    straight = train(tiny_net(), solver(max_iter=8), ColourDataset(5, 0), None, out=tmp_path / "a",
                     progress=False)
    # 1 call for the input shapes + 5 training passes, then "Ctrl-C" during iteration 5
    with pytest.raises(KeyboardInterrupt):
        train(tiny_net(), solver(max_iter=8), ColourDataset(5, 0, budget=6), None, out=tmp_path / "b",
              progress=False)
    assert latest_snapshot(tmp_path / "b" / "snapshots").name == "train_iter_5.solverstate.safetensors"
    resumed = train(tiny_net(), solver(max_iter=8), ColourDataset(5, 0), None, out=tmp_path / "b",
                    resume=True, progress=False)
    assert resumed.iterations == straight.iterations == 8
    a = read_weights(tmp_path / "a" / "snapshots" / "train_iter_8.caffemodel")
    b = read_weights(tmp_path / "b" / "snapshots" / "train_iter_8.caffemodel")
    for name in a:
        for x, y in zip(a[name], b[name]):
            np.testing.assert_array_equal(x, y)
    log = json.loads((tmp_path / "b" / "log.json").read_text())
    assert [r["iter"] for r in log["train"]] == list(range(8))
    assert [r["loss"] for r in log["train"]] == pytest.approx([r["loss"] for r in straight.records], rel=1e-6)


def test_cli_parses_the_release_options():
    from fcn_repro.cli import build_parser
    args = build_parser().parse_args(["train", "--model", "voc-fcn32s", "--dataset", "sbd", "--root", "x",
                                      "--init", "w.caffemodel", "--max-iter", "10", "--resume"])
    assert args.model == "voc-fcn32s" and args.max_iter == 10 and args.resume


def test_initialize_transplants_then_makes_upsampling_bilinear():
    net_mod = pytest.importorskip("caffe_import.net")
    from fcn_repro.surgery import upsampling_weights
    from fcn_repro.train import initialize
    net = net_mod.CaffeNet("""
        layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
        layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
                convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }
        layer { name: "upscore" type: "Deconvolution" bottom: "conv" top: "up"
                convolution_param { num_output: 2 kernel_size: 4 stride: 2 bias_term: false } }
    """)
    w = np.arange(54, dtype=np.float32).reshape(2, 27)
    said = []
    lines = initialize(net, {"conv": [w, np.ones(2, np.float32)], "fc8": [np.zeros(3, np.float32)]},
                       log=said.append)
    assert lines == ["coercing conv 0 from (2, 27) to (2, 3, 3, 3)", "copying conv 1", "dropping fc8",
                     "bilinear upscore"]
    # the user reads the release's transplant lines, then a sentence rather than "bilinear upscore"
    assert said == lines[:3] + ["upscore: deconvolution initialised with bilinear upsampling weights"]
    np.testing.assert_array_equal(net.params["conv"][0].detach().numpy().reshape(2, 27), w)
    torch.testing.assert_close(net.params["upscore"][0].detach(), upsampling_weights(2, 4))


def test_the_plot_shows_mean_iu_in_percent_as_printed(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from fcn_repro.train import TrainLog
    figures, real_close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    log = TrainLog(tmp_path)
    log.evals = [{"iter": 10, "mean_iu": 0.25}, {"iter": 20, "mean_iu": 0.5}, {"iter": 30, "mean_iu": None}]
    log.plot()
    axis = figures[0].axes[1]
    real_close(figures[0])
    np.testing.assert_array_equal(axis.lines[0].get_ydata(), [25.0, 50.0, np.nan])
    assert "%" in axis.get_title()


def test_prune_snapshots_keeps_the_newest_and_nothing_else_goes(tmp_path):
    from fcn_repro.train import prune_snapshots
    for it in (2, 10, 4):
        (tmp_path / f"train_iter_{it}.caffemodel").write_bytes(b"w")
        (tmp_path / f"train_iter_{it}.solverstate.safetensors").write_bytes(b"s")
    (tmp_path / "notes.txt").write_text("mine")
    gone = prune_snapshots(tmp_path, 2)
    assert sorted(p.name for p in gone) == ["train_iter_2.caffemodel", "train_iter_2.solverstate.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt", "train_iter_10.caffemodel", "train_iter_10.solverstate.safetensors",
        "train_iter_4.caffemodel", "train_iter_4.solverstate.safetensors"]
