"""caffe_import.io.datasets against what real Caffe's convert_imageset and compute_image_mean
wrote (tests/fixtures/datalayers)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from caffe_import.errors import CaffeFormatError, UsageError
from caffe_import.io import read_mean
from caffe_import.io import datasets as ds
from caffe_import.io.datasets import ImagesetOptions
from support.datalayers import data_fixture

#: Caffe's databases -> the options that made them (fixture README)
RESIZED = dict(resize_height=10, resize_width=12)
CASES = {
    "lmdb_raw": ImagesetOptions(),
    "lmdb_resized": ImagesetOptions(**RESIZED),
    "lmdb_encoded": ImagesetOptions(encoded=True),
    "lmdb_png_resized": ImagesetOptions(encode_type="png", **RESIZED),
    "leveldb_gray": ImagesetOptions(gray=True, backend="leveldb", **RESIZED),
    "leveldb_encoded": ImagesetOptions(encoded=True, backend="leveldb"),
    "leveldb_resized": ImagesetOptions(backend="leveldb", **RESIZED),
}


def records(path, backend=None) -> list[tuple[bytes, bytes]]:
    return list(ds.open_db(path, backend).items())


@pytest.mark.parametrize("name", sorted(CASES))
def test_convert_imageset_writes_what_caffe_writes(name, tmp_path, monkeypatch):
    fix = data_fixture(tmp_path, monkeypatch)
    options = CASES[name]
    n = ds.convert_imageset("images/", "images/list.txt", "ours", options)
    assert n == 6
    assert ds.detect_backend("ours") == options.backend
    ours, caffe = records("ours"), records(fix / "caffe" / name, options.backend)
    assert [k for k, _ in ours] == [k for k, _ in caffe]
    assert ours[3][0] == b"00000003_sub/d.jpeg" and ours[4][0] == b"00000004_e grey.png"
    for (key, a), (_, b) in zip(ours, caffe):
        da, db = ds.parse_datum(a), ds.parse_datum(b)
        assert da.label == db.label and da.encoded == db.encoded, key
        np.testing.assert_array_equal(ds.datum_image(da), ds.datum_image(db))
        if name != "lmdb_png_resized":  # re-encoded PNG bytes depend on libpng/zlib
            assert a == b, key  # the Datum bytes exactly as Caffe serialises them


def test_encoded_keeps_the_file_bytes_where_nothing_changes(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    ds.convert_imageset("images/", "images/list.txt", "ours", ImagesetOptions(encoded=True))
    values = dict(records("ours"))
    with open("images/b.jpg", "rb") as f:
        assert ds.parse_datum(values[b"00000001_b.jpg"]).data == f.read()
    grey = ds.parse_datum(values[b"00000004_e grey.png"])
    assert ds.datum_image(grey).shape == (1, 14, 16)  # native channels: the file's
    assert ds.datum_image(grey, color=True).shape == (3, 14, 16)


@pytest.mark.parametrize("db, backend, mean", [
    ("lmdb_resized", "lmdb", "mean_resized"), ("leveldb_gray", "leveldb", "mean_gray"),
    ("leveldb_resized", "leveldb", "mean_leveldb_resized")])
def test_image_mean_is_caffes(db, backend, mean, tmp_path):
    fix = data_fixture(tmp_path)
    ours = ds.image_mean(ds.open_db(fix / "caffe" / db, backend))
    caffe = read_mean(fix / "caffe" / f"{mean}.binaryproto")
    assert ours.dtype == np.float32 and ours.shape == caffe.shape
    np.testing.assert_array_equal(ours, caffe)
    ds.write_mean(tmp_path / "m.binaryproto", ours)
    assert (tmp_path / "m.binaryproto").read_bytes() == \
        (fix / "caffe" / f"{mean}.binaryproto").read_bytes()


def test_mean_of_an_encoded_database_decodes_natively(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    ds.convert_imageset("images/", "images/list.txt", "enc",
                        ImagesetOptions(encode_type="png", **RESIZED))
    np.testing.assert_array_equal(ds.image_mean(ds.open_db("enc")),
                                  read_mean("caffe/mean_resized.binaryproto"))


def test_caffes_leveldb_with_records_only_in_its_log_is_read(tmp_path):
    fix = data_fixture(tmp_path)
    db = fix / "caffe" / "leveldb_resized"
    assert not list(db.glob("*.ldb")) and (db / "000003.log").stat().st_size > 0
    assert len(records(db, "leveldb")) == 6


def test_image_list_splits_at_the_last_space_and_reads_labels_as_atoi(tmp_path):
    p = tmp_path / "list.txt"
    p.write_bytes(b"a b.png 3\nc.png -2\nd.png x7\nnolabel\ne.png 12abc\r\n")
    assert ds.read_image_list(p) == [("a b.png", 3), ("c.png", -2), ("d.png", 0),
                                     ("nolabel", 0), ("e.png", 12)]


def test_image_list_errors_name_the_file(tmp_path):
    with pytest.raises(CaffeFormatError, match="missing.txt.*cannot read"):
        ds.read_image_list(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CaffeFormatError, match="empty.txt.*empty"):
        ds.read_image_list(tmp_path / "empty.txt")


def test_read_image_is_opencvs_with_caffes_flags(tmp_path):
    fix = data_fixture(tmp_path)
    grey = ds.read_image(fix / "images" / "e grey.png", is_color=False)
    assert grey.shape == (14, 16, 1)
    colour = ds.read_image(fix / "images" / "e grey.png")
    assert colour.shape == (14, 16, 3)
    assert ds.read_image(fix / "images" / "a.png", 10, 12).shape == (10, 12, 3)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(CaffeFormatError, match="bad.png.*could not open or decode"):
        ds.read_image(tmp_path / "bad.png")


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_unreadable_images_are_one_error_and_leave_no_database(backend, tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    with open("images/list.txt", "a") as f:
        f.write("missing.png 1\nimages/list.txt 2\n")
    with pytest.raises(CaffeFormatError, match=r"2 of 8 images cannot be converted.*"
                                               r"missing.png.*list.txt"):
        ds.convert_imageset("images/", "images/list.txt", "out",
                            ImagesetOptions(backend=backend))
    assert not [p for p in os.listdir(".") if "out" in p]


def test_check_size_refuses_images_of_other_sizes(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    with pytest.raises(CaffeFormatError, match="b.jpg: 495 bytes of pixels, the first image "
                                               "has 663"):
        ds.convert_imageset("images/", "images/list.txt", "out",
                            ImagesetOptions(check_size=True))
    assert not os.path.exists("out")
    ds.convert_imageset("images/", "images/list.txt", "out",
                        ImagesetOptions(check_size=True, **RESIZED))


def test_an_existing_database_is_not_overwritten(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    with pytest.raises(UsageError, match="exists already"):
        ds.convert_imageset("images/", "images/list.txt", "caffe/lmdb_raw")
    with pytest.raises(UsageError, match="unknown database backend 'rocks'"):
        ds.write_db("new", iter(()), "rocks")


def test_shuffle_is_reproducible_with_a_seed(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    keys = []
    for out in ("s1", "s2", "s3"):
        ds.convert_imageset("images/", "images/list.txt", out,
                            ImagesetOptions(shuffle=True, seed=3 if out != "s3" else 4))
        keys.append([k for k, _ in records(out)])
    assert keys[0] == keys[1] != keys[2]
    assert sorted(k[9:] for k in keys[0]) == sorted(k[9:] for k in records_keys())
    assert [k[:9] for k in keys[0]] == [f"{i:08d}_".encode() for i in range(6)]


def records_keys() -> list[bytes]:
    return [k for k, _ in records(os.path.join("caffe", "lmdb_raw"))]


def test_database_errors_name_the_folder(tmp_path, monkeypatch):
    fix = data_fixture(tmp_path, monkeypatch)
    with pytest.raises(CaffeFormatError, match="nowhere: no such database folder"):
        ds.open_db("nowhere", "lmdb")
    with pytest.raises(CaffeFormatError, match="images: not an LMDB"):
        ds.open_db("images", "lmdb")
    with pytest.raises(CaffeFormatError, match="lmdb_raw, layer 'd': this is a lmdb "
                                               "database, but the backend is leveldb"):
        ds.open_db(fix / "caffe" / "lmdb_raw", "leveldb", layer="d")
    ds.write_db("empty", iter(()), "lmdb")
    with pytest.raises(CaffeFormatError, match="empty: the database holds no records"):
        ds.open_db("empty")


def test_a_record_that_is_no_datum_is_an_error(tmp_path):
    ds.write_db(tmp_path / "db", iter([(b"k", b"\xff\xff\xff")]), "lmdb")
    (_, value), = records(tmp_path / "db")
    with pytest.raises(CaffeFormatError, match="record k is not a Datum"):
        ds.parse_datum(value, what="k")
    datum = ds.parse_datum(b"")
    datum.channels, datum.height, datum.width, datum.data = 1, 2, 2, b"abc"
    with pytest.raises(CaffeFormatError, match="holds 3 values for its shape"):
        ds.datum_image(datum)
    with pytest.raises(CaffeFormatError, match="could not decode the encoded image"):
        ds.decode_image(b"garbage")


def test_channel_means_are_what_the_tool_prints():
    mean = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4)
    assert ds.channel_means(mean) == [5.5, 17.5]
