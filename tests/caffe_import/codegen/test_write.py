"""Acceptance of ``write_module`` over every fixture case (BVLC's and the forks'): the written
model.py, imported in a Python where ``caffe_import`` cannot be imported and loaded strictly from
model.safetensors, matches the activations real Caffe stored (TRAIN cases: the params'
gradients too) at each case's tolerance; the files pass ``py_compile`` and ``ruff check``, and
writing twice gives the same bytes. All cases run in one subprocess (CI time)."""
from __future__ import annotations

import json
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from caffe_import.codegen import MODEL_FILE, WEIGHTS_FILE, generate, write_module
from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet
from caffe_import.parity.reference import read_reference
from caffe_import.proto.schema import canonical_fork
from support import FORWARD_CASES, ROOT, TRAIN_CASES, case_dir, case_meta
from support.compare import within

FORKS = ROOT / "tests" / "fixtures" / "forks"
FORK_CASES = json.loads((FORKS / "index.json").read_text())["cases"]

#: run in the subprocess: no caffe_import; for each case folder, model.py + model.safetensors
#: on inputs.safetensors -> outputs.safetensors (and grads.safetensors for TRAIN cases)
RUNNER = r'''
import importlib.util, json, sys
sys.modules["caffe_import"] = None  # importing it now fails
import torch
from safetensors.torch import load_file, save_file
for folder, phase, inputs, outputs in json.loads(sys.argv[1]):
    spec = importlib.util.spec_from_file_location("model_" + str(abs(hash(folder))), folder + "/model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Net()
    model.load_state_dict(load_file(folder + "/model.safetensors"), strict=True)
    model.train(phase == "train")
    feed = load_file(folder + "/inputs.safetensors")
    if phase == "train":
        for value in feed.values():
            value.requires_grad_(True)
    with torch.set_grad_enabled(phase == "train"):
        result = model(*[feed[name] for name in inputs])
        result = {outputs[0]: result} if isinstance(result, torch.Tensor) else result
        save_file({k: v.detach().clone().contiguous() for k, v in result.items()}, folder + "/outputs.safetensors")
        if phase == "train":
            loss = sum(w * result[k].sum() for k, w in model.loss_weights.items())
            if torch.is_tensor(loss) and loss.requires_grad:
                loss.backward()
            grads = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
            grads.update({"input:" + k: v.grad for k, v in feed.items() if v.grad is not None})
            save_file(grads, folder + "/grads.safetensors")
print("ran", len(json.loads(sys.argv[1])))
'''


def _case(name: str) -> tuple[Path, dict, str | None]:
    """(folder, meta, fork) of a BVLC reference case or a fork case ``fork/case``."""
    if "/" in name:
        d = FORKS / name
        meta = json.loads((d / "meta.json").read_text())
        return d, meta, canonical_fork(meta.get("fork", name.split("/")[0]))
    return case_dir(name), case_meta(name), None


def _build(name: str) -> CaffeNet:
    d, meta, fork = _case(name)
    weights = d / meta.get("weights", "weights.caffemodel")
    return CaffeNet(str(d / meta.get("net", "net.prototxt")),
                    str(weights) if weights.is_file() else None,
                    phase=str(meta.get("phase", "TEST")).lower(), fork=fork)


def _weights(name: str) -> Path | None:
    d, meta, _ = _case(name)
    weights = d / meta.get("weights", "weights.caffemodel")
    return weights if weights.is_file() else None


