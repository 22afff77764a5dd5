"""Every verb of both commands meets bad input with one clear error, an exit code, no traceback.

Each row is a command line with one thing wrong: a missing file, a file of the wrong kind (a
prototxt where weights go, a PNG, an empty file, random bytes), a truncated caffemodel, a
prototxt syntax error, an unknown model, layer type, dataset or device, a folder that does
not exist, or an output path a file is in the way of. The row says the exit code (2: bad
input; 1: a check that ran and failed) and what the message must contain: the file it names
and a word of what was expected.
"""
from __future__ import annotations

import argparse
import errno
import shutil
from pathlib import Path

import pytest
from support import ROOT, case_dir
from support.versions import TORCH_EXPORT_MARKS, needs_grpc_tools

import caffe_import.cli as caffe_cli
import fcn_repro.cli as fcn_cli
from fcn_repro.data.synthetic import make_dataset

NARROW = case_dir("voc_fcn8s_narrow")
SOLVER_CASE = case_dir("solver_fcn32s_narrow")
MEAN = case_dir("format_mean_binaryproto") / "mean.binaryproto"
#: SegNet BN layers, one setting no field that says whose BN it is (PSPNet's has 4 blobs)
V1_CLASSIFIER = case_dir("format_v1_vgg16_classifier")  # fc layers: a fixed input size
SSD = ROOT / "tests" / "fixtures" / "forks" / "ssd" / "mobilenet_ssd_deploy_narrow"
SSD_FILES = [str(SSD / "net.prototxt"), str(SSD / "weights.caffemodel")]

SYNTAX_ERROR = """name: "broken"
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 }
}
"""
UNKNOWN_TYPE = """name: "custom"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "weird" type: "FrobnicateLayer" bottom: "data" top: "y" }
"""
TYPO_AND_UNKNOWN_TYPES = """name: "typos"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_ouptut: 8 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" relu_parm { negative_slope: 0.1 } }
layer { name: "frob" type: "Frobnicate" bottom: "conv1" top: "f" }
layer { name: "zap" type: "Zapp" bottom: "f" top: "z" }
"""
# what the one complete error of TYPO_AND_UNKNOWN_TYPES must say, whichever verb reads it
EVERY_PROBLEM = ["typos.prototxt", "line 5", "'num_ouptut'", "did you mean 'num_output'?", "line 6",
                 "'relu_parm'", "did you mean 'relu_param'?", "'Frobnicate'", "'Zapp'",
                 '@register("Frobnicate")']
