"""The documentation's code runs as written: README's caffe_import example (its placeholder
file names replaced by the bundled narrow FCN-8s) and docs/forks.md's own-layer example, fed
to the net it was written for."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from support import PACKAGE_CASES, ROOT

from caffe_import.layers import registry

NARROW = PACKAGE_CASES / "voc_fcn8s_narrow"


def python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), re.S)


def test_readme_caffe_import_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    block = python_blocks("README.md")[0]
    for placeholder, real in (("deploy.prototxt", "net.prototxt"), ("model.caffemodel", "weights.caffemodel"),
                              ("reference.h5", "reference.h5")):
        assert f'"{placeholder}"' in block
        block = block.replace(f'"{placeholder}"', repr(str(NARROW / real)))
    exec(compile(block, "README.md", "exec"), {"image_bchw": torch.rand(1, 3, 40, 40)})
    assert capsys.readouterr().out.strip().endswith("blobs within tolerance")
    assert (tmp_path / "copy.caffemodel").stat().st_size > 0


@pytest.fixture
def clean_registry():
    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


def test_forks_md_own_layer_example_builds(clean_registry):
    """The `@register` example of docs/forks.md ('Your own fork'), with its fork field read
    from a schema-free stand-in, builds and runs in a net."""
    layer_code = next(b for b in python_blocks("docs/forks.md") if "@register(\"Mine\")" in b)
    exec(compile(layer_code.replace("self.param.my_param.alpha", "2.0"), "forks.md", "exec"), {})
    from caffe_import import CaffeNet

    net = CaffeNet('layer { name: "data" type: "Input" top: "data" '
                   'input_param { shape { dim: 1 dim: 2 } } } '
                   'layer { name: "m" type: "Mine" bottom: "data" top: "m" }')
    assert torch.equal(net(data=torch.ones(1, 2))["m"], torch.full((1, 2), 2.0))


def _fcn_repro_block(*needles: str) -> str:
    return next(b for b in python_blocks("README.md") if all(n in b for n in needles))


def _replace(block: str, pairs) -> str:
    for placeholder, real in pairs:
        assert placeholder in block, placeholder
        block = block.replace(placeholder, real)
    return block


def test_readme_fcn_repro_evaluate_and_infer_example_runs(tmp_path, monkeypatch, capsys):
    """README's "fcn_repro from Python": its placeholder net, weights and VOC folder replaced
    by the bundled narrow FCN-8s and a synthetic VOC; photo.jpg is the release's demo image."""
    import shutil
    from fcn_repro.data.synthetic import make_dataset
    root = make_dataset("voc", tmp_path / "voc", n=2)
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "fcn_repro/assets/fcn_release/demo/image.jpg", tmp_path / "photo.jpg")
    block = _replace(_fcn_repro_block("evaluate(", "infer("), [
        ('"deploy.prototxt"', repr(str(NARROW / "net.prototxt"))),
        ('"model.caffemodel"', repr(str(NARROW / "weights.caffemodel"))),
        ('"VOCdevkit/VOC2011"', repr(str(root)))])
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert "per-class IU: background" in capsys.readouterr().out
    assert (tmp_path / "metrics.json").is_file() and len(scope["record"]["per_class_iu"]) == 21
    assert [p.as_posix() for p in scope["written"]] == ["out/photo.png", "out/photo_overlay.png"]


def test_readme_fcn_repro_train_example_runs(tmp_path, monkeypatch, capsys):
    """The train_model example on a one-convolution zoo model (voc-tiny, the model's dataset
    voc, synthetic), initialised from a snapshot of the same net, two iterations."""
    from caffe_import.io import read_net
    from fcn_repro import zoo
    from fcn_repro.data.synthetic import make_dataset
    from fcn_repro.train import train_model
    from fcn_repro.zoo import registry
    from fcn_repro.zoo.spec import ModelSpec, SolverFacts
    from support.tiny_segmentation import release_train_net
    net = release_train_net(21)
    spec = ModelSpec(name="voc-tiny", family="voc", dataset="voc", num_classes=21, mean=(0.0, 0.0, 0.0),
                     weights_file=None, build=lambda kind: read_net(net),
                     solver_facts=SolverFacts(base_lr=1e-4, momentum=0.9, iter_size=1, max_iter=2,
                                              test_iter=1, snapshot=1))
    zoo.names()  # fill the registry before adding to it
    monkeypatch.setitem(registry._REGISTRY, "voc-tiny", spec)
    root = make_dataset("voc", tmp_path / "voc", n=2)
    train_model("voc-tiny", None, root, out=tmp_path / "pre", max_iter=1, progress=False)
    monkeypatch.chdir(tmp_path)
    block = _replace(_fcn_repro_block("train_model("), [
        ('"voc-fcn32s"', '"voc-tiny"'), ('"VOCdevkit/VOC2011"', repr(str(root))),
        ('"VGG_ILSVRC_16_layers.caffemodel"', repr(str(tmp_path / "pre/snapshots/train_iter_1.caffemodel"))),
        ("max_iter=100000", "max_iter=3")])
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert capsys.readouterr().out.split()[0] == "3"
    assert sorted(p.name for p in (tmp_path / "runs/fcn32s/snapshots").glob("*.caffemodel")) == [
        "train_iter_2.caffemodel", "train_iter_3.caffemodel"]  # keep_last=2


