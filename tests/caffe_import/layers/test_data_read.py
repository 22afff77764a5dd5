"""Data layers that read (caffe_import.layers.data_read, window_data): TEST-phase batches equal
real Caffe's (pycaffe, tests/fixtures/datalayers), and how a net is built to read."""
from __future__ import annotations

import gc
import re
import threading

import cv2
import numpy as np
import pytest

from caffe_import.errors import CaffeFormatError
from caffe_import.io.datasets import image_datum, write_db
from caffe_import.layers.data_read import DataLayer, DataReading, ImageDataLayer
from caffe_import.layers.window_data import WindowDataLayer
from caffe_import import pycaffe as caffe
from caffe_import.net import CaffeNet
from support import ROOT
from support.datalayers import FORWARDS, NET_NAMES, caffe_batches, data_fixture


@pytest.mark.parametrize("name", NET_NAMES)
def test_batches_equal_caffes(name, tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    expected = caffe_batches()
    net = CaffeNet(f"nets/{name}.prototxt", data=True)
    assert net.inputs == []
    for k in range(FORWARDS):  # 3 forwards: the cursors wrap
        out = net.forward()
        for top in net.outputs:
            want = expected[f"{name}/{k}/{top}"]
            got = out[top].numpy()
            assert got.dtype == np.float32 and got.shape == want.shape, (name, k, top)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} forward {k} {top}")


