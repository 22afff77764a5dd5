"""Caffe's data layers that read their data: ``Data`` (LMDB / LevelDB of Datums),
``ImageData`` (an image list) and ``WindowData`` (a window file), built in place of the
net inputs of ``caffe_import.layers.data`` (its ``READERS``) when a net is built to read
(``CaffeNet(..., data=True)`` or ``data=DataReading(seed=...)``).

Each forward serves the next batch, as Caffe's prefetching data layers do: batches are made in
a worker thread into a queue ``prefetch`` deep (``data_param.prefetch``, Caffe's default 4), in
the order Caffe makes them; the layer's tops are the data (float32, N x C x H x W, after
``transform_param``: ``caffe_import.layers.data_transform``) and the labels (float32, ``(N,)``).

* ``Data``: the records in key order, from the first again after the last. The first record
  of each batch fixes the batch's item shape (as Caffe's ``load_batch`` does); another size in
  the batch is an error. ``backend`` is the layer's (Caffe's default: LEVELDB);
  ``data_param.rand_skip`` is ignored, as Caffe's (9b89154) ``Data`` layer ignores it. In a
  multi-GPU run (``solver_rank``, ``solver_count``) each solver keeps every n-th record in
  TRAIN, as Caffe's ``Skip`` does.
* ``ImageData``: the list file's lines (split at the last space), the images read from
  ``root_folder`` + name (a plain prefix) with ``new_height``/``new_width``/``is_color``;
  ``shuffle`` shuffles at setup and at each wrap, ``rand_skip`` skips a random number of lines
  at setup (both with the net's data seed, not Caffe's random stream).
* Paths (``source``, ``mean_file``) are relative to the working folder, as in Caffe. A source
  that is missing or unreadable (and every image a list names that does not exist) is one
  ``CaffeFormatError`` naming the layer and the file, raised while the net is built; an image
  that does not decode is raised by the forward that reads it.
"""
from __future__ import annotations

import os
import queue
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from ..errors import CaffeFormatError
from ..io.datasets import (LEVELDB, LMDB, Database, open_db, parse_datum, read_image,
                           read_image_list, with_layer)
from .base import CaffeLayer, Shape
from .data_transform import DataTransformer, stack

Batch = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class DataReading:
    """How a net's data layers read: ``seed`` for their random choices (TRAIN crops and
    mirrors, shuffles, ``rand_skip``; None: fresh randomness per build; a solver passes its
    ``random_seed``), ``prefetch``: batches made ahead (None: the layer's
    ``data_param.prefetch``)."""

    seed: int | None = None
    prefetch: int | None = None


class _Prefetcher:
    """Batches of ``make()`` made in a daemon thread into a queue ``depth`` deep; an error in
    the thread is raised by the ``next()`` that would have received its batch. The thread
    holds the layer only weakly (``make`` is a bound method): it ends once the layer is
    gone, or at ``close()``."""

    def __init__(self, make: Callable[[], Batch], depth: int, name: str) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(weakref.WeakMethod(make),),
                                        daemon=True, name=f"caffe-data-{name}")
        self._thread.start()

    def _loop(self, make: "weakref.WeakMethod") -> None:
        while not self._stop.is_set():
            method = make()
            if method is None:
                return
            try:
                item: Any = method()
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                item = exc
            del method
            while not self._stop.is_set() and make() is not None:
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def next(self) -> Batch:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self, wait: bool = True) -> None:
        """Stop the thread (``wait``: until the batch it is making is done)."""
        self._stop.set()
        if wait and self._thread is not threading.current_thread():
            self._thread.join()


class ReadingDataLayer(CaffeLayer):
    """A data layer that reads: subclasses set ``self.item_shape`` (C, H, W after the
    transformation) in ``__init__`` and implement ``make_batch() -> (data, labels)``."""

    param_field = ""

    def __init__(self, param: Any, bottom_shapes: Sequence[Shape], phase: str = "test", *,
                 reading: DataReading = DataReading()) -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(param.bottom) or len(param.top) not in (1, 2):
            raise CaffeFormatError(f"{param.type} takes no bottoms and has 1 or 2 tops "
                                   f"(data, label)", layer=param.name)
        self.p = getattr(param, self.param_field)
        self.batch_size = int(self.p.batch_size)
        if self.batch_size <= 0:
            raise CaffeFormatError(f"{self.param_field}.batch_size must be > 0",
                                   layer=param.name)
        self.rng = np.random.default_rng(reading.seed)
        self.transformer = DataTransformer(param.transform_param, phase, self.rng,
                                           layer=param.name)
        self.depth = reading.prefetch if reading.prefetch is not None else \
            int(param.data_param.prefetch)
        self.item_shape: tuple[int, int, int] = (0, 0, 0)
        self._prefetcher: _Prefetcher | None = None
        self.register_buffer("_probe", torch.empty(0), persistent=False)  # follows .to()

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [(self.batch_size, *self.item_shape), (self.batch_size,)][:len(self.param.top)]

    def make_batch(self) -> Batch:
        raise NotImplementedError

    @torch.compiler.disable  # a queue and numpy: nothing for a compiler to trace
    def next_batch(self) -> Batch:
        """The next batch as arrays (from the prefetch thread, started on first use)."""
        if self._prefetcher is None:
            self._prefetcher = _Prefetcher(self.make_batch, self.depth, self.name)
        return self._prefetcher.next()

    def forward(self) -> tuple[torch.Tensor, ...]:
        data, labels = self.next_batch()
        device = self._probe.device
        tops = (torch.from_numpy(data).to(device), torch.from_numpy(labels).to(device))
        return tops[:len(self.param.top)]

    def close(self) -> None:
        """Stop the prefetch thread; the batches it made ahead are dropped (a later forward
        starts a new thread, going on after them)."""
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher = None

    def __del__(self) -> None:
        prefetcher = self.__dict__.get("_prefetcher")
        if prefetcher is not None:
            prefetcher.close(wait=False)


