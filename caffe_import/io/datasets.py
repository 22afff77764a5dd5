"""Caffe's image data on disk: Datums in LMDB / LevelDB, image list files, images.

What Caffe's ``io.cpp``, ``db_lmdb.cpp``/``db_leveldb.cpp`` and the tools ``convert_imageset``
and ``compute_image_mean`` do, with the same libraries' behaviour:

* Images are decoded and resized with OpenCV (``cv2``) as Caffe's ``ReadImageToCVMat`` does:
  ``cv2.imread`` with the colour (3 channels, BGR) or greyscale (1 channel) flag, then
  ``cv2.resize`` to ``(width, height)`` with bilinear interpolation when both are > 0.
  (Pillow decodes and resizes to other pixels.)
* A raw Datum holds ``channels, height, width`` and the pixels as bytes in C x H x W order
  (``CVMatToDatum``); an encoded one holds only the image file's bytes, its label and
  ``encoded: true`` and is decoded with ``cv2.imdecode`` (native channels, or forced colour /
  grey). The Datum bytes written here are those Caffe writes (same fields set, same order).
* Databases: LMDB (a folder with ``data.mdb``) or LevelDB (a folder with ``CURRENT``); Caffe
  iterates them in key order. A LevelDB as Caffe's writer leaves it may hold its records only
  in the write-ahead log: opening it (LevelDB's ``DB::Open``) replays the log, which needs write
  access to the folder, as in Caffe.
* Writing a database goes to a temporary folder beside the target that is renamed into place
  once complete: a failed conversion leaves nothing behind.
"""
from __future__ import annotations

import os
import random
import shutil
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import cv2
import lmdb
import numpy as np
import plyvel

from ..errors import CaffeFormatError, UsageError
from ..proto import caffe_pb2
from .atomic import atomic_write_bytes

LMDB, LEVELDB = "lmdb", "leveldb"
BACKENDS = (LMDB, LEVELDB)
#: LevelDB options of Caffe's db_leveldb.cpp
_LEVELDB_OPTIONS = dict(block_size=65536, write_buffer_size=268435456, max_open_files=100)


# ---------------------------------------------------------------------------- images
def read_image(path: str | os.PathLike, height: int = 0, width: int = 0,
               is_color: bool = True) -> np.ndarray:
    """An image as Caffe's ``ReadImageToCVMat`` reads it: H x W x C uint8 (BGR, or C = 1 for
    grey), resized bilinearly to ``height`` x ``width`` when both are > 0. An unreadable
    file is a ``CaffeFormatError`` naming it."""
    flag = cv2.IMREAD_COLOR if is_color else cv2.IMREAD_GRAYSCALE
    img = cv2.imread(os.fspath(path), flag) if os.path.isfile(path) else None
    if img is None:
        raise CaffeFormatError("could not open or decode this image (OpenCV's imread)",
                               path=os.fspath(path))
    if height > 0 and width > 0:
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    return img.reshape(img.shape[0], img.shape[1], -1)


def decode_image(data: bytes, color: bool | None = None, *, what: str = "") -> np.ndarray:
    """Encoded image bytes as H x W x C uint8: ``color=None`` keeps the file's channels
    (Caffe's ``DecodeDatumToCVMatNative``), True forces 3, False 1."""
    flag = cv2.IMREAD_ANYCOLOR if color is None else (
        cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag) if data else None
    if img is None:
        raise CaffeFormatError(f"could not decode the encoded image {what}".rstrip())
    return img.reshape(img.shape[0], img.shape[1], -1)


def image_datum(img: np.ndarray, label: int) -> "caffe_pb2.Datum":
    """A raw Datum of an H x W x C uint8 image (Caffe's ``CVMatToDatum``: C x H x W bytes)."""
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = img.shape[2], img.shape[0], img.shape[1]
    datum.data = np.ascontiguousarray(img.transpose(2, 0, 1)).tobytes()
    datum.encoded = False
    datum.label = int(label)
    return datum


