"""fcn-repro infer: label PNG in the VOC palette, overlay, optional scores."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image

from support import case_dir
from fcn_repro.data.transforms import VOC_MEAN_BGR
from fcn_repro.palette import voc_palette


class StubNet:
    """Class 15 (person) where red is above the VOC red mean, else background."""
    inputs = ["data"]
    outputs = ["score"]

    def forward(self, outputs=None, **inputs):
        x = inputs["data"]
        pred = (x[:, 2] > 0).long() * 15
        return OrderedDict(score=torch.nn.functional.one_hot(pred, 21).permute(0, 3, 1, 2).float())


@pytest.fixture
def image(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:, 4:, 0] = 255  # right half red
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    return path


def test_infer_writes_palette_label_overlay_and_scores(tmp_path, image, monkeypatch):
    from fcn_repro import zoo
    from fcn_repro.infer import infer
    monkeypatch.setattr(zoo, "build_net", lambda **kw: StubNet())
    written = infer([image], tmp_path / "out", net="stub.prototxt", weights=None, save_scores=True)
    names = sorted(p.name for p in written)
    assert names == ["photo.png", "photo_overlay.png", "photo_scores.npy"]
    label = Image.open(tmp_path / "out" / "photo.png")
    assert label.mode == "P"
    expected = np.zeros((6, 8), np.uint8); expected[:, 4:] = 15
    np.testing.assert_array_equal(np.asarray(label), expected)
    assert label.getpalette()[15 * 3:15 * 3 + 3] == voc_palette()[15].tolist()
    overlay = np.asarray(Image.open(tmp_path / "out" / "photo_overlay.png"))
    assert overlay.shape == (6, 8, 3)
    scores = np.load(tmp_path / "out" / "photo_scores.npy")
    assert scores.shape == (21, 6, 8) and scores.dtype == np.float32


def test_missing_image_is_a_clear_error(tmp_path, monkeypatch):
    from fcn_repro import zoo
    from fcn_repro.cli import main
    monkeypatch.setattr(zoo, "build_net", lambda **kw: StubNet())
    rc = main(["infer", "--net", "x.prototxt", "--weights", "w", str(tmp_path / "nope.jpg"), "-o", str(tmp_path)])
    assert rc == 2


def test_cli_infer_with_the_bundled_narrow_net(tmp_path, image, capsys):
    try:
        from caffe_import.net import CaffeNet
        CaffeNet(str(case_dir("voc_fcn8s_narrow") / "net.prototxt"))
    except Exception as exc:
        pytest.skip(f"CaffeNet cannot build the narrow FCN-8s yet: {exc}")
    from fcn_repro.cli import main
    case = case_dir("voc_fcn8s_narrow")
    rc = main(["infer", "--net", str(case / "net.prototxt"), "--weights", str(case / "weights.caffemodel"),
               str(image), "-o", str(tmp_path / "out")])
    assert rc == 0
    label = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    assert label.shape == (6, 8) and label.max() < 21
