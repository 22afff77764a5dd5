"""Bad files raise CaffeFormatError naming the file, the layer and the problem."""
from __future__ import annotations

import numpy as np
import pytest
from support import case_dir

from caffe_import import CaffeFormatError, read_mean, read_net, read_weights
from caffe_import.io import match_blob_shape, read_weights_net
from caffe_import.proto import wire
from caffe_import.proto import caffe_pb2

MODEL = case_dir("layers_conv") / "weights.caffemodel"


def model_with_blob(tmp_path, blob: caffe_pb2.BlobProto, name: str = "conv") -> str:
    net = caffe_pb2.NetParameter(name="n")
    net.layer.add(name=name, type="Convolution").blobs.add().CopyFrom(blob)
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(net.SerializeToString())
    return str(path)


def raw_layer_with_blob_bytes(tmp_path, blob_bytes: bytes, name: bytes = b"conv") -> str:
    layer = (wire.tag(1, wire.LENGTH) + wire.encode_varint(len(name)) + name
             + wire.tag(7, wire.LENGTH) + wire.encode_varint(len(blob_bytes)) + blob_bytes)
    data = wire.tag(100, wire.LENGTH) + wire.encode_varint(len(layer)) + layer
    path = tmp_path / "raw.caffemodel"
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("cut", [1, 10, 100, 1000, -1000, -5, -1])
def test_truncated_caffemodel(tmp_path, cut):
    data = MODEL.read_bytes()
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[:cut])
    with pytest.raises(CaffeFormatError) as info:
        read_weights(path)
    assert str(path) in str(info.value)