def _ext(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower()


def file_datum(path: str, label: int, height: int = 0, width: int = 0, is_color: bool = True,
               encoding: str = "") -> "caffe_pb2.Datum":
    """The Datum Caffe's ``ReadImageToDatum`` makes of an image file: raw pixels, or with an
    ``encoding`` (``"png"``, ``"jpg"``...) the file's own bytes where decoding and
    re-encoding would change nothing (same extension, no resize, colour as asked), else the
    image re-encoded with ``cv2.imencode``."""
    img = read_image(path, height, width, is_color)
    if not encoding:
        return image_datum(img, label)
    datum = caffe_pb2.Datum()
    ext, enc = _ext(path), encoding.lower()
    same_ext = ext == enc or (enc == "jpg" and ext == "jpeg")
    if (img.shape[2] == 3) == bool(is_color) and not height and not width and same_ext:
        with open(path, "rb") as f:
            datum.data = f.read()
    else:
        ok, buf = cv2.imencode("." + encoding, img)
        if not ok:
            raise CaffeFormatError(f"OpenCV cannot encode images as '{encoding}'", path=path)
        datum.data = buf.tobytes()
    datum.label = int(label)
    datum.encoded = True
    return datum


def datum_image(datum: "caffe_pb2.Datum", color: bool | None = None, *,
                what: str = "") -> np.ndarray:
    """A Datum's pixels as C x H x W: uint8 (``data``) or float32 (``float_data``); an encoded
    Datum is decoded (``color`` as in :func:`decode_image`)."""
    if datum.encoded:
        return decode_image(datum.data, color, what=what).transpose(2, 0, 1)
    shape = (datum.channels, datum.height, datum.width)
    count = int(np.prod(shape))
    if datum.data:
        values = np.frombuffer(datum.data, np.uint8)
    else:
        values = np.asarray(datum.float_data, np.float32)
    if values.size != count or count == 0:
        raise CaffeFormatError(f"Datum {what} holds {values.size} values for its shape "
                               f"{shape}")
    return values.reshape(shape)


def parse_datum(value: bytes, *, what: str = "", path: str | None = None
                ) -> "caffe_pb2.Datum":
    """A Datum from a database value (a ``CaffeFormatError`` naming the record ``what`` of
    the database ``path`` when it is none)."""
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and kin
        raise CaffeFormatError(f"record {what} is not a Datum: {exc}", path=path) from None
    return datum


# ---------------------------------------------------------------------------- list files
def read_image_list(path: str | os.PathLike) -> list[tuple[str, int]]:
    """``(name, label)`` per line of an image list, as Caffe splits it: at the last space,
    the label read as C's ``atoi`` does (leading integer, else 0). Empty file or missing
    file: a ``CaffeFormatError`` naming it."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise CaffeFormatError(f"cannot read the image list: {exc.strerror}", path=path) \
            from None
    lines = raw.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    items = []
    for line in lines:
        pos = line.rfind(" ")
        items.append((line[:pos] if pos >= 0 else line, _atoi(line[pos + 1:])))
    if not items:
        raise CaffeFormatError("the image list is empty", path=path)
    return items


def _atoi(text: str) -> int:
    text = text.lstrip(" \t\n\r\v\f")
    end = 1 if text[:1] in ("+", "-") else 0
    while end < len(text) and text[end].isdigit() and text[end].isascii():
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0


# ---------------------------------------------------------------------------- databases
def detect_backend(path: str | os.PathLike) -> str | None:
    """``"lmdb"`` / ``"leveldb"`` by the files the folder holds, None when neither."""
    if os.path.isfile(os.path.join(path, "data.mdb")):
        return LMDB
    if os.path.isfile(os.path.join(path, "CURRENT")):
        return LEVELDB
    return None


def check_db(path: str | os.PathLike, backend: str, *, layer: str | None = None) -> None:
    """A ``CaffeFormatError`` naming ``path`` (and ``layer``) unless it is a database of the
    ``backend`` Caffe is told to open."""
    found = detect_backend(path)
    if found == backend:
        return
    if not os.path.isdir(path):
        why = "no such database folder" + (
            "" if os.path.isabs(path) else f" (relative to the working folder {os.getcwd()})")
    elif found is None:
        why = "not an LMDB (data.mdb) or LevelDB (CURRENT) folder"
    else:
        why = (f"this is a {found} database, but the backend is {backend} (set backend: "
               f"{found.upper()})")
    raise CaffeFormatError(why, path=os.fspath(path), layer=layer)


@dataclass(frozen=True)
class Database:
    """A database of Datums to read: ``path`` and ``backend`` (``lmdb``/``leveldb``)."""

    path: str
    backend: str

    def cycle(self) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` in key order, from the first again after the last (Caffe's
        cursor), without end; opened in the thread that first advances it."""
        while True:
            empty = True
            for item in self.items():
                empty = False
                yield item
            if empty:
                raise CaffeFormatError("the database holds no records", path=self.path)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` in key order, once."""
        if self.backend == LMDB:
            with _shared(self.path, _open_lmdb).begin(buffers=False) as txn:
                yield from txn.cursor()
        else:
            with _shared(self.path, _open_leveldb).iterator() as records:
                yield from records

    def first(self) -> bytes:
        """The first value (a ``CaffeFormatError`` when the database is empty)."""
        for _key, value in self.items():
            return value
        raise CaffeFormatError("the database holds no records", path=self.path)


def open_db(path: str | os.PathLike, backend: str | None = None, *,
            layer: str | None = None) -> Database:
    """The database at ``path``; ``backend`` None: told by the folder's files. Checked now
    (missing, other kind, unreadable: one ``CaffeFormatError`` naming the path and layer)."""
    path = os.fspath(path)
    if backend is None:
        backend = detect_backend(path) or LMDB
    check_db(path, backend, layer=layer)
    db = Database(path, backend)
    try:
        db.first()
    except CaffeFormatError as exc:
        raise with_layer(exc, layer) from None
    return db


def with_layer(exc: CaffeFormatError, layer: str | None) -> CaffeFormatError:
    """``exc`` (about a file) said again, naming the layer too."""
    message, where = str(exc), f"{exc.path}: " if exc.path is not None else ""
    if where and message.startswith(where):
        message = message[len(where):]
    return CaffeFormatError(message, path=exc.path, layer=layer)


#: databases open for reading, one handle per folder for the whole process: LMDB and
#: LevelDB refuse a second open of one database in a process (a TRAIN and a TEST net
#: reading one source share it; each reader iterates in its own transaction)
_OPEN: dict[str, Any] = {}
_OPEN_LOCK = threading.Lock()


def _shared(path: str, opener: Callable[[str], Any]) -> Any:
    key = os.path.realpath(path)
    with _OPEN_LOCK:
        if key not in _OPEN:
            _OPEN[key] = opener(key)  # LevelDB's in-process lock table goes by the name
        return _OPEN[key]


def _open_lmdb(path: str) -> "lmdb.Environment":
    try:
        return lmdb.open(path, readonly=True, lock=False, readahead=False, subdir=True)
    except lmdb.Error as exc:
        raise CaffeFormatError(f"cannot open the LMDB: {exc}", path=path) from None


def _open_leveldb(path: str) -> "plyvel.DB":
    try:
        return plyvel.DB(path, create_if_missing=False, **_LEVELDB_OPTIONS)
    except (plyvel.Error, OSError) as exc:
        raise CaffeFormatError(f"cannot open the LevelDB: {exc}", path=path) from None


def write_db(path: str | os.PathLike, records: Iterator[tuple[bytes, bytes]],
             backend: str = LMDB) -> int:
    """Write ``(key, value)`` records as Caffe's writers do (LMDB, or LevelDB with Caffe's
    options); into a temporary folder that replaces nothing and is renamed to ``path`` when
    every record is in (an error leaves no folder). Returns how many were written."""
    path = os.fspath(path).rstrip("/") or "/"
    if backend not in BACKENDS:
        raise UsageError(f"unknown database backend '{backend}' (lmdb or leveldb)")
    if os.path.exists(path):
        raise UsageError(f"{path} exists already (Caffe creates a new database)")
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)),
                       f".{os.path.basename(path)}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        count = (_write_lmdb if backend == LMDB else _write_leveldb)(tmp, records)
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return count


def _write_lmdb(path: str, records: Iterator[tuple[bytes, bytes]]) -> int:
    env = lmdb.open(path, map_size=1 << 40, subdir=True)
    count = 0
    try:
        txn = env.begin(write=True)
        for key, value in records:
            txn.put(key, value)
            count += 1
            if count % 1000 == 0:  # Caffe commits every 1000 records
                txn.commit()
                txn = env.begin(write=True)
        txn.commit()
    finally:
        env.close()
    return count


def _write_leveldb(path: str, records: Iterator[tuple[bytes, bytes]]) -> int:
    db = plyvel.DB(path, create_if_missing=True, error_if_exists=True, **_LEVELDB_OPTIONS)
    count = 0
    try:
        batch = db.write_batch()
        for key, value in records:
            batch.put(key, value)
            count += 1
            if count % 1000 == 0:
                batch.write()
                batch = db.write_batch()
        batch.write()
    finally:
        db.close()
    return count


# ---------------------------------------------------------------------------- the tools
@dataclass(frozen=True)
class ImagesetOptions:
    """``convert_imageset``'s flags: ``gray``, ``shuffle`` (with ``seed``; Caffe's own shuffle
    order is not reproduced), ``backend``, ``resize_height``/``resize_width``, ``check_size``,
    ``encoded``, ``encode_type`` (implies ``encoded``; empty: the file's extension)."""

    gray: bool = False
    shuffle: bool = False
    seed: int | None = None
    backend: str = LMDB
    resize_height: int = 0
    resize_width: int = 0
    check_size: bool = False
    encoded: bool = False
    encode_type: str = ""


def convert_imageset(root: str, list_path: str | os.PathLike, db_path: str | os.PathLike,
                     options: ImagesetOptions = ImagesetOptions(),
                     say: Callable[[str], None] = lambda _m: None) -> int:
    """Caffe's ``convert_imageset ROOT/ LIST DB``: each listed image (``root`` + name, a
    plain string prefix) as a Datum under the key ``%08d_<name>`` (its line number after the
    shuffle), converted one at a time into the temporary database. Unlike Caffe, which logs
    an unreadable image and goes on, every unreadable image (and with ``check_size`` every
    size mismatch) is listed in one error at the end, and no database is left. Returns how
    many images were written."""
    lines = read_image_list(list_path)
    if options.shuffle:
        random.Random(options.seed).shuffle(lines)
    count = write_db(db_path, _imageset_records(root, lines, options), options.backend)
    say(f"Processed {count} files.")
    return count


def _imageset_records(root: str, lines: Sequence[tuple[str, int]],
                      options: ImagesetOptions) -> Iterator[tuple[bytes, bytes]]:
    """The records of the converted images; raises, after the last, the one error listing
    every image that could not be converted."""
    bad: list[str] = []
    size = None
    encoded = options.encoded or bool(options.encode_type)
    for i, (name, label) in enumerate(lines):
        enc = options.encode_type
        if encoded and not enc:
            enc = _ext(name) if "." in name else ""
            if not enc:
                bad.append(f"{name}: cannot guess the encoding (no extension)")
                continue
        try:
            datum = file_datum(root + name, label, options.resize_height,
                               options.resize_width, not options.gray, enc)
        except CaffeFormatError as exc:
            bad.append(f"{name}: {str(exc).split(': ', 1)[-1]}")
            continue
        if options.check_size and not datum.encoded:
            this = len(datum.data)
            size = this if size is None else size
            if this != size:
                bad.append(f"{name}: {this} bytes of pixels, the first image has {size}")
        if not bad:  # after a failure only the checks go on: nothing will be kept
            yield f"{i:08d}_{name}".encode("utf-8", "surrogateescape"), \
                datum.SerializeToString()
    if bad:
        raise CaffeFormatError(f"{len(bad)} of {len(lines)} images cannot be converted (root "
                               f"'{root}'): " + "; ".join(bad[:5])
                               + (" ..." if len(bad) > 5 else ""))


def image_mean(db: Database) -> np.ndarray:
    """``compute_image_mean``'s mean of every Datum: summed in float32, divided by the count
    in float32; shape ``(1, C, H, W)``. Encoded Datums are decoded with their own channels."""
    total, count, shape = None, 0, None
    for key, value in db.items():
        what = key.decode("utf-8", "replace")
        pixels = datum_image(parse_datum(value, what=what), what=what)
        if total is None:
            shape, total = pixels.shape, np.zeros(pixels.size, np.float32)
        if pixels.shape != shape:
            raise CaffeFormatError(f"record {what} has shape {pixels.shape}, the first "
                                   f"{shape}: a mean needs images of one size", path=db.path)
        total += pixels.reshape(-1).astype(np.float32)
        count += 1
    if total is None:
        raise CaffeFormatError("the database holds no records", path=db.path)
    return (total / np.float32(count)).reshape(1, *shape)


def write_mean(path: str | os.PathLike, mean: np.ndarray) -> None:
    """A mean as the ``BlobProto`` ``compute_image_mean`` writes (legacy ``num, channels,
    height, width``); atomically."""
    mean = np.asarray(mean, np.float32)
    shape = (1,) * (4 - mean.ndim) + mean.shape
    blob = caffe_pb2.BlobProto()
    blob.num, blob.channels, blob.height, blob.width = (int(d) for d in shape)
    blob.data.extend(mean.reshape(-1).tolist())
    atomic_write_bytes(path, blob.SerializeToString())


def channel_means(mean: np.ndarray) -> list[float]:
    """Per channel the mean of a ``(1, C, H, W)`` mean, as the tool prints it (float32
    sums)."""
    flat = np.asarray(mean, np.float32).reshape(mean.shape[-3], -1)
    out = []
    for row in flat:
        acc = np.float32(0)
        for v in row:
            acc = np.float32(acc + v)
        out.append(float(acc / np.float32(row.size)))
    return out