CASES = FORWARD_CASES + TRAIN_CASES + FORK_CASES


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Every case written (and checked against its CaffeNet), then run in one subprocess."""
    root = tmp_path_factory.mktemp("codegen")
    jobs, done = [], {}
    for k, name in enumerate(CASES):
        d, meta, _ = _case(name)
        net = _build(name)
        folder = root / f"case{k}"
        write_module(net, folder, net_path=d / meta.get("net", "net.prototxt"),
                     weights_path=_weights(name), say=lambda line: None)
        ref = read_reference(d / meta.get("reference", "reference.h5"))
        save_file({n: torch.from_numpy(ref.inputs[n]) for n in net.inputs},
                  str(folder / "inputs.safetensors"))
        jobs.append([str(folder), net.phase, list(net.inputs), list(net.outputs)])
        done[name] = (folder, net, ref, meta)
    run = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(jobs)], capture_output=True,
                         text=True, cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]
    return done


@pytest.mark.parametrize("name", CASES)
def test_the_generated_module_matches_caffe_without_caffe_import(written, name):
    folder, net, ref, meta = written[name]
    tol = meta["tolerance"]
    outputs = load_file(str(folder / "outputs.safetensors"))
    compared = [o for o in net.outputs if o in ref.blobs]
    assert compared, f"{name}: no output blob stored"
    for blob in compared:
        problem = within(outputs[blob], ref.blobs[blob], tol)
        assert problem is None, f"{name} {blob}: {problem}"
    if net.phase == "train":
        _check_gradients(name, folder, net, ref, tol)


def _check_gradients(name: str, folder: Path, net, ref, tol: dict) -> None:
    """Each param gradient Caffe stored and, where the net forces the backward to its inputs,
    each input's gradient, against ours (none: 0)."""
    grads = load_file(str(folder / "grads.safetensors"))
    checked = 0
    for blob in net.inputs if net.net_param.force_backward else ():
        theirs = ref.blob_diffs.get(blob)
        if theirs is not None:
            ours = grads.get(f"input:{blob}", torch.zeros(theirs.shape))
            problem = within(ours, theirs, tol)
            assert problem is None, f"{name} {blob} (input diff): {problem}"
            checked += 1
    for place in generate(net).places:
        theirs = ref.diffs.get(place.layer, {}).get(place.index)
        if theirs is None:
            continue
        ours = place.to_caffe(grads[place.key]) if place.key in grads else \
            torch.zeros(theirs.shape)
        problem = within(ours, theirs, tol)
        assert problem is None, f"{name} {place.layer}[{place.index}] diff: {problem}"
        checked += 1
    assert checked or not (ref.diffs or ref.blob_diffs), f"{name}: no gradient compared"


def test_generated_files_compile_and_pass_ruff(written):
    folders = [str(f) for f, *_ in written.values()]
    for folder in folders:
        py_compile.compile(str(Path(folder) / MODEL_FILE), doraise=True)
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated",
                          *folders], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


@pytest.mark.parametrize("name", ["voc_fcn8s_narrow", "layers_norm", "train_fcn8s_narrow",
                                  "ssd/mobilenet_ssd_deploy_narrow", "pspnet/layers_bn"])
def test_writing_twice_gives_the_same_bytes(written, tmp_path, name):
    folder = written[name][0]
    d, meta, _ = _case(name)
    write_module(_build(name), tmp_path, net_path=d / meta.get("net", "net.prototxt"),
                 weights_path=_weights(name), say=lambda line: None)
    for file in (MODEL_FILE, WEIGHTS_FILE):
        assert (tmp_path / file).read_bytes() == (folder / file).read_bytes(), file


def test_it_says_wrote_only_after_the_check(tmp_path):
    said = []
    net = _build("voc_fcn32s_narrow")
    write_module(net, tmp_path / "out", say=said.append)
    assert len(said) == 1 and said[0].startswith("wrote ") and "checked" in said[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MODEL_FILE]


def test_a_module_that_differs_writes_nothing(tmp_path, monkeypatch):
    import caffe_import.codegen.write as write

    net = _build("voc_fcn32s_narrow")
    real = write.generate

    def wrong(*args, **kwargs):
        generated = real(*args, **kwargs)
        key = next(k for k in generated.state if k.endswith("bias"))
        generated.state[key] = generated.state[key] + 1.0
        return generated

    monkeypatch.setattr(write, "generate", wrong)
    with pytest.raises(CaffeFormatError, match="differs from the CaffeNet"):
        write_module(net, tmp_path / "out", weights_path=_weights("voc_fcn32s_narrow"),
                     say=lambda line: pytest.fail("said wrote"))
    assert not (tmp_path / "out").exists()
