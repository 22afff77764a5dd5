"""fcn-repro train's command line, end to end on a one-convolution zoo model: what it says
(where the weights come from, where a resumed run continues) and the scores it reports."""
from __future__ import annotations

import json

import pytest

from support.tiny_segmentation import release_train_net

TINY_VOC = release_train_net(21)


#: as the release writes its nets: no fillers (the weights came from surgery)
NO_FILLERS = TINY_VOC.replace('weight_filler { type: "gaussian" std: 0.01 }', "").replace(
    'layer { name: "loss"',
    'layer { name: "relu" type: "ReLU" bottom: "score" top: "score" }\n'
    'layer { name: "score_fr" type: "Convolution" bottom: "score" top: "score" '
    'convolution_param { num_output: 21 kernel_size: 1 } }\nlayer { name: "loss"')


def _register_tiny(monkeypatch, net_text):
    from caffe_import.io import read_net
    from fcn_repro import zoo
    from fcn_repro.zoo import registry
    from fcn_repro.zoo.spec import ModelSpec, SolverFacts
    spec = ModelSpec(name="voc-tiny", family="voc", dataset="voc", num_classes=21, mean=(0.0, 0.0, 0.0),
                     weights_file=None, build=lambda kind: read_net(net_text),
                     solver_facts=SolverFacts(base_lr=1e-4, momentum=0.9, iter_size=1, max_iter=2,
                                              test_iter=1, snapshot=2))
    zoo.names()  # fill the registry before adding to it
    monkeypatch.setitem(registry._REGISTRY, "voc-tiny", spec)
    return spec


@pytest.fixture
def tiny_zoo_model(monkeypatch):
    """A zoo model "voc-tiny" (one convolution, VOC's 21 classes) for end-to-end CLI runs."""
    pytest.importorskip("caffe_import.net")
    return _register_tiny(monkeypatch, TINY_VOC)


def _cli_train(capsys, *args):
    from fcn_repro.cli import main
    rc = main(["train", "--model", "voc-tiny", "--no-progress", *map(str, args)])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    return out.splitlines()


def test_cli_train_says_where_weights_come_from_and_reports_iu_in_percent(tmp_path, capsys, tiny_zoo_model):
    from fcn_repro.data.synthetic import make_dataset
    root = make_dataset("voc", tmp_path / "voc", n=2)
    common = ("--dataset", "voc", "--root", root, "--out", tmp_path / "run")
    first = _cli_train(capsys, *common)
    assert first[0] == "starting from random weights (the net's fillers): no init weights given"
    val = json.loads((tmp_path / "run" / "log.json").read_text())["val"][-1]
    assert first[1:] == [  # nothing else: no stray lines
        f"trained to iteration 2 -> {tmp_path / 'run'}",
        f"  val at iteration 2: pixel acc {100 * val['pixel_acc']:5.1f}  mean acc {100 * val['mean_acc']:5.1f}  "
        f"mean IU {100 * val['mean_iu']:5.1f}  f.w. IU {100 * val['fw_iu']:5.1f}"]  # percent, as eval prints

    resumed = _cli_train(capsys, *common, "--resume", "--max-iter", 4)
    state = tmp_path / "run" / "snapshots" / "train_iter_2.solverstate.safetensors"
    assert resumed[0] == f"resumed at iteration 2 from {state}"
    assert resumed[1] == f"trained to iteration 4 -> {tmp_path / 'run'}" and len(resumed) == 3

    weights = tmp_path / "run" / "snapshots" / "train_iter_4.caffemodel"
    init = _cli_train(capsys, *common[:-1], tmp_path / "from_init", "--init", weights)
    assert init[:2] == ["copying conv 0", "copying conv 1"]  # the surgery, before training
    assert init[2].startswith("trained to iteration 2") and len(init) == 4

    fresh = _cli_train(capsys, *common[:-1], tmp_path / "fresh", "--resume")
    assert fresh[0].startswith(f"nothing to resume: no snapshot in {tmp_path / 'fresh' / 'snapshots'}")


