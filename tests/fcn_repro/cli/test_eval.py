"""fcn-repro eval's command line: bad option values are refused before any work."""
from __future__ import annotations

import pytest


def test_cli_eval_limit_zero_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import fcn_repro.evaluate as ev
    from fcn_repro.cli import main
    monkeypatch.setattr(ev, "evaluate", lambda **kw: pytest.fail("eval ran with --limit 0"))
    weights = tmp_path / "w.caffemodel"
    weights.write_bytes(b"\x00" * 10)
    out = tmp_path / "metrics.json"
    rc = main(["eval", "--model", "voc-fcn8s", "--weights", str(weights), "--root", str(tmp_path),
               "--limit", "0", "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and "--limit" in err



def test_cli_eval_net_reads_the_prototxt_once(tmp_path, monkeypatch):
    """The check before any work, the net, the fast net's exact twin and the zoo match all
    use one reading of ``--net``."""
    import caffe_import.io.text as text
    from fcn_repro.cli import main
    from fcn_repro.data.synthetic import make_dataset
    from support import case_dir

    case = case_dir("voc_fcn8s_narrow")
    root = make_dataset("voc", tmp_path / "voc", n=1, seed=4)
    reads, real = [], text.parse_text

    def parse_text(text_, message, *args, **kwargs):
        if message.DESCRIPTOR.name == "NetParameter":
            reads.append(message.DESCRIPTOR.full_name)
        return real(text_, message, *args, **kwargs)

    monkeypatch.setattr(text, "parse_text", parse_text)
    rc = main(["eval", "--net", str(case / "net.prototxt"), "--weights", str(case / "weights.caffemodel"),
               "--dataset", "voc", "--root", str(root), "--split", "seg11valid", "--limit", "1",
               "-o", str(tmp_path / "m.json"), "--no-progress", "--precision", "fast",
               "--agreement-images", "1"])
    assert rc == 0 and reads == ["caffe.NetParameter"]


@pytest.mark.parametrize("verb", ["eval", "infer"])
def test_cli_eval_and_infer_warn_of_layers_without_weights_and_fail_with_strict(verb, tmp_path, capsys):
    """A VOC caffemodel under a SIFT Flow net leaves score_fr_sem at zeros: Caffe says
    nothing; eval and infer warn naming the layer, and fail with --strict before scoring."""
    from caffe_import.io import read_weights, write_weights
    from fcn_repro.cli import main
    from fcn_repro.data.synthetic import make_dataset
    from support import case_dir

    case = case_dir("voc_fcn8s_narrow")
    weights = read_weights(case / "weights.caffemodel")
    del weights["score_fr"]
    partial = tmp_path / "partial.caffemodel"
    write_weights(partial, None, weights)
    root = make_dataset("voc", tmp_path / "voc", n=1, seed=4)
    out = tmp_path / "out"
    args = {"eval": ["--dataset", "voc", "--root", str(root), "-o", str(out / "metrics.json"),
                     "--no-progress"],
            "infer": ["-o", str(out), *map(str, (root / "JPEGImages").iterdir())]}[verb]
    argv = [verb, "--net", str(case / "net.prototxt"), "--weights", str(partial), *args]
    assert main(argv) == 0
    assert ("fcn-repro: warning: 1 layer(s) with params got no weights in "
            f"{partial} and keep their initial values (Caffe skips them silently): score_fr;"
            ) in capsys.readouterr().err
    for written in out.iterdir():
        written.unlink()
    assert main([*argv, "--strict"]) == 2
    assert capsys.readouterr().err == (f"fcn-repro: error: {partial}: 1 layer(s) of the net with "
                                       "params have no weights in this file: score_fr (weights of "
                                       "another net?)\n")
    assert not list(out.iterdir())
