"""fcn-repro demo runs offline into a folder and says the weights are random."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcn_repro.demo import DEMO_IMAGE, NARROW


def test_bundled_assets_are_present():
    for name in ("net.prototxt", "weights.caffemodel", "reference.h5", "meta.json"):
        assert (NARROW / name).is_file()
    assert DEMO_IMAGE.is_file()


def test_demo_runs_into_tmp_dir(tmp_path, capsys):
    try:
        from caffe_import.net import CaffeNet
        CaffeNet(str(NARROW / "net.prototxt"))
    except Exception as exc:
        pytest.skip(f"CaffeNet cannot build the narrow FCN-8s yet: {exc}")
    from fcn_repro.cli import main
    rc = main(["demo", "-o", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "32/32 blobs within tolerance" in out
    assert "random" in out.lower() and "meaningless" in out
    assert "fcn-repro download voc-fcn8s" in out and "fcn-repro eval" in out
    w, h = Image.open(DEMO_IMAGE).size
    label = Image.open(tmp_path / "out" / "demo_label.png")
    assert label.mode == "P" and label.size == (w, h) and np.asarray(label).max() < 21
    assert Image.open(tmp_path / "out" / "demo_overlay.png").size == (w, h)
    assert (tmp_path / "out" / "demo_figure.png").stat().st_size > 0


def test_next_steps_name_the_file_download_writes(tmp_path, monkeypatch):
    import fcn_repro.download as dl
    from fcn_repro.demo import next_steps
    monkeypatch.setenv(dl.ENV_CACHE, str(tmp_path / "my cache"))
    written = []
    monkeypatch.setattr(dl, "download_url", lambda url, dest, **kw: written.append(dest) or dest)
    dest = dl.download_model("voc-fcn8s")
    assert written == [dest] and dest.parent == tmp_path / "my cache"
    text = next_steps()
    assert f"--weights '{dest}'" in text  # quoted: the folder has a space
    assert text.count(str(dest)) == 2  # infer and eval