def _source(p: Any, layer: str) -> str:
    if not p.source:
        raise CaffeFormatError("no source given", layer=layer)
    return p.source


class DataLayer(ReadingDataLayer):
    """Caffe's ``Data`` layer reading an LMDB or LevelDB (see the module docstring)."""

    param_field = "data_param"

    def __init__(self, param: Any, bottom_shapes: Sequence[Shape], phase: str = "test", *,
                 reading: DataReading = DataReading()) -> None:
        super().__init__(param, bottom_shapes, phase, reading=reading)
        backend = LMDB if self.p.backend == type(self.p).LMDB else LEVELDB
        self.db: Database = open_db(_source(self.p, self.name), backend, layer=self.name)
        _, first = self._pixels(self.db.first(), "first")
        self.transformer.check(*first.shape, what="the first record")
        self.item_shape = self.transformer.shape(*first.shape)
        self._records: Iterator[tuple[bytes, bytes]] | None = None
        #: Caffe's multi-GPU ``Skip``: of ``solver_count`` solvers, this one (``solver_rank``)
        #: keeps in TRAIN the records whose offset is its rank modulo the count
        self.solver_rank, self.solver_count, self._offset = 0, 1, 0

    def _next_record(self) -> tuple[bytes, bytes]:
        """The next record this solver reads (Caffe's ``Skip`` / ``Next`` on the cursor)."""
        if self._records is None:
            self._records = self.db.cycle()
        while True:
            key, value = next(self._records)
            keep = self.phase != "train" or self._offset % self.solver_count == self.solver_rank
            self._offset += 1
            if keep:
                return key, value

    def _pixels(self, value: bytes, name: str) -> tuple[Any, np.ndarray]:
        """A record's Datum and its C x H x W pixels (errors name the layer and database)."""
        try:
            datum = parse_datum(value, what=name, path=self.db.path)
        except CaffeFormatError as exc:
            raise with_layer(exc, self.name) from None
        return datum, self.transformer.datum_pixels(datum, what=name)

    def make_batch(self) -> Batch:
        items, labels, names = [], [], []
        for _ in range(self.batch_size):
            key, value = self._next_record()
            name = f"record {key.decode('utf-8', 'replace')!r} of {self.db.path}"
            datum, pixels = self._pixels(value, name)
            items.append(self.transformer(pixels, what=name))
            labels.append(datum.label)
            names.append(name)
        return stack(items, layer=self.name, names=names), np.asarray(labels, np.float32)


class ImageDataLayer(ReadingDataLayer):
    """Caffe's ``ImageData`` layer reading an image list (see the module docstring)."""

    param_field = "image_data_param"

    def __init__(self, param: Any, bottom_shapes: Sequence[Shape], phase: str = "test", *,
                 reading: DataReading = DataReading()) -> None:
        super().__init__(param, bottom_shapes, phase, reading=reading)
        p = self.p
        self.size = (int(p.new_height), int(p.new_width))
        if (self.size[0] > 0) != (self.size[1] > 0):
            raise CaffeFormatError("new_height and new_width must be set together",
                                   layer=self.name)
        source = _source(p, self.name)
        try:
            self.lines = read_image_list(source)
        except CaffeFormatError as exc:
            raise with_layer(exc, self.name) from None
        self._check_images(source)
        if p.shuffle:
            self.rng.shuffle(self.lines)
        self.pos = int(self.rng.integers(p.rand_skip)) if p.rand_skip else 0
        if self.pos >= len(self.lines):
            raise CaffeFormatError(f"rand_skip skipped {self.pos} of {len(self.lines)} "
                                   f"lines", layer=self.name)
        first = self._read(self.lines[self.pos][0])
        self.transformer.check(*first.shape, what=self.lines[self.pos][0])
        self.item_shape = self.transformer.shape(*first.shape)

    def _check_images(self, source: str) -> None:
        root = self.p.root_folder
        missing = [name for name, _ in self.lines if not os.path.isfile(root + name)]
        if missing:
            raise CaffeFormatError(f"{len(missing)} of the {len(self.lines)} images that "
                                   f"{source} lists do not exist (root_folder '{root}'), "
                                   f"e.g. '{root + missing[0]}'", layer=self.name)

    def _read(self, name: str) -> np.ndarray:
        path = self.p.root_folder + name
        try:
            img = read_image(path, *self.size, bool(self.p.is_color))
        except CaffeFormatError as exc:
            raise with_layer(exc, self.name) from None
        return img.transpose(2, 0, 1)

    def make_batch(self) -> Batch:
        items, labels, names = [], [], []
        for _ in range(self.batch_size):
            name, label = self.lines[self.pos]
            items.append(self.transformer(self._read(name), what=name))
            labels.append(label)
            names.append(name)
            self.pos += 1
            if self.pos >= len(self.lines):
                self.pos = 0
                if self.p.shuffle:
                    self.rng.shuffle(self.lines)
        return stack(items, layer=self.name, names=names), np.asarray(labels, np.float32)

