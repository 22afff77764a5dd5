"""fcn-repro tables: published rows matched to metrics.json by model, dataset and split."""
from __future__ import annotations

import csv
import io
import json

import pytest

from fcn_repro.published import ROWS
from fcn_repro.tables import build_tables, collect_results, render


def _write(path, **record):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


@pytest.fixture
def results(tmp_path):
    _write(tmp_path / "voc8" / "metrics.json", model="voc-fcn8s", dataset="voc", split="seg11valid",
           images=736, pixel_acc=0.9122, mean_acc=0.7761, mean_iu=0.6551, fw_iu=0.8454)
    _write(tmp_path / "sift" / "metrics.json", model="siftflow-fcn16s", dataset="siftflow", split="test",
           images=200, pixel_acc=0.85, mean_acc=0.5, mean_iu=0.4, fw_iu=0.76, geometric_acc=0.943)
    _write(tmp_path / "other" / "metrics.json", model="voc-fcn8s", dataset="voc", split="val",
           images=3, pixel_acc=0.1, mean_acc=0.1, mean_iu=0.1, fw_iu=0.1)
    (tmp_path / "junk.json").write_text("[1, 2]")
    return tmp_path


def test_published_numbers_are_the_papers():
    by = {(r.table, r.label): r for r in ROWS}
    assert by[("cvpr-2", "FCN-8s")].mean_iu == 62.7
    assert by[("cvpr-5", "FCN-16s")].geometric_acc == 94.3
    assert by[("release", "voc-fcn8s")].mean_iu == 65.5
    assert by[("context", "FCN-8s")].fw_iu == 51.0


def test_results_match_by_model_dataset_and_split(results):
    found = collect_results(results)
    assert len(found) == 3  # junk.json is not a result
    tables = build_tables(found)
    release8 = next(r for r in tables["release"] if r.published.model == "voc-fcn8s")
    assert release8.ours("mean_iu") == pytest.approx(65.51)
    assert release8.diff("mean_iu") == pytest.approx(0.01)
    assert next(r for r in tables["release"] if r.published.model == "voc-fcn32s").result is None
    sift = tables["cvpr-5"][0]
    assert sift.diff("geometric_acc") == pytest.approx(0.0)


def test_markdown_says_which_rows_have_no_result(results):
    text = render(build_tables(collect_results(results)), "markdown")
    assert "| voc-fcn8s | voc-fcn8s | 65.5 | 65.5 | +0.0 | 736 images |" in text
    assert "| voc-fcn32s | voc-fcn32s | 63.6 |  |  | no result |" in text


def test_csv_and_latex(results):
    tables = build_tables(collect_results(results))
    rows = list(csv.DictReader(io.StringIO(render(tables, "csv"))))
    hit = [r for r in rows if r["table"] == "third-party" and r["model"] == "voc-fcn8s" and r["metric"] == "mean_iu"]
    assert hit and float(hit[0]["ours"]) == pytest.approx(65.51)
    tex = render(tables, "latex")
    assert tex.count(r"\begin{tabular}") == len(tables) and r"mean\_iu" not in tex