@pytest.mark.parametrize("option", ["--limit", "--eval-limit"])
def test_cli_train_refuses_a_limit_of_no_images(tmp_path, capsys, option):
    from fcn_repro.cli import main
    rc = main(["train", "--model", "voc-fcn32s", "--dataset", "voc", "--root", str(tmp_path), option, "0",
               "--out", str(tmp_path / "run")])
    assert rc == 2 and option in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_cli_train_takes_the_dataset_from_the_model(tmp_path, capsys, tiny_zoo_model):
    """No --dataset: the model's own (voc-tiny's voc), as `fcn-repro eval` defaults."""
    from fcn_repro.data.synthetic import make_dataset
    root = make_dataset("voc", tmp_path / "voc", n=2)
    lines = _cli_train(capsys, "--root", root, "--out", tmp_path / "run")
    assert lines[1] == f"trained to iteration 2 -> {tmp_path / 'run'}"
    assert json.loads((tmp_path / "run" / "log.json").read_text())["val"]


def test_cli_train_ctrl_c_says_the_iteration_saved_and_the_resume_command(tmp_path, capsys, monkeypatch,
                                                                          tiny_zoo_model):
    import shlex
    from caffe_import.solver import Solver
    from fcn_repro.cli import main
    from fcn_repro.data.synthetic import make_dataset
    root = make_dataset("voc", tmp_path / "voc", n=2)
    real_step = Solver.step

    def step_then_ctrl_c(self, iters, *args, **kwargs):
        real_step(self, 1)
        raise KeyboardInterrupt

    monkeypatch.setattr(Solver, "step", step_then_ctrl_c)
    rc = main(["train", "--model", "voc-tiny", "--root", str(root), "--out", str(tmp_path / "run"),
               "--no-progress", "--seed", "7"])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    snap = tmp_path / "run" / "snapshots" / "train_iter_1.caffemodel"
    assert rc == 130 and "interrupted" in err
    assert lines[-2] == f"interrupted: saved iteration 1 ({snap} and its solver state)"
    assert lines[-1] == ("continue with: " + shlex.join(
        ["fcn-repro", "train", "--model", "voc-tiny", "--root", str(root), "--out", str(tmp_path / "run"),
         "--seed", "7", "--no-progress", "--resume"]))
    monkeypatch.setattr(Solver, "step", real_step)
    assert main(shlex.split(lines[-1].split(": ", 1)[1])[1:]) == 0  # the printed command runs
    resumed = capsys.readouterr().out.splitlines()
    assert resumed[0] == f"resumed at iteration 1 from {snap.with_name('train_iter_1.solverstate.safetensors')}"


def test_cli_train_keep_last_keeps_only_the_newest_snapshots(tmp_path, capsys, tiny_zoo_model):
    from fcn_repro.data.synthetic import make_dataset
    root = make_dataset("voc", tmp_path / "voc", n=2)
    _cli_train(capsys, "--root", root, "--out", tmp_path / "run", "--max-iter", 6, "--snapshot", 2,
               "--keep-last", 2)
    assert sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir()) == [
        "train_iter_4.caffemodel", "train_iter_4.solverstate.safetensors",
        "train_iter_6.caffemodel", "train_iter_6.solverstate.safetensors"]
    from fcn_repro.cli import main
    assert main(["train", "--model", "voc-tiny", "--root", str(root), "--keep-last", "0"]) == 2
    assert "--keep-last 0" in capsys.readouterr().err


def test_cli_train_without_init_says_which_layers_start_at_zero_and_that_it_cannot_learn(
        tmp_path, capsys, monkeypatch):
    """The release's prototxts name no fillers: without --init their weights are Caffe's
    default, constant 0, not random; two zero layers in a row cannot learn (no gradient
    passes a zero layer), which is said once on stderr."""
    from fcn_repro.cli import main
    from fcn_repro.data.synthetic import make_dataset
    assert "filler" not in NO_FILLERS and "score_fr" in NO_FILLERS
    _register_tiny(monkeypatch, NO_FILLERS)
    root = make_dataset("voc", tmp_path / "voc", n=2)
    rc = main(["train", "--model", "voc-tiny", "--no-progress", "--dataset", "voc", "--root", str(root),
               "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert rc == 0
    assert out.splitlines()[0] == ("starting without init weights: 2 layer(s) have no filler in the "
                                   "prototxt and start at zero (conv, score_fr); the others from "
                                   "their fillers")
    assert err == ("fcn-repro: warning: this run cannot learn: 2 weight layers start at zero, and no "
                   "gradient passes a layer whose weights are zero, so the layers below score_fr never "
                   "change; give init weights (--init, e.g. the previous stage's caffemodel or VGG16's "
                   "for a 32s net, as the release did)\n")
