"""Atomic output: write to a temp file in the target's folder, then ``os.replace``.

Every writer of the project (caffemodels, HDF5, artefacts, metrics, images, snapshots) goes
through here, so an interrupted write never leaves a broken file under the user's name and
the finished file gets the mode a plain ``open(path, "w")`` would give it.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from typing import Any, BinaryIO, Iterator, Mapping

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[str]:
    """Yield a temp path next to ``path``; on success it replaces ``path``, else it is removed.

    ``suffix`` is the temp file's ending, by default ``path``'s own (writers that judge the
    format by the file name, like the ONNX exporter, need the real one). The folder is created
    if missing. The temp file gets ``0o666 & ~umask`` before it takes ``path``'s place
    (``mkstemp`` makes it 0600).
    """
    path = os.fspath(path)
    if suffix is None:
        suffix = os.path.splitext(path)[1] or ".tmp"
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                               suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[BinaryIO]:
    """A file object (``mode`` "wb" or "w") whose content appears at ``path`` only once complete."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 with Unix line endings on every platform."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def json_ready(obj: Any) -> Any:
    """``obj`` with what JSON cannot hold made plain: NaN and infinities -> ``None`` (JSON has
    no such numbers; ``json.dumps`` would write the non-standard ``NaN``), numpy scalars and
    arrays -> Python numbers and lists, tuples -> lists, mapping keys -> strings."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as indented JSON (through :func:`json_ready`), written atomically."""
    atomic_write_text(path, json.dumps(json_ready(obj), indent=1) + "\n")