def test_readme_installs_from_the_checkout_and_says_how_to_skip_cuda():
    """The package is on no registry: every pip line installs a path ("." or ".[extra]"), and
    a CPU-only machine is told to take torch's CPU wheels first (checked as text only)."""
    text = (ROOT / "README.md").read_text()
    assert "caffe-fcn-repro[" not in text and 'pip install ".[onnx]"' in text
    for line in re.findall(r"pip install [^\n`]*", text):
        assert re.search(r'pip install (-e )?("\.(\[[a-z,]+\])?"|\.)(\s|$)', line) or "torch --index-url" in line, line
    cpu = text.index("--index-url https://download.pytorch.org/whl/cpu")
    assert text.index("python -m pip install .", cpu) > cpu  # torch's CPU wheels first, then the package


def _quick_start_commands() -> list[str]:
    """The shell lines of README's Quick start, in order (the walk-through a new user follows)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_walk_through_runs_as_written(tmp_path):
    """Issue 17: the Quick start as written. Its install steps are what a user runs once (the
    suite already runs from that install); the test command is exactly .ci/run's; and the
    demo command runs offline in a fresh folder, writing where it says."""
    lines = _quick_start_commands()
    demo = [line.split("&&")[-1].strip() for line in lines if line.endswith("fcn-repro demo")]
    tests = [line for line in lines if "pytest" in line]
    assert demo == ["fcn-repro demo"] and len(tests) == 1
    assert tests[0] in (ROOT / ".ci" / "run").read_text()
    run = subprocess.run([sys.executable, "-m", "fcn_repro", *demo[0].split()[1:]], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    assert "blobs within tolerance" in run.stdout
    assert any((tmp_path / "fcn_demo_out").iterdir())


def test_readme_layer_list_is_what_the_registry_holds():
    """README's layer paragraph: it names every type BVLC 9b891540 registers, no other, as
    many as it says (tests/fixtures/bvlc_layer_types.txt), and each is registered (the claim
    a user checks first)."""
    text = (ROOT / "README.md").read_text()
    para = text.split("BVLC Caffe's layer types are implemented", 1)[1].split("Where PyTorch", 1)[0]
    data = re.search(r"Data layers \((.*?)\) are net inputs", para, re.S).group(1)
    data = [t.strip() for t in data.replace("\n", " ").split(",")]
    items = " ".join(line.split(":")[-1] for line in para.splitlines()
                     if line.startswith(("- ", "  ")))
    items = re.sub(r"\([^)]*\)", "", items).replace(" and ", ",").replace(";", ",").replace(".", ",")
    named = [t.strip(" .-") for t in items.split(",") if t.strip(" .-")]
    lines = (ROOT / "tests" / "fixtures" / "bvlc_layer_types.txt").read_text().splitlines()
    bvlc = [t for t in lines if t and not t.startswith("#")]
    assert f"all {len(bvlc)} that BVLC master 9b891540 registers" in " ".join(para.split())
    assert sorted(named + data) == sorted(bvlc)
    assert not [t for t in named + data if registry.get(t) is None]


def _codegen_fcn8s(out) -> None:
    """docs/codegen.md's command: the shipped narrow FCN-8s as class FCN8s into ``out``."""
    from caffe_import.cli import main
    assert main(["codegen", str(NARROW / "net.prototxt"), str(NARROW / "weights.caffemodel"),
                 "-o", str(out), "--class-name", "FCN8s"]) == 0


def test_codegen_md_shows_what_codegen_writes_for_fcn8s(tmp_path, capsys):
    _codegen_fcn8s(tmp_path / "fcn8s")
    listing = python_blocks("docs/codegen.md")[0]
    assert listing == (tmp_path / "fcn8s" / "model.py").read_text()


def test_codegen_md_fine_tuning_example_runs(tmp_path, monkeypatch, capsys):
    _codegen_fcn8s(tmp_path / "fcn8s")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    block = next(b for b in python_blocks("docs/codegen.md") if "optimizer.step()" in b)
    exec(compile(block, "codegen.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines[-2:]] == ["step 0", "step 1"]


def test_readme_codegen_command_runs(tmp_path, capsys):
    from caffe_import.cli import main
    command = re.search(r"^caffe-import codegen .*$", (ROOT / "README.md").read_text(), re.M)
    argv = command.group(0).split()[1:]
    argv = [str(NARROW / "net.prototxt") if a == "fcn8s-deploy.prototxt" else
            str(NARROW / "weights.caffemodel") if a == "fcn8s.caffemodel" else
            str(tmp_path / a) if a == "fcn8s" else a for a in argv]
    assert main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "fcn8s").iterdir()) == ["model.py",
                                                                       "model.safetensors"]


def test_readme_caffe_project_commands_run(tmp_path):
    """README's "A Caffe project, unchanged": every ``caffe-import`` command of its block runs
    as written, one after the other, in a copy of the project the LMDB Caffe fixture uses
    (the databases and the mean made by the block's own first commands)."""
    case = ROOT / "tests" / "fixtures" / "caffe_tools" / "lenet_lmdb"
    for name in ("lenet_solver.prototxt", "lenet_train_test.prototxt", "init.caffemodel"):
        shutil.copy(case / name, tmp_path / name)
    shutil.copytree(case / "images", tmp_path / "images")
    (tmp_path / "snap").mkdir()
    section = (ROOT / "README.md").read_text().split("### A Caffe project, unchanged", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines()
                if line.startswith("caffe-import ")]
    assert len(commands) == 7
    for command in commands:
        words = command.split("2>")[0].split()
        run = subprocess.run([sys.executable, "-m", "caffe_import", *words[1:]], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert run.returncode == 0, (command, run.stderr)
        if words[1] in ("train", "test", "time"):
            assert "] " in run.stderr  # the glog lines
    for name in ("train_lmdb", "test_leveldb", "mean.binaryproto", "snap/lenet_iter_40.caffemodel"):
        assert (tmp_path / name).exists(), name