def test_cli_tables_with_plot(results, tmp_path, capsys):
    from fcn_repro.cli import main
    assert main(["tables", "--results", str(results), "--plot", str(tmp_path / "iu.png")]) == 0
    assert (tmp_path / "iu.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "CVPR 2015 Table 5" in capsys.readouterr().out


def test_cli_tables_missing_folder_exits_2(tmp_path, capsys):
    from fcn_repro.cli import main
    assert main(["tables", "--results", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_every_json_in_no_row_is_named_with_its_reason(results, tmp_path):
    import os
    from fcn_repro.tables import scan_results, unused_results
    older = _write(tmp_path / "old" / "metrics.json", model="voc-fcn8s", dataset="voc",
                   split="seg11valid", images=5, mean_iu=0.5)
    os.utime(older, (1, 1))
    _write(tmp_path / "mine" / "metrics.json", model="mynet", dataset="voc", split="seg11valid",
           images=5, mean_iu=0.5, net=str(tmp_path / "gone.prototxt"))
    found, skipped = scan_results(results)
    reasons = {s.path.relative_to(tmp_path).as_posix(): s.reason
               for s in skipped + unused_results(found)}
    assert reasons["junk.json"] == "not an eval result (no model, dataset and split)"
    assert reasons["other/metrics.json"].startswith("no published numbers for voc-fcn8s on voc/val")
    assert reasons["old/metrics.json"].startswith("superseded by the newer")
    assert "'mynet'" in reasons["mine/metrics.json"] and "--name" in reasons["mine/metrics.json"]
    assert len(reasons) == 4  # the matched results are not listed


def test_a_net_result_is_placed_by_what_its_prototxt_computes(tmp_path):
    from support import ROOT
    from fcn_repro.tables import scan_results, unused_results
    deploy = ROOT / "prototxt" / "voc-fcn8s" / "deploy.prototxt"
    # an eval --net result written before eval recorded the zoo model: the prototxt decides
    _write(tmp_path / "a" / "metrics.json", model="deploy", net=str(deploy), dataset="voc",
           split="seg11valid", images=7, mean_iu=0.6)
    # eval recorded that the net is some zoo model's, but --name chose another name
    _write(tmp_path / "b" / "metrics.json", model="fine-tuned", net="x.prototxt", net_matches=["voc-fcn16s"],
           dataset="voc", split="seg11valid", images=7, mean_iu=0.6)
    found, skipped = scan_results(tmp_path)
    assert not skipped
    tables = build_tables(found)
    assert next(r for r in tables["release"] if r.published.model == "voc-fcn8s").result.images == 7
    (unused,) = unused_results(found)
    assert unused.reason.endswith("is voc-fcn16s's deploy net; rerun eval with --name voc-fcn16s")


def test_cli_lists_skipped_files_on_stderr(results, capsys):
    from fcn_repro.cli import main
    assert main(["tables", "--results", str(results)]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 2 and all(line.startswith("fcn-repro tables: skipped ") for line in lines)
    assert any("junk.json: not an eval result" in line for line in lines)
    assert "skipped" not in captured.out


def test_eval_net_records_what_its_net_matches_and_tables_says_why_it_is_unplaced(tmp_path, capsys):
    from support import case_dir
    from fcn_repro.cli import main
    from fcn_repro.data.synthetic import make_dataset
    root = make_dataset("voc", tmp_path / "voc", n=1)
    case = case_dir("voc_fcn8s_narrow")
    out = tmp_path / "results" / "narrow" / "metrics.json"
    assert main(["eval", "--net", str(case / "net.prototxt"), "--weights", str(case / "weights.caffemodel"),
                 "--dataset", "voc", "--root", str(root), "-o", str(out), "--no-progress"]) == 0
    record = json.loads(out.read_text())
    assert record["model"] == "net" and record["net_matches"] == []
    capsys.readouterr()
    assert main(["tables", "--results", str(tmp_path / "results")]) == 0
    err = capsys.readouterr().err
    assert "computes no release model's deploy net" in err and "--name" in err


def test_cli_says_when_the_folder_holds_no_result(tmp_path, capsys):
    from fcn_repro.cli import main
    assert main(["tables", "--results", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "no result" in captured.out
    assert captured.err == f"fcn-repro tables: no eval result (metrics.json of fcn-repro eval) under {tmp_path}\n"


def test_an_exact_result_is_preferred_over_a_newer_fast_one_and_rows_say_what_they_show(tmp_path):
    """A --precision fast run used to replace the exact one for the same model by being newer,
    and no row said fast or synthetic."""
    import os
    from fcn_repro.tables import scan_results, unused_results
    exact = _write(tmp_path / "exact" / "metrics.json", model="voc-fcn8s", dataset="voc",
                   split="seg11valid", images=736, mean_iu=0.6551, precision="exact")
    os.utime(exact, (1, 1))
    _write(tmp_path / "fast" / "metrics.json", model="voc-fcn8s", dataset="voc", split="seg11valid",
           images=736, mean_iu=0.6549, precision="fast")
    found, _ = scan_results(tmp_path)
    row = next(r for r in build_tables(found)["release"] if r.published.model == "voc-fcn8s")
    assert row.result.path == exact and row.ours("mean_iu") == pytest.approx(65.51)
    assert unused_results(found)[0].reason == (
        f"superseded by the exact result {exact}, preferred over this fast-precision one "
        "(voc-fcn8s on voc/seg11valid)")
    exact.unlink()  # only the fast one left: shown, and said
    found, _ = scan_results(tmp_path)
    text = render(build_tables(found), "markdown")
    assert "| voc-fcn8s | voc-fcn8s | 65.5 | 65.5 | -0.0 | 736 images; fast precision |" in text
    rows = list(csv.DictReader(io.StringIO(render(build_tables(found), "csv"))))
    assert {r["caveats"] for r in rows if r["result"] != "no result"} == {"fast precision"}


def test_results_on_synthetic_data_say_so_and_give_way_to_real_data(tmp_path, capsys):
    """eval records a synthetic-data root as such; tables puts real data first and says
    'synthetic data' in the row of a result that has nothing else."""
    import os
    from fcn_repro.cli import main
    from fcn_repro.data.synthetic import make_dataset
    from fcn_repro.evaluate import evaluate
    from support import case_dir
    case = case_dir("voc_fcn8s_narrow")
    root = make_dataset("voc", tmp_path / "voc", n=1, seed=4)
    record = evaluate(net_path=case / "net.prototxt", weights=case / "weights.caffemodel", dataset="voc",
                      root=root, name="voc-fcn8s", output=tmp_path / "res" / "syn" / "metrics.json",
                      progress=False)
    assert record["synthetic_data"] is True
    assert main(["tables", "--results", str(tmp_path / "res")]) == 0
    assert f"| {record['images']} images; synthetic data |" in capsys.readouterr().out
    real = _write(tmp_path / "res" / "real" / "metrics.json", model="voc-fcn8s", dataset="voc",
                  split=record["split"], images=736, mean_iu=0.6551, synthetic_data=False)
    os.utime(real, (1, 1))  # older, but real data
    assert main(["tables", "--results", str(tmp_path / "res")]) == 0
    out, err = capsys.readouterr()
    assert "| 736 images |" in out and "synthetic data |" not in out
    assert "scored on real data, preferred over this one on synthetic data" in err
