"""tools/bench_eval.py: the optimised and the naive evaluation loops count the same pixels, the
optimised one reads nothing back from the device per image, and workers change nothing."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from fcn_repro.data import VOCSegmentation
from fcn_repro.data.synthetic import make_dataset
from fcn_repro.evaluate import evaluate_net
from fcn_repro.metrics import predicted_classes
from support import ROOT

BENCH = ROOT / "tools" / "bench_eval.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_eval", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    return VOCSegmentation(make_dataset("voc", tmp_path_factory.mktemp("voc"), n=3), "seg11valid")


@pytest.fixture(scope="module")
def net(bench):
    pytest.importorskip("caffe_import.net")
    return bench.build_net(None, torch.device("cpu"))  # the bundled narrow FCN-8s


def test_fast_and_naive_loops_give_the_same_confusion_matrix(bench, net, voc):
    naive = bench.naive_confusion(net, voc)
    assert naive.sum() > 0
    np.testing.assert_array_equal(bench.fast_confusion(net, voc, workers=0), naive)


def test_workers_do_not_change_the_matrix(bench, net, voc):
    np.testing.assert_array_equal(bench.fast_confusion(net, voc, workers=2),
                                  bench.fast_confusion(net, voc, workers=0))


def test_evaluate_net_reads_nothing_back_per_image(bench, net, voc):
    fast = bench.reads_per_image(lambda m, d: evaluate_net(m, d, progress=False), net, voc)
    naive = bench.reads_per_image(lambda m, d: bench.naive_confusion(m, d), net, voc)
    assert fast == 0
    assert naive >= 1  # the counter does see score.py's per-image .cpu()/.numpy()


def test_host_read_counter_leaves_tensor_methods_as_they_were(bench):
    before = {name: getattr(torch.Tensor, name) for name in bench.HOST_READS}
    counter = bench.HostReads()
    with counter.active():
        torch.ones(2).sum().item()
        torch.ones(2).tolist()
    assert counter.count == 2
    assert {name: getattr(torch.Tensor, name) for name in bench.HOST_READS} == before


def test_predicted_classes_is_argmax_with_its_ties_and_nan():
    scores = torch.randint(0, 3, (1, 21, 9, 11)).float()  # many ties
    scores[0, 5, 2, 2] = scores[0, 7, 2, 2] = float("nan")
    np.testing.assert_array_equal(predicted_classes(scores).numpy(), scores.argmax(1).numpy())
    np.testing.assert_array_equal(predicted_classes(scores)[0].numpy(), scores[0].numpy().argmax(0))


def test_make_voc_draws_the_asked_sizes(bench, tmp_path):
    ds = bench.make_voc(tmp_path / "voc", 2, 60, 70)
    for image, label in ds:
        assert 60 <= image.shape[1] <= 70 and 60 <= image.shape[2] <= 70
        assert label.shape == image.shape[1:]


def test_busy_mode_compares_torch_defaults_one_thread_and_the_commands_settings(bench):
    envs = bench.thread_envs({"PATH": "/bin", "OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "7"})
    assert envs["torch defaults"] == {"PATH": "/bin"}  # the user's own settings are left out
    assert envs["OMP_NUM_THREADS=1"] == {"PATH": "/bin", "OMP_NUM_THREADS": "1"}
    ours = envs["caffe_import.threads"]
    assert ours["OMP_WAIT_POLICY"] == "PASSIVE" and int(ours["OMP_NUM_THREADS"]) >= 1


def test_spinners_run_and_are_ended(bench):
    with bench.spinning(1) as procs:
        assert procs[0].poll() is None
    assert procs[0].poll() is not None
