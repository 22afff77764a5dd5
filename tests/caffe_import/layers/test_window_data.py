"""caffe_import.layers.window_data: window files and Caffe's window geometry (batches against
real Caffe: test_data_read.py)."""
from __future__ import annotations

import pytest

from caffe_import.errors import CaffeFormatError
from caffe_import.layers.window_data import plan_warp, read_window_file


def test_window_file_sorts_windows_by_the_thresholds(tmp_path):
    (tmp_path / "w.txt").write_text("# 0\nx.png\n3\n10\n20\n3\n1 0.9 0 0 4 4\n"
                                    "2 0.5 1 1 3 3\n5 0.2 2 2 6 6\n# 1 y.png 3 5 5 1 3 0.6 0 0 1 1\n")
    images, fg, bg = read_window_file(str(tmp_path / "w.txt"), "root/", 0.7, 0.3, layer="w")
    assert images == [("root/x.png", 3), ("root/y.png", 3)]
    assert [(w.image, w.label, w.box) for w in fg] == [(0, 1, (0, 0, 4, 4))]
    assert [(w.image, w.label, w.overlap) for w in bg] == [(0, 0, 0.0)]  # label forced to 0


def test_a_missing_window_file_names_it(tmp_path):
    with pytest.raises(CaffeFormatError, match="no.txt, layer 'w': cannot read the window"):
        read_window_file(str(tmp_path / "no.txt"), "", 0.5, 0.5, layer="w")


def test_warp_without_context_is_the_box_at_crop_size():
    warp = plan_warp((1, 2, 5, 9), (20, 20), 8, 0, False, False)
    assert (warp.box, warp.size, warp.pad) == ((1, 2, 5, 9), (8, 8), (0, 0))


def test_context_pad_grows_the_box_and_clips_it_with_padding():
    # box 10 x 10 at the top-left corner, crop 10 with 2 of context: scale 10/6
    warp = plan_warp((0, 0, 9, 9), (30, 30), 10, 2, False, False)
    assert warp.box == (0, 0, 13, 13)  # grown to (-3..13), clipped at 0
    assert warp.pad == (2, 2) and warp.size == (8, 8)
    mirrored = plan_warp((0, 0, 9, 9), (30, 30), 10, 2, False, True)
    assert mirrored.pad == (2, 0)  # the padding is mirrored too


def test_square_mode_uses_the_longer_side():
    warp = plan_warp((10, 10, 13, 19), (40, 40), 10, 0, True, False)
    assert warp.box == (7, 10, 17, 20)