ONE_TYPO = UNKNOWN_TYPE.split("layer { name: \"weird\"")[0] + """layer { name: "conv1" type: "Convolution"
        bottom: "data" top: "conv1" convolution_param { num_ouptut: 8 kernel_size: 3 } }
"""


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of bad inputs next to good copies of the bundled narrow FCN-8s."""
    d = tmp_path_factory.mktemp("bad")
    for name in ("net.prototxt", "weights.caffemodel", "reference.h5"):
        shutil.copy(NARROW / name, d / name)
    (d / "empty").write_bytes(b"")
    (d / "random.bin").write_bytes(bytes((i * 7919 + 13) % 251 for i in range(4096)))
    shutil.copy(Path(fcn_cli.__file__).parents[1] / "assets/fcn_release/demo/label.png",
                d / "image.png")
    (d / "truncated.caffemodel").write_bytes((NARROW / "weights.caffemodel").read_bytes()[:30000])
    (d / "syntax.prototxt").write_text(SYNTAX_ERROR)
    (d / "unknown.prototxt").write_text(UNKNOWN_TYPE)
    (d / "typos.prototxt").write_text(TYPO_AND_UNKNOWN_TYPES)
    (d / "typo.prototxt").write_text(ONE_TYPO)
    shutil.copy(Path(caffe_cli.__file__).parents[1] / "proto" / "caffe.proto", d / "bvlc.proto")
    (d / "a_file").write_text("not a folder\n")
    (d / "bad_case").mkdir()
    for name in ("solver.prototxt", "train.prototxt", "init.caffemodel", "reference.h5"):
        shutil.copy(SOLVER_CASE / name, d / "bad_case" / name)
    (d / "bad_case" / "meta.json").write_text("{not json")
    shutil.copy(MEAN, d / "mean.binaryproto")
    make_dataset("voc", d / "voc", n=1, seed=0)
    return d


# (id, command, argv with {d} = the fixture folder, exit code, substrings of the error)
C, F = "caffe", "fcn"
NET, W, REF = "{d}/net.prototxt", "{d}/weights.caffemodel", "{d}/reference.h5"
VOC = ["--dataset", "voc", "--root", "{d}/voc"]
CASES = [
    # caffe-import inspect
    ("inspect-missing", C, ["inspect", "{d}/absent.caffemodel"], 2, ["absent.caffemodel", "no such file"]),
    ("inspect-folder", C, ["inspect", "{d}/voc"], 2, ["voc", "is a folder"]),
    ("inspect-empty", C, ["inspect", "{d}/empty"], 2, ["empty", "file is empty", "expected"]),
    ("inspect-random", C, ["inspect", "{d}/random.bin"], 2, ["random.bin", "not a Caffe file"]),
    ("inspect-png", C, ["inspect", "{d}/image.png"], 2, ["image.png", "not a Caffe file"]),
    ("inspect-truncated", C, ["inspect", "{d}/truncated.caffemodel"], 2,
     ["truncated.caffemodel", "truncated"]),
    ("inspect-syntax", C, ["inspect", "{d}/syntax.prototxt"], 2, ["syntax.prototxt", "line 7"]),
    ("inspect-unknown-type", C, ["inspect", "{d}/unknown.prototxt"], 2,
     ["unknown.prototxt", "'weird'", "FrobnicateLayer"]),
    ("inspect-typos-and-unknown-types", C, ["inspect", "{d}/typos.prototxt"], 2, EVERY_PROBLEM),
    ("inspect-typo", C, ["inspect", "{d}/typo.prototxt"], 2,
     ["typo.prototxt", "line 5", "layer 'conv1'", "'num_ouptut'", "did you mean 'num_output'?"]),
    # caffe-import parity
    ("parity-net-missing", C, ["parity", "{d}/absent.prototxt", W, REF], 2, ["absent.prototxt", "does not exist"]),
    ("parity-net-empty", C, ["parity", "{d}/empty", W, REF], 2, ["empty", "no layers"]),
    ("parity-net-is-caffemodel", C, ["parity", W, W, REF], 2, ["weights.caffemodel", "prototxt"]),
    ("parity-net-syntax", C, ["parity", "{d}/syntax.prototxt", W, REF], 2, ["syntax.prototxt", "line 7"]),
    ("parity-net-unknown-type", C, ["parity", "{d}/unknown.prototxt", W, REF], 2,
     ["unknown.prototxt", "FrobnicateLayer"]),
    ("parity-weights-missing", C, ["parity", NET, "{d}/absent.caffemodel", REF], 2, ["absent.caffemodel"]),
    ("parity-weights-is-prototxt", C, ["parity", NET, NET, REF], 2, ["net.prototxt", "not weights"]),
    ("parity-weights-png", C, ["parity", NET, "{d}/image.png", REF], 2, ["image.png", "caffemodel"]),
    ("parity-weights-empty", C, ["parity", NET, "{d}/empty", REF], 2, ["empty", "empty"]),
    ("parity-weights-random", C, ["parity", NET, "{d}/random.bin", REF], 2, ["random.bin", "caffemodel"]),
    ("parity-weights-truncated", C, ["parity", NET, "{d}/truncated.caffemodel", REF], 2,
     ["truncated.caffemodel", "truncated"]),
    ("parity-reference-missing", C, ["parity", NET, W, "{d}/absent.h5"], 2, ["absent.h5"]),
    ("parity-reference-not-hdf5", C, ["parity", NET, W, "{d}/random.bin"], 2, ["random.bin", "HDF5"]),
    ("parity-bad-device", C, ["parity", NET, W, REF, "--device", "gpu0"], 2, ["--device", "gpu0"]),
    # caffe-import run
    ("run-missing", C, ["run", "{d}/absent.py"], 2, ["absent.py", "not found"]),
    ("run-folder", C, ["run", "{d}/voc"], 2, ["voc", "is a folder"]),
    # caffe-import convert-imageset / compute-image-mean
    ("convert-imageset-missing-list", C, ["convert-imageset", "{d}/", "{d}/absent.txt", "{d}/db"],
     2, ["absent.txt", "image list"]),
    ("convert-imageset-bad-image", C, ["convert-imageset", "{d}/", "{d}/net.prototxt", "{d}/db"],
     2, ["cannot be converted", "could not open or decode"]),
    ("compute-image-mean-not-a-db", C, ["compute-image-mean", "{d}/voc"], 2,
     ["voc", "not an LMDB"]),
    # caffe-import dump
    ("dump-weights-is-prototxt", C, ["dump", NET, NET, "-o", "{d}/out.h5"], 2, ["net.prototxt", "not weights"]),
    ("dump-input-png", C, ["dump", NET, W, "-i", "data={d}/image.png", "-o", "{d}/out.h5"], 2,
     ["image.png", ".npy"]),
    ("dump-input-missing", C, ["dump", NET, W, "-i", "data={d}/absent.npy", "-o", "{d}/out.h5"], 2,
     ["absent.npy"]),
    ("dump-input-malformed", C, ["dump", NET, W, "-i", "data", "-o", "{d}/out.h5"], 2, ["NAME=FILE.npy"]),
    ("dump-no-input", C, ["dump", NET, W, "-o", "{d}/out.h5"], 2,
     ["net.prototxt", "'data' (1x3x", "--input NAME=FILE.npy"]),
    ("dump-output-is-folder", C, ["dump", NET, W, "-o", "{d}/voc"], 2, ["voc", "is a folder"]),
    # caffe-import convert
    ("convert-net-random", C, ["convert", "{d}/random.bin", W, "-o", "{d}/o.pt"], 2, ["random.bin", "prototxt"]),
    ("convert-net-unknown-type", C, ["convert", "{d}/unknown.prototxt", W, "-o", "{d}/o.pt"], 2,
     ["unknown.prototxt", "FrobnicateLayer"]),
    ("convert-typos-and-unknown-types", C, ["convert", "{d}/typos.prototxt", W, "-o", "{d}/o.pt"], 2,
     EVERY_PROBLEM),
    ("convert-proto-lacks-fork-fields", C, ["convert", *SSD_FILES, "--proto", "{d}/bvlc.proto",
                                            "-o", "{d}/o.pt"], 2,
     ["mobilenet_ssd_deploy_narrow/net.prototxt", "'permute_param'",
      "given proto bvlc.proto does not define these fields", "--fork ssd"]),
    ("convert-weights-random", C, ["convert", NET, "{d}/random.bin", "-o", "{d}/o.pt"], 2, ["random.bin"]),
    ("convert-weights-truncated", C, ["convert", NET, "{d}/truncated.caffemodel", "-o", "{d}/o.pt"], 2,
     ["truncated.caffemodel", "truncated"]),
    ("convert-output-is-folder", C, ["convert", NET, W, "-o", "{d}/voc"], 2, ["voc", "is a folder"]),
    ("convert-onnx-unexportable-layer", C, ["convert", *SSD_FILES, "-o", "{d}/x.onnx"], 2,
     ["mobilenet_ssd_deploy_narrow/net.prototxt", "'detection_out'",
      "caffe-import export NET WEIGHTS --onnx {d}/x.onnx --output mbox_conf_flatten --output "
      "mbox_loc --output mbox_priorbox", "'Convert and export'"]),
    # caffe-import export
    ("export-nothing-to-do", C, ["export", NET, W], 2, ["--onnx", "--torch-export"]),
    ("export-net-syntax", C, ["export", "{d}/syntax.prototxt", W, "--torch-export", "{d}/o.pt2"], 2,
     ["syntax.prototxt", "line 7"]),
    ("export-weights-png", C, ["export", NET, "{d}/image.png", "--torch-export", "{d}/o.pt2"], 2,
     ["image.png"]),
    ("export-shape-the-net-refuses", C, ["export", str(V1_CLASSIFIER / "net.prototxt"),
                                         str(V1_CLASSIFIER / "weights.caffemodel"), "--torch-export",
                                         "{d}/o.pt2", "-i", "data=1x3x64x64"], 2,
     ["format_v1_vgg16_classifier/net.prototxt", "'fc6'", "built for 32"]),
    ("export-bad-shape", C, ["export", NET, W, "--torch-export", "{d}/o.pt2", "-i", "data=axb"], 2,
     ["axb", "1x3x500x500"]),
    # caffe-import codegen
    ("codegen-net-syntax", C, ["codegen", "{d}/syntax.prototxt", "-o", "{d}/gen"], 2,
     ["syntax.prototxt", "line 7"]),
    ("codegen-bad-class-name", C, ["codegen", NET, W, "-o", "{d}/gen", "--class-name", "1x"], 2,
     ["--class-name", "'1x'"]),
    ("codegen-output-is-file", C, ["codegen", NET, "-o", "{d}/a_file"], 2,
     ["a_file", "expected a folder"]),
    # caffe-import solver-parity
    ("solver-parity-missing-folder", C, ["solver-parity", "{d}/absent_case"], 2, ["absent_case", "does not exist"]),
    ("solver-parity-wrong-folder", C, ["solver-parity", "{d}/voc"], 2, ["voc", "solver.prototxt"]),
    ("solver-parity-bad-meta", C, ["solver-parity", "{d}/bad_case"], 2, ["meta.json", "JSON"]),
    # caffe-import train / test / time (Caffe's tools, Caffe's single-dash flags)
    ("train-missing-solver", C, ["train", "-solver", "{d}/absent.prototxt"], 2,
     ["absent.prototxt", "does not exist", "solver"]),
    ("train-weights-and-snapshot", C, ["train", "-solver", NET, "-weights", W, "-snapshot", W], 2,
     ["snapshot", "weights", "not both"]),
    ("train-missing-snapshot", C, ["train", "--solver", NET, "--snapshot", "{d}/absent.solverstate"],
     2, ["absent.solverstate", "not found"]),
    ("train-bad-gpu", C, ["train", "-solver", NET, "-gpu", "first"], 2, ["-gpu", "first"]),
    ("test-missing-model", C, ["test", "-model", "{d}/absent.prototxt", "-weights", W], 2,
     ["absent.prototxt", "does not exist"]),
    ("test-weights-is-prototxt", C, ["test", "-model", NET, "-weights", NET], 2,
     ["net.prototxt", "not weights"]),
    ("time-missing-model", C, ["time", "-model", "{d}/absent.prototxt"], 2,
     ["absent.prototxt", "does not exist"]),
    ("time-syntax", C, ["time", "-model", "{d}/syntax.prototxt"], 2, ["syntax.prototxt", "line 7"]),
    # fcn-repro demo
    ("demo-bad-device", F, ["demo", "--device", "tpu"], 2, ["--device", "tpu"]),
    ("demo-output-is-file", F, ["demo", "-o", "{d}/a_file"], 2, ["a_file", "expected a folder"]),
    # fcn-repro eval
    ("eval-unknown-model", F, ["eval", "--model", "voc-fcn9s", "--weights", W, *VOC], 2,
     ["voc-fcn9s", "voc-fcn8s"]),
    ("eval-weights-missing", F, ["eval", "--model", "voc-fcn8s", "--weights", "{d}/absent.caffemodel", *VOC], 2,
     ["absent.caffemodel", "does not exist"]),
    ("eval-weights-is-mean", F, ["eval", "--net", NET, "--weights", "{d}/mean.binaryproto", *VOC], 2,
     ["mean.binaryproto", "not weights"]),
    ("eval-weights-random", F, ["eval", "--net", NET, "--weights", "{d}/random.bin", *VOC], 2,
     ["random.bin", "caffemodel"]),
    ("eval-net-without-dataset", F, ["eval", "--net", NET, "--weights", W, "--root", "{d}/voc"], 2,
     ["net.prototxt", "--dataset"]),
    ("eval-net-syntax", F, ["eval", "--net", "{d}/syntax.prototxt", "--weights", W, *VOC], 2,
     ["syntax.prototxt", "line 7"]),
    ("eval-root-missing", F, ["eval", "--net", NET, "--weights", W, "--dataset", "voc",
                              "--root", "{d}/absent_voc", "-o", "{d}/m.json"], 2, ["absent_voc", "JPEGImages"]),
    ("eval-unknown-dataset", F, ["eval", "--net", NET, "--weights", W, "--dataset", "coco",
                                 "--root", "{d}/voc"], 2, ["--dataset", "coco"]),
    # fcn-repro infer
    ("infer-unknown-model", F, ["infer", "--model", "no-such-model", "--weights", W, "{d}/image.png",
                                "-o", "{d}/out"], 2, ["no-such-model"]),
    ("infer-image-missing", F, ["infer", "--net", NET, "--weights", W, "{d}/absent.jpg", "-o", "{d}/out"], 2,
     ["absent.jpg"]),
    ("infer-image-random", F, ["infer", "--net", NET, "--weights", W, "{d}/random.bin", "-o", "{d}/out"], 2,
     ["random.bin", "image"]),
    ("infer-image-empty", F, ["infer", "--net", NET, "--weights", W, "{d}/empty", "-o", "{d}/out"], 2,
     ["empty", "image"]),
    ("infer-weights-truncated", F, ["infer", "--net", NET, "--weights", "{d}/truncated.caffemodel",
                                    "{d}/image.png", "-o", "{d}/out"], 2, ["truncated.caffemodel", "truncated"]),
    ("infer-weights-is-prototxt", F, ["infer", "--net", NET, "--weights", NET, "{d}/image.png",
                                      "-o", "{d}/out"], 2, ["net.prototxt", "not weights"]),
    ("infer-net-unknown-type", F, ["infer", "--net", "{d}/unknown.prototxt", "--weights", W, "{d}/image.png",
                                   "-o", "{d}/out"], 2, ["unknown.prototxt", "FrobnicateLayer"]),
    ("infer-output-is-file", F, ["infer", "--net", NET, "--weights", W, "{d}/image.png", "-o", "{d}/a_file"], 2,
     ["a_file", "expected a folder"]),
    # fcn-repro tables
    ("tables-results-missing", F, ["tables", "--results", "{d}/absent_results"], 2,
     ["absent_results", "does not exist"]),
    ("tables-results-is-file", F, ["tables", "--results", "{d}/a_file"], 2, ["a_file", "expected a folder"]),
    # fcn-repro download
    ("download-unknown-model", F, ["download", "voc-fcn9s", "--cache-dir", "{d}/cache"], 2,
     ["voc-fcn9s", "voc-fcn8s"]),
    ("download-unreachable", F, ["download", "voc-fcn8s", "--cache-dir", "{d}/cache", "--base-url",
                                 "http://127.0.0.1:9/", "--timeout", "2", "--no-progress"], 1,
     ["127.0.0.1:9", "fcn8s-heavy-pascal.caffemodel"]),
    # fcn-repro netspec
    ("netspec-unknown-model", F, ["netspec", "voc-fcn9s"], 2, ["voc-fcn9s", "voc-fcn8s"]),
    ("netspec-output-is-folder", F, ["netspec", "voc-fcn8s", "-o", "{d}/voc"], 2, ["voc", "is a folder"]),
    # fcn-repro train (none gets as far as an iteration)
    ("train-unknown-model", F, ["train", "--model", "voc-fcn9s", *VOC, "--max-iter", "1", "--out", "{d}/t"], 2,
     ["voc-fcn9s"]),
    ("train-unknown-dataset", F, ["train", "--model", "voc-fcn32s", "--dataset", "coco", "--root", "{d}/voc",
                                  "--max-iter", "1"], 2, ["--dataset", "coco"]),
    ("train-root-missing", F, ["train", "--model", "voc-fcn32s", "--dataset", "voc", "--root", "{d}/absent_voc",
                               "--max-iter", "1", "--out", "{d}/t"], 2, ["absent_voc", "JPEGImages"]),
    ("train-init-missing", F, ["train", "--model", "voc-fcn32s", *VOC, "--init", "{d}/absent.caffemodel",
                               "--max-iter", "1", "--out", "{d}/t"], 2, ["absent.caffemodel", "--init"]),
    ("train-init-is-prototxt", F, ["train", "--model", "voc-fcn32s", *VOC, "--init", NET,
                                   "--max-iter", "1", "--out", "{d}/t"], 2, ["net.prototxt", "not weights"]),
    ("train-out-is-file", F, ["train", "--model", "voc-fcn32s", *VOC, "--max-iter", "1", "--out", "{d}/a_file"],
     2, ["a_file", "expected a folder"]),
    ("train-bad-device", F, ["train", "--model", "voc-fcn32s", *VOC, "--device", "cuda:99", "--max-iter", "1"],
     2, ["--device", "cuda:99"]),
    # fcn-repro synthetic-data
    ("synthetic-data-root-has-files", F, ["synthetic-data", "voc", "{d}/voc"], 2, ["voc", "not empty"]),
    ("synthetic-data-root-is-file", F, ["synthetic-data", "voc", "{d}/a_file"], 2, ["a_file", "expected a folder"]),
    ("synthetic-data-too-many", F, ["synthetic-data", "nyud", "{d}/syn", "--n", "100000"], 2,
     ["at most", "100000"]),
]


def _run(cli: str, argv: list[str], d: Path, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    main = caffe_cli.main if cli == C else fcn_cli.main
    rc = main([a.replace("{d}", str(d)) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


#: cases that need what the package's floors lack (.ci/run runs the suite at the floors too)
NEEDS = {"convert-proto-lacks-fork-fields": needs_grpc_tools,
         "export-shape-the-net-refuses": TORCH_EXPORT_MARKS}


@pytest.mark.parametrize("name, cli, argv, code, expected",
                         [pytest.param(*c, id=c[0], marks=NEEDS.get(c[0], ())) for c in CASES])
def test_bad_input_is_one_clear_error(name, cli, argv, code, expected, bad, capsys, monkeypatch):
    monkeypatch.setenv("FCN_REPRO_CACHE", str(bad / "cache"))
    rc, out, err = _run(cli, argv, bad, capsys)
    assert "Traceback" not in out + err
    assert rc == code, err
    prog = "caffe-import" if cli == C else "fcn-repro"
    assert f"{prog}" in err and "error:" in err, err
    for word in expected:
        word = word.replace("{d}", str(bad))
        assert word in err, f"{word!r} not in: {err}"


def test_errors_are_pinned_on_the_right_file(bad, capsys):
    """A net-building error names the prototxt; a dataset error is not blamed on it."""
    rc, _, err = _run(F, ["eval", "--net", NET, "--weights", W, "--dataset", "voc",
                          "--root", "{d}/absent_voc"], bad, capsys)
    assert rc == 2 and "net.prototxt" not in err and "absent_voc" in err
    rc, _, err = _run(C, ["convert", "{d}/unknown.prototxt", W, "-o", "{d}/o.pt"], bad, capsys)
    assert rc == 2 and err.startswith(f"caffe-import: error: {bad}/unknown.prototxt: ")


def test_a_typo_gets_no_fork_advice(bad, capsys):
    """Misspelt field names (each shown with its close name) are not blamed on a missing fork."""
    for name in ("typo", "typos"):
        rc, _, err = _run(C, ["inspect", f"{{d}}/{name}.prototxt"], bad, capsys)
        assert rc == 2 and "did you mean" in err and "fork" not in err, err


def _verb_names(module) -> set[str]:
    """The verbs a command's parser offers (a module may name its verb otherwise: cli/score.py
    is ``test``, so pytest does not collect it)."""
    sub = next(a for a in module.build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_every_verb_has_a_bad_input_row():
    verbs = {(cli, argv[0]) for _, cli, argv, _, _ in CASES}
    expected = {(cli, v) for cli, module in ((C, caffe_cli), (F, fcn_cli))
                for v in _verb_names(module)}
    assert expected <= verbs, expected - verbs


def test_usage_errors_return_2_instead_of_raising(capsys):
    assert caffe_cli.main([]) == 2
    assert fcn_cli.main(["no-such-verb"]) == 2
    assert caffe_cli.main(["--help"]) == 0
    assert "Traceback" not in "".join(capsys.readouterr())


def _verb_raising(exc: BaseException):
    def run(args):
        raise exc
    return run


@pytest.mark.parametrize("exc, code, words", [
    (KeyboardInterrupt(), 130, ["interrupted"]),
    (PermissionError(errno.EACCES, "Permission denied", "/data/out.h5"), 2,
     ["/data/out.h5", "Permission denied", "permissions"]),
    (OSError(errno.ENOSPC, "No space left on device", "/data/big.caffemodel"), 2,
     ["/data/big.caffemodel", "No space left", "free some space"]),
    (FileExistsError(errno.EEXIST, "File exists", "out"), 2, ["out", "a file is where a folder"]),
    (MemoryError(), 2, ["out of memory"]),
], ids=["ctrl-c", "permission", "disk-full", "file-in-the-way", "memory"])
def test_dispatcher_turns_system_failures_into_messages(exc, code, words, monkeypatch, capsys):
    import caffe_import.cli.convert as convert_verb
    monkeypatch.setattr(convert_verb, "run", _verb_raising(exc))
    rc = caffe_cli.main(["convert", "n.prototxt", "w.caffemodel", "-o", "x.pt"])
    out, err = capsys.readouterr()
    assert rc == code
    assert err.startswith("caffe-import: error: ") and "Traceback" not in out + err
    for word in words:
        assert word in err


def test_a_bug_keeps_its_traceback(monkeypatch):
    import fcn_repro.cli.tables as tables_verb
    monkeypatch.setattr(tables_verb, "run", _verb_raising(ZeroDivisionError("ours")))
    with pytest.raises(ZeroDivisionError):
        fcn_cli.main(["tables", "--results", "."])


def test_both_commands_share_one_dispatcher():
    assert fcn_cli.run_cli is caffe_cli.run_cli