def test_truncation_names_the_layer(tmp_path):
    data = MODEL.read_bytes()
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[:-3])
    with pytest.raises(CaffeFormatError, match=r"truncated.*layer '|layer '.*"):
        read_weights(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.caffemodel"
    path.write_bytes(b"")
    with pytest.raises(CaffeFormatError, match="empty"):
        read_weights(path)


@pytest.mark.parametrize("content, kind", [
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a caffemodel|corrupt"),
    (b'name: "net"\nlayer { name: "a" type: "ReLU" }\n', "prototxt"),
])
def test_file_of_another_kind(tmp_path, content, kind):
    path = tmp_path / "weights.caffemodel"
    path.write_bytes(content)
    with pytest.raises(CaffeFormatError, match=kind):
        read_weights(path)


def test_mean_file_given_as_weights():
    with pytest.raises(CaffeFormatError, match="read_mean"):
        read_weights(case_dir("format_mean_binaryproto") / "mean.binaryproto")


def test_caffemodel_given_as_mean():
    with pytest.raises(CaffeFormatError, match="not a mean"):
        read_mean(MODEL)


def test_hdf5_that_is_not_weights():
    with pytest.raises(CaffeFormatError, match="/data"):
        read_weights(case_dir("layers_conv") / "reference.h5")


def test_shape_disagrees_with_data(tmp_path):
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([2, 3])
    blob.data.extend([1.0] * 5)
    with pytest.raises(CaffeFormatError, match=r"layer 'conv'.*\(2, 3\) holds 6 values.* 5"):
        read_weights(model_with_blob(tmp_path, blob))


def test_legacy_shape_disagrees_with_data(tmp_path):
    blob = caffe_pb2.BlobProto(num=1, channels=2, height=2, width=2)
    blob.data.extend([1.0] * 7)
    with pytest.raises(CaffeFormatError, match="legacy"):
        read_weights(model_with_blob(tmp_path, blob))


def test_overflowing_shape_allocates_nothing(tmp_path):
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([2 ** 62, 2 ** 62, 2 ** 62])
    blob.data.extend([1.0, 2.0])
    with pytest.raises(CaffeFormatError, match="holds"):
        read_weights(model_with_blob(tmp_path, blob))


def test_negative_dimension(tmp_path):
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([-1, 2])
    blob.data.extend([1.0, 2.0])
    with pytest.raises(CaffeFormatError, match="negative"):
        read_weights(model_with_blob(tmp_path, blob))


def test_length_beyond_the_file(tmp_path):
    # a packed data field claiming 1 TB inside a 20-byte file
    blob = wire.tag(5, wire.LENGTH) + wire.encode_varint(1 << 40) + b"\x00" * 8
    with pytest.raises(CaffeFormatError, match="layer 'conv'|more than"):
        read_weights(raw_layer_with_blob_bytes(tmp_path, blob))


def test_packed_floats_of_odd_length(tmp_path):
    blob = wire.tag(5, wire.LENGTH) + wire.encode_varint(6) + b"\x00" * 6
    with pytest.raises(CaffeFormatError, match="whole number"):
        read_weights(raw_layer_with_blob_bytes(tmp_path, blob))


def test_wrong_wire_type_for_blob_data(tmp_path):
    blob = wire.tag(5, wire.VARINT) + wire.encode_varint(3)
    with pytest.raises(CaffeFormatError, match="wire type"):
        read_weights(raw_layer_with_blob_bytes(tmp_path, blob))


def test_layer_name_not_utf8(tmp_path):
    blob = caffe_pb2.BlobProto(data=[1.0])
    blob.shape.dim.append(1)
    with pytest.raises(CaffeFormatError, match="UTF-8"):
        read_weights(raw_layer_with_blob_bytes(tmp_path, blob.SerializeToString(), b"\xff\xfe"))


def test_unpacked_and_double_data_are_read(tmp_path):
    # unpacked floats: tag 0x2d + 4 bytes per value, as an old writer may emit them
    values = np.array([1.5, -2.0, 3.25], dtype="<f4")
    unpacked = b"".join(b"\x2d" + v.tobytes() for v in values)
    shape = wire.tag(1, wire.LENGTH) + wire.encode_varint(1) + wire.encode_varint(3)
    blob = unpacked + wire.tag(7, wire.LENGTH) + wire.encode_varint(len(shape)) + shape
    assert read_weights(raw_layer_with_blob_bytes(tmp_path, blob))["conv"][0].tolist() == \
        [1.5, -2.0, 3.25]
    d = caffe_pb2.BlobProto(double_data=[0.1, 0.2])
    d.shape.dim.append(2)
    got = read_weights(model_with_blob(tmp_path, d))["conv"][0]
    assert got.dtype == np.float32 and np.array_equal(got, np.array([0.1, 0.2], np.float32))


def test_v0_caffemodel_reads_by_v0_names(tmp_path):
    net = caffe_pb2.NetParameter()
    entry = net.layers.add()
    entry.layer.name = "conv1"
    entry.layer.type = "conv"
    blob = entry.layer.blobs.add(num=1, channels=1, height=1, width=2)
    blob.data.extend([4.0, 5.0])
    path = tmp_path / "v0.caffemodel"
    path.write_bytes(net.SerializeToString())
    w = read_weights(path)
    assert list(w) == ["conv1"] and w["conv1"][0].tolist() == [[[[4.0, 5.0]]]]
    assert read_weights_net(path).layer[0].type == "Convolution"


def test_match_blob_shape_follows_caffes_legacy_rule():
    w = np.zeros((1, 1, 4, 3), np.float32)
    assert match_blob_shape(w, (4, 3)).shape == (4, 3)
    assert match_blob_shape(np.zeros((1, 1, 1, 4)), (4,)).shape == (4,)
    with pytest.raises(CaffeFormatError, match=r"layer 'fc'.*\(1, 1, 4, 3\).*\(3, 4\)"):
        match_blob_shape(w, (3, 4), layer="fc", path="m.caffemodel")
    with pytest.raises(CaffeFormatError):
        match_blob_shape(w, (4, 3), legacy=False)
    with pytest.raises(CaffeFormatError):  # a BlobShape must match exactly
        match_blob_shape(np.zeros((4, 3)), (1, 4, 3))


def test_hdf5_dataset_claiming_more_than_the_file(tmp_path):
    import h5py

    path = tmp_path / "w.caffemodel.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data/conv/0", shape=(10 ** 9,), dtype="f4")  # never written
    with pytest.raises(CaffeFormatError, match="layer 'conv'.*claims"):
        read_weights(path)


def test_hdf5_datasets_not_numbered(tmp_path):
    import h5py

    path = tmp_path / "w.caffemodel.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data/conv/weight", data=np.ones(2, "f4"))
    with pytest.raises(CaffeFormatError, match="named 0"):
        read_weights(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_weights(tmp_path / "nope.caffemodel")


def test_prototxt_that_is_not_utf8(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_bytes(b'name: "\xff\xfe"\n')
    with pytest.raises(CaffeFormatError, match="UTF-8"):
        read_net(path)
