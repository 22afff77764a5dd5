"""fcn-repro infer: label PNG in the VOC palette, overlay, optional scores."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image

from support import case_dir
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
    written = infer([image], tmp_path / "out", net_path="stub.prototxt", weights=None, save_scores=True)
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


def _two_folders(tmp_path, image):
    for folder in ("d1", "d2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.png").write_bytes(image.read_bytes())
    return tmp_path / "d1" / "a.png", tmp_path / "d2" / "a.png"


def test_same_file_names_from_two_folders_keep_their_folders(tmp_path, image, monkeypatch):
    from fcn_repro import zoo
    from fcn_repro.infer import infer
    monkeypatch.setattr(zoo, "build_net", lambda **kw: StubNet())
    a1, a2 = _two_folders(tmp_path, image)
    written = infer([a1, a2, a1], tmp_path / "out", net_path="stub.prototxt", weights=None)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "d1/a.png", "d1/a_overlay.png", "d2/a.png", "d2/a_overlay.png"]
    assert infer([image], tmp_path / "flat", net_path="stub.prototxt", weights=None)[0] == tmp_path / "flat" / "photo.png"


def test_distinct_names_from_far_apart_folders_stay_flat(tmp_path, image, monkeypatch):
    """An absolute and a relative path in unrelated folders: no folders reproduced under -o."""
    from fcn_repro import zoo
    from fcn_repro.infer import infer
    monkeypatch.setattr(zoo, "build_net", lambda **kw: StubNet())
    for folder, name in (("deep/dir1", "a.png"), ("other/dir2", "b.png")):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / name).write_bytes(image.read_bytes())
    monkeypatch.chdir(tmp_path / "other")
    written = infer([tmp_path / "deep/dir1/a.png", "dir2/b.png", "./dir2/../dir2/b.png"], "inf",
                    net_path="stub.prototxt", weights=None)
    assert sorted(p.as_posix() for p in written) == [
        "inf/a.png", "inf/a_overlay.png", "inf/b.png", "inf/b_overlay.png"]


@pytest.mark.parametrize("names", [("a.png", "a.jpg"), ("a.png", "a_overlay.png")])
def test_inputs_that_would_write_one_file_are_refused_before_any_work(tmp_path, image, monkeypatch,
                                                                      capsys, names):
    from fcn_repro import zoo
    from fcn_repro.cli import main
    monkeypatch.setattr(zoo, "build_net", lambda **kw: StubNet())
    paths = [tmp_path / n for n in names]
    for p in paths:
        p.write_bytes(image.read_bytes())
    case = case_dir("voc_fcn8s_narrow")
    rc = main(["infer", "--net", str(case / "net.prototxt"), "--weights", str(case / "weights.caffemodel"),
               *map(str, paths),
               "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert str(paths[0]) in err and str(paths[1]) in err and "would" in err
    assert not (tmp_path / "out").exists()


def test_an_undecodable_image_is_an_image_error_naming_it(tmp_path, capsys):
    from fcn_repro.cli import main
    from fcn_repro.errors import FCNReproError, ImageError
    from fcn_repro.infer import infer

    case = case_dir("voc_fcn8s_narrow")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(ImageError, match="broken.jpg: not a readable image") as info:
        infer(net_path=case / "net.prototxt", weights=case / "weights.caffemodel", images=[bad],
              output_dir=tmp_path / "out")
    assert isinstance(info.value, FCNReproError) and info.value.path == bad
    rc = main(["infer", "--net", str(case / "net.prototxt"), "--weights",
               str(case / "weights.caffemodel"), str(bad), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "broken.jpg: not a readable image" in err[0]
    assert not (tmp_path / "out" / "broken.png").exists()


def _narrow_net():
    case = case_dir("voc_fcn8s_narrow")
    return ["--net", str(case / "net.prototxt"), "--weights", str(case / "weights.caffemodel")]


def _copies(folder, image, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(image.read_bytes())
    return [folder / n for n in names]


def test_cli_infer_shows_a_progress_bar_to_the_last_image(tmp_path, image, monkeypatch, capsys):
    from fcn_repro import zoo
    from fcn_repro.cli import main
    monkeypatch.setattr(zoo, "build_net", lambda **kw: StubNet())
    paths = _copies(tmp_path / "in", image, ["a.png", "b.png"])
    assert main(["infer", *_narrow_net(), *map(str, paths), "-o", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert "infer" in err and "2/2" in err and "100%" in err
    assert out.split() == [str(tmp_path / "out" / n) for n in ("a.png", "a_overlay.png", "b.png", "b_overlay.png")]
    assert main(["infer", *_narrow_net(), str(paths[0]), "-o", str(tmp_path / "o2"), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_a_folder_gives_the_images_inside_it(tmp_path, image, monkeypatch):
    from fcn_repro import zoo
    from fcn_repro.infer import infer
    monkeypatch.setattr(zoo, "build_net", lambda **kw: StubNet())
    _copies(tmp_path / "photos", image, ["b.png", "a.PNG"])
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    (tmp_path / "photos" / "sub").mkdir()
    written = infer([tmp_path / "photos"], tmp_path / "out", net_path="stub.prototxt", weights=None)
    assert [p.name for p in written] == ["a.png", "a_overlay.png", "b.png", "b_overlay.png"]
    (tmp_path / "empty").mkdir()
    from caffe_import.errors import UsageError
    with pytest.raises(UsageError, match="no image file"):
        infer([tmp_path / "empty"], tmp_path / "out2", net_path="stub.prototxt", weights=None)


def test_every_image_is_checked_before_anything_is_written(tmp_path, image, monkeypatch):
    from fcn_repro import zoo
    from fcn_repro.errors import ImageError
    from fcn_repro.infer import infer
    monkeypatch.setattr(zoo, "build_net", lambda **kw: pytest.fail("the net was built before the check"))
    good = _copies(tmp_path, image, ["good.png"])[0]
    bad = tmp_path / "zbroken.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(bad)
    bad.write_bytes(bad.read_bytes()[:2000])  # truncated: its header reads, its pixels do not
    with pytest.raises(ImageError, match="zbroken.png"):
        infer([good, bad], tmp_path / "out", net_path="stub.prototxt", weights=None)
    assert not (tmp_path / "out").exists()


def test_a_stopped_run_reports_what_it_wrote(tmp_path, image, monkeypatch, capsys):
    from fcn_repro import zoo
    from fcn_repro.cli import main

    class StopsOnTheSecond(StubNet):
        calls = 0

        def forward(self, outputs=None, **inputs):
            type(self).calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().forward(outputs, **inputs)

    monkeypatch.setattr(zoo, "build_net", lambda **kw: StopsOnTheSecond())
    paths = _copies(tmp_path / "in", image, ["a.png", "b.png", "c.png"])
    rc = main(["infer", *_narrow_net(), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 130
    assert out.split() == [str(tmp_path / "out" / n) for n in ("a.png", "a_overlay.png")]
    assert "stopped after 1 of 3 images" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "a_overlay.png"]
    assert len(paths) == 3


def test_a_two_input_net_pairs_its_second_input_by_file_name(tmp_path, capsys):
    """NYUDv2 colour + HHA: the images feed ``color``, ``--input hha=DIR`` the HHA images of the
    same names, made as the release's data layer makes them (HHA not flipped)."""
    from caffe_import.net import CaffeNet
    from fcn_repro.cli import main
    from fcn_repro.data import nyud
    from fcn_repro.data.synthetic import make_dataset
    from fcn_repro.data.transforms import VOC_MEAN_BGR, caffe_rgb
    case = case_dir("nyud_fcn32s_color_hha_narrow")
    root = make_dataset("nyud", tmp_path / "nyud", n=2)
    net_args = ["--net", str(case / "net.prototxt"), "--weights", str(case / "weights.caffemodel")]
    rc = main(["infer", *net_args, str(root / "data" / "images"), "--input", f"hha={root / 'data' / 'hha'}",
               "-o", str(tmp_path / "out"), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    net = CaffeNet(str(case / "net.prototxt"), weights=str(case / "weights.caffemodel"))
    for color in sorted((root / "data" / "images").iterdir()):
        im = Image.open(color).convert("RGB")
        hha = Image.open(root / "data" / "hha" / color.name)
        out = net(color=torch.from_numpy(caffe_rgb(np.asarray(im), VOC_MEAN_BGR))[None],
                  hha=torch.from_numpy(nyud.preprocess("hha", hha))[None])
        expected = out[net.outputs[0]][0].argmax(0).numpy()
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / f"{color.stem}.png")), expected)
    rc = main(["infer", *net_args, str(root / "data" / "images"), "-o", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert rc == 2 and "the net takes the inputs color, hha" in err and "--input" in err
    (tmp_path / "lonely").mkdir()
    rc = main(["infer", *net_args, str(root / "data" / "images"), "--input", f"hha={tmp_path / 'lonely'}",
               "-o", str(tmp_path / "o3")])
    assert rc == 2 and "input hha: no file named like" in capsys.readouterr().err


def test_the_hha_model_feeds_hha_unflipped(tmp_path, image, monkeypatch):
    """nyud-fcn32s-hha's one input ``data`` is HHA: made as the data layer makes HHA (the
    mean removed in file order), not flipped to BGR as a colour image."""
    from fcn_repro import zoo
    from fcn_repro.data import nyud
    from fcn_repro.infer import infer
    fed = {}

    class Recorder(StubNet):
        def forward(self, outputs=None, **inputs):
            fed.update(inputs)
            return super().forward(outputs, **inputs)

    monkeypatch.setattr(zoo, "build_net", lambda **kw: Recorder())
    infer([image], tmp_path / "out", model="nyud-fcn32s-hha", weights=None)
    expected = nyud.preprocess("hha", Image.open(image))
    np.testing.assert_array_equal(fed["data"][0].numpy(), expected)