def test_data_layers_stay_inputs_unless_the_net_reads(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    net = CaffeNet("nets/data_lmdb_resized.prototxt", input_shapes={"data": (4, 3, 8, 8), "label": (4,)})
    assert net.inputs == ["data", "label"]
    reading = CaffeNet("nets/data_lmdb_resized.prototxt", data=True)
    assert reading.inputs == [] and reading.blob_shapes["data"] == (4, 3, 8, 8)
    assert type(reading.layer("d")) is DataLayer
    for name, cls in [("imagedata_gray", ImageDataLayer), ("windowdata_warp", WindowDataLayer)]:
        assert type(CaffeNet(f"nets/{name}.prototxt", data=True).layers[0]) is cls


def test_shapes_come_from_the_first_record_without_input_shapes(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    with pytest.raises(CaffeFormatError, match="or data=True to read"):
        CaffeNet("nets/data_leveldb_gray.prototxt")
    net = CaffeNet("nets/data_leveldb_gray.prototxt", data=True)
    assert net.blob_shapes["data"] == (3, 1, 10, 12)


def net_text(layer_type: str, param: str, transform: str = "") -> str:
    field = {"Data": "data_param", "ImageData": "image_data_param",
             "WindowData": "window_data_param"}[layer_type]
    return (f'layer {{ name: "src" type: "{layer_type}" top: "data" top: "label" '
            f'{field} {{ {param} }} transform_param {{ {transform} }} }}')


@pytest.mark.parametrize("layer_type, param, message", [
    ("Data", 'source: "nowhere" batch_size: 1 backend: LMDB',
     r"nowhere, layer 'src': no such database folder \(relative to the working folder"),
    ("Data", 'source: "caffe/lmdb_raw" batch_size: 1',
     "lmdb_raw, layer 'src': this is a lmdb database, but the backend is leveldb"),
    ("Data", 'batch_size: 1', "layer 'src': no source given"),
    ("Data", 'source: "caffe/lmdb_raw" backend: LMDB', "batch_size must be > 0"),
    ("ImageData", 'source: "none.txt"', "none.txt, layer 'src': cannot read the image list"),
    ("ImageData", 'source: "images/list.txt"',
     r"6 of the 6 images that images/list.txt lists do not exist \(root_folder ''\)"),
    ("ImageData", 'source: "images/list.txt" root_folder: "images/" new_height: 4',
     "new_height and new_width must be set together"),
    ("WindowData", 'source: "images/list.txt" batch_size: 2',
     "images/list.txt, layer 'src': expected '#'"),
    ("WindowData", 'source: "images/windows.txt" batch_size: 2', "needs transform_param"),
])
def test_a_bad_source_is_one_error_at_build(layer_type, param, message, tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    with pytest.raises(CaffeFormatError, match=message):
        CaffeNet(net_text(layer_type, param), data=True)


def test_mean_file_errors_name_the_layer(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    with pytest.raises(CaffeFormatError, match="layer 'src': mean_file 'no.binaryproto' not "
                                               "found"):
        CaffeNet(net_text("Data", 'source: "caffe/lmdb_raw" backend: LMDB batch_size: 1',
                          'mean_file: "no.binaryproto"'), data=True)
    with pytest.raises(CaffeFormatError, match="the first record: 3 x 13 x 17 does not match the mean file's "
                                               "3 x 10 x 12"):
        CaffeNet(net_text("Data", 'source: "caffe/lmdb_raw" backend: LMDB batch_size: 1',
                          'mean_file: "caffe/mean_resized.binaryproto"'), data=True)


def test_images_of_other_sizes_in_one_batch_are_an_error(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    net = CaffeNet(net_text("Data", 'source: "caffe/lmdb_raw" backend: LMDB batch_size: 2'),
                   data=True)
    assert net.blob_shapes["data"] == (2, 3, 13, 17)
    with pytest.raises(CaffeFormatError, match=r"layer 'src': record '00000001_b.jpg' of "
                                               r"caffe/lmdb_raw gives an item of shape "
                                               r"\(3, 15, 11\).*must have one size"):
        net.forward()


def test_solvers_of_a_multi_gpu_run_share_the_records_in_train(tmp_path, monkeypatch):
    """Caffe's ``Skip``: of n solvers, solver r keeps the records at offsets r, r + n, ...
    in TRAIN; in TEST every solver reads every record."""
    data_fixture(tmp_path, monkeypatch)
    text = net_text("Data", 'source: "caffe/lmdb_resized" backend: LMDB batch_size: 3')
    whole = CaffeNet(text, phase="train", data=True)
    rows = np.concatenate([whole.forward()["data"].numpy() for _ in range(2)])  # 6 records
    for phase, expected in (("train", (rows[0::2], rows[1::2])), ("test", (rows[:3], rows[:3]))):
        for rank in (0, 1):
            net = CaffeNet(text, phase=phase, data=True)
            layer = next(m for m in net.modules() if isinstance(m, DataLayer))
            layer.solver_rank, layer.solver_count = rank, 2
            np.testing.assert_array_equal(net.forward()["data"].numpy(), expected[rank])

def test_an_image_that_does_not_decode_fails_the_forward_that_reads_it(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    (tmp_path / "datalayers" / "images" / "f.png").write_bytes(b"broken")
    net = CaffeNet(net_text("ImageData", 'source: "images/list.txt" root_folder: "images/" '
                                         'batch_size: 3 new_height: 5 new_width: 5'), data=True)
    net.forward()
    with pytest.raises(CaffeFormatError, match="images/f.png, layer 'src': could not open "
                                               "or decode"):
        net.forward()


def test_train_phase_is_random_but_reproducible_with_a_seed(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    text = net_text("ImageData", 'source: "images/list.txt" root_folder: "images/" '
                                 'batch_size: 6 new_height: 12 new_width: 12 shuffle: true',
                    "crop_size: 6 mirror: true")

    def batches(seed):
        net = CaffeNet(text, phase="train", data=DataReading(seed=seed))
        return [net.forward() for _ in range(2)]

    a, b, c = batches(1), batches(1), batches(2)
    for x, y in zip(a, b):
        assert all(np.array_equal(x[t].detach(), y[t].detach()) for t in ("data", "label"))
    assert not all(np.array_equal(x["data"], z["data"]) for x, z in zip(a, c))
    labels = sorted(a[0]["label"].tolist())
    assert labels == [0, 0, 1, 1, 2, 2]  # a shuffled epoch: each line once


def test_test_phase_centre_crop_matches_slicing(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    whole = CaffeNet(net_text("Data", 'source: "caffe/lmdb_resized" backend: LMDB '
                                      'batch_size: 6'), data=True).forward()["data"]
    crop = CaffeNet(net_text("Data", 'source: "caffe/lmdb_resized" backend: LMDB '
                                     'batch_size: 6', "crop_size: 7"), data=True).forward()
    np.testing.assert_array_equal(crop["data"], whole[:, :, 1:8, 2:9])  # (10-7)//2, (12-7)//2


def test_prefetch_depth_and_close(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    expected = caffe_batches()
    net = CaffeNet("nets/data_lmdb_resized.prototxt", data=DataReading(prefetch=1))
    layer = net.layer("d")
    assert layer.depth == 1
    net.forward()
    layer.close()  # the batches made ahead are dropped; a later forward goes on after them
    assert layer._prefetcher is None
    assert net.forward()["label"].tolist() in [
        expected[f"data_lmdb_resized/{k}/label"].tolist() for k in range(FORWARDS)]
    assert CaffeNet("nets/data_lmdb_resized.prototxt", data=True).layer("d").depth == 4


def test_window_file_errors(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    base = 'root_folder: "images/" batch_size: 2'

    def build(text: str, extra: str = "") -> None:
        (tmp_path / "w.txt").write_text(text)
        CaffeNet(net_text("WindowData", f'source: "{tmp_path}/w.txt" {base} {extra}',
                          "crop_size: 4"), data=True)

    with pytest.raises(CaffeFormatError, match="the window file is empty"):
        build("")
    with pytest.raises(CaffeFormatError, match="ends where a label should be"):
        build("# 0\na.png\n3 13 17\n1\n")
    with pytest.raises(CaffeFormatError, match="expected an overlap, found 'x'"):
        build("# 0\na.png\n3 13 17\n1\n1 x 0 0 1 1\n")
    with pytest.raises(CaffeFormatError, match="1 foreground and 0 background windows"):
        build("# 0\na.png\n3 13 17\n1\n1 0.9 0 0 4 4\n")
    with pytest.raises(CaffeFormatError, match="foreground window of image 0 has label 0"):
        build("# 0\na.png\n3 13 17\n1\n0 0.9 0 0 4 4\n")
    with pytest.raises(CaffeFormatError, match="windows of image index 5"):
        build("# 5\na.png\n3 13 17\n2\n1 0.9 0 0 4 4\n1 0.1 0 0 4 4\n")
    with pytest.raises(CaffeFormatError, match="images that .* lists do not exist"):
        build("# 0\nno.png\n3 13 17\n2\n1 0.9 0 0 4 4\n1 0.1 0 0 4 4\n")


def test_window_padding_stays_zero_where_the_context_leaves_the_image(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    out = CaffeNet("nets/windowdata_square_pad.prototxt", data=True).forward()
    fg = out["data"][2]  # the foreground window (1, 0, 9, 7) of a.png touches the top edge
    assert out["label"].tolist() == [0, 0, 2]
    assert (fg[:, 0, :] == 0).all() and (fg[:, -1, :] != 0).any()


@pytest.mark.parametrize("name", ["data_lmdb_resized", "data_leveldb_encoded"])
def test_two_nets_read_one_database(name, tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)  # e.g. a solver's TRAIN and TEST nets
    expected = caffe_batches()
    first = CaffeNet(f"nets/{name}.prototxt", data=True)
    second = CaffeNet(f"nets/{name}.prototxt", data=True)
    for net in (first, second, first):
        net.forward()
    np.testing.assert_array_equal(second.forward()["data"], expected[f"{name}/1/data"])
    np.testing.assert_array_equal(first.forward()["data"], expected[f"{name}/2/data"])


def test_forks_data_layers_stay_inputs_when_the_net_reads():
    text = ('layer { name: "d" type: "DenseImageData" top: "data" top: "label" '
            'dense_image_data_param { source: "absent.txt" batch_size: 1 new_height: 8 '
            'new_width: 8 } }')
    net = CaffeNet(text, fork="segnet", data=True)
    assert net.inputs == ["data", "label"]


def test_shuffle_reshuffles_every_pass_and_rand_skip_starts_later(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    line = 'source: "images/list.txt" root_folder: "images/" new_height: 4 new_width: 4 '
    net = CaffeNet(net_text("ImageData", line + "batch_size: 6 shuffle: true"),
                   data=DataReading(seed=0))
    passes = []
    for _ in range(4):
        passes.append(net.forward()["label"].tolist())
    assert all(sorted(p) == [0, 0, 1, 1, 2, 2] for p in passes)
    assert len({tuple(p) for p in passes}) > 1
    plain = CaffeNet(net_text("ImageData", line + "batch_size: 6"), data=True).forward()
    for seed in range(5):
        skipped = CaffeNet(net_text("ImageData", line + "batch_size: 6 rand_skip: 5"),
                           data=DataReading(seed=seed))
        k = skipped.layer("src").pos
        assert 0 <= k < 5
        np.testing.assert_array_equal(skipped.forward()["data"],
                                      np.roll(plain["data"].numpy(), -k, axis=0))


def test_docs_data_md_example_runs(tmp_path, monkeypatch, capsys):
    data_fixture(tmp_path, monkeypatch)
    block = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "data.md").read_text(), re.S)[0]
    exec(compile(block, "docs/data.md", "exec"), {})
    assert "torch.Size([4, 3, 8, 8])" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["data_leveldb_encoded", "imagedata_color", "windowdata_warp"])
def test_pycaffes_net_reads_as_caffes_does(name, tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    expected = caffe_batches()
    net = caffe.Net(f"nets/{name}.prototxt", caffe.TEST)
    assert net.inputs == []
    for k in range(FORWARDS):
        net.forward()
        for top in net.outputs:
            np.testing.assert_array_equal(net.blobs[top].data, expected[f"{name}/{k}/{top}"])


def test_the_prefetch_thread_ends_with_its_net(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    net = CaffeNet("nets/data_lmdb_resized.prototxt", data=True)
    net.forward()
    thread = net.layer("d")._prefetcher._thread
    assert thread.is_alive()
    del net
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive() and thread not in threading.enumerate()


def test_data_param_rand_skip_is_ignored_as_caffes_data_layer_does(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    param = 'source: "caffe/lmdb_resized" backend: LMDB batch_size: 6'
    plain = CaffeNet(net_text("Data", param), data=True).forward()["data"]
    skip = CaffeNet(net_text("Data", param + " rand_skip: 5"), data=DataReading(seed=1))
    np.testing.assert_array_equal(skip.forward()["data"], plain)


def test_a_corrupt_database_is_an_error_at_build(tmp_path, monkeypatch):
    fix = data_fixture(tmp_path, monkeypatch)
    (fix / "caffe" / "lmdb_raw" / "data.mdb").write_bytes(b"\0garbage" * 512)
    with pytest.raises(CaffeFormatError, match="lmdb_raw, layer 'src': cannot open the LMDB"):
        CaffeNet(net_text("Data", 'source: "caffe/lmdb_raw" backend: LMDB batch_size: 1'),
                 data=True)
    (fix / "caffe" / "leveldb_gray" / "CURRENT").write_text("MANIFEST-999999\n")
    with pytest.raises(CaffeFormatError, match="leveldb_gray, layer 'src': cannot open the "
                                               "LevelDB"):
        CaffeNet(net_text("Data", 'source: "caffe/leveldb_gray" batch_size: 1'), data=True)
    write_db("notdatum", iter([(b"k", b"\xff\xff")]), "lmdb")
    with pytest.raises(CaffeFormatError, match="notdatum, layer .src.: record first is not a Datum"):
        CaffeNet(net_text("Data", 'source: "notdatum" backend: LMDB batch_size: 1'), data=True)


def test_float_datums_and_force_gray(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    datum = image_datum(np.zeros((2, 3, 1), np.uint8), 7)
    datum.data = b""
    datum.float_data.extend([0.5, 1.5, 2.5, 3.5, 4.5, 5.5])
    write_db("floats", iter([(b"0", datum.SerializeToString())]), "lmdb")
    out = CaffeNet(net_text("Data", 'source: "floats" backend: LMDB batch_size: 2',
                            "mean_value: 0.5 scale: 2"), data=True).forward()
    np.testing.assert_array_equal(out["data"][0, 0], [[0, 2, 4], [6, 8, 10]])
    assert out["label"].tolist() == [7, 7]
    grey = CaffeNet(net_text("Data", 'source: "caffe/lmdb_encoded" backend: LMDB batch_size: 1',
                             "force_gray: true"), data=True)
    assert grey.blob_shapes["data"] == (1, 1, 13, 17)
    np.testing.assert_array_equal(grey.forward()["data"][0, 0],
                                  cv2.imread("images/a.png", cv2.IMREAD_GRAYSCALE))
