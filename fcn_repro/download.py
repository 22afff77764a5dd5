"""Fetch the release's published weights: resumable, size-checked, atomically placed.

``download_model("voc-fcn8s")`` fetches ``fcn8s-heavy-pascal.caffemodel`` from the release's
host (``http://dl.caffe.berkeleyvision.org/``; override with ``base_url=`` or the
``FCN_REPRO_BASE_URL`` environment variable, e.g. for a mirror) into the cache folder
(``cache_dir=``, ``FCN_REPRO_CACHE``, default ``~/.cache/fcn_repro``).

The bytes go to ``<file>.part`` next to the target. An interrupted transfer leaves the
``.part`` behind and the next call resumes it with an HTTP ``Range`` request (a server that
answers 200 instead of 206 restarts it from zero). Only when the ``.part`` holds exactly the
size the server announced (``Content-Length`` / ``Content-Range``) is it renamed onto the
target with ``os.replace``, so a file under the model's name is always complete.
:func:`download_model` also checks, before that rename, that the ``.part`` is a caffemodel
of the model's net (:func:`check_model_weights`: it parses, and every layer with params of
the zoo's deploy net finds its weights there with the shapes it needs); a file that is not
(an error page, another model's weights, random bytes) is deleted and never lands.
Nothing downloaded is executed or unpickled: caffemodels are read as protobuf data.

Offline, or when the host cannot be reached, the error says what to do instead: a mirror
(``base_url=`` / ``--base-url``), or the path to put a file fetched by hand
(:func:`weights_path`).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

import torch

from caffe_import.errors import CaffeFormatError, UsageError
from caffe_import.net import CaffeNet
from fcn_repro import zoo

__all__ = ["DEFAULT_BASE_URL", "ENV_BASE_URL", "ENV_CACHE", "DownloadError", "default_cache_dir",
           "model_url", "download_url", "download_model", "weights_path", "check_model_weights"]

DEFAULT_BASE_URL = "http://dl.caffe.berkeleyvision.org/"
ENV_BASE_URL = "FCN_REPRO_BASE_URL"
ENV_CACHE = "FCN_REPRO_CACHE"
_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


class DownloadError(OSError):
    """The transfer failed or delivered the wrong number of bytes (the ``.part`` is kept)."""


def default_cache_dir() -> Path:
    """``$FCN_REPRO_CACHE`` or ``~/.cache/fcn_repro``."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fcn_repro"


def model_url(name: str, base_url: str | None = None) -> tuple[str, str]:
    """``(url, file name)`` of a zoo model's weights.

    ``base_url`` (or ``$FCN_REPRO_BASE_URL``) replaces the host for every model; without
    either, a model's own published address is used (the release's host, or the VGG group's
    for VGG16).
    """
    spec = zoo.get(name)
    if not spec.weights_file:
        raise UsageError(f"model {spec.name!r}: the release published no weights for it")
    base = base_url or os.environ.get(ENV_BASE_URL)
    if base:
        return urllib.parse.urljoin(base.rstrip("/") + "/", spec.weights_file), spec.weights_file
    return spec.url or DEFAULT_BASE_URL + spec.weights_file, spec.weights_file


def _check_scheme(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise UsageError(f"{url}: only http:// and https:// URLs are fetched, not {scheme or 'a bare path'}")


def _total_from(resp, start: int) -> int | None:
    """The full size of the file as the response announces it."""
    cr = resp.headers.get("Content-Range")
    if cr:
        m = _CONTENT_RANGE.match(cr.strip())
        if m and m.group(3) != "*":
            return int(m.group(3))
    length = resp.headers.get("Content-Length")
    if length is not None and length.isdigit():
        return start + int(length)
    return None


def _unreachable(url: str, dest: Path, exc: BaseException) -> str:
    """The host could not be reached (offline, no DNS, refused, timed out): what happened,
    and the two ways on without it."""
    reason = getattr(exc, "reason", exc)
    host = urllib.parse.urlsplit(url).netloc
    what = (f"{reason.strerror}" if isinstance(reason, OSError) and reason.strerror
            else str(reason) or type(reason).__name__)
    return (f"{url}: cannot reach {host} ({what}). Are you offline? Fetch it from a mirror with "
            f"--base-url URL (or ${ENV_BASE_URL}), or download {url} by hand and put it at {dest}")


def _open(url: str, start: int, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": "fcn-repro-download"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (scheme checked)


def _append_body(resp: Any, part: Path, start: int, bar: Any, url: str) -> int:
    """Write the response body to ``part`` (appended after ``start`` bytes, else from zero);
    returns the size ``part`` then has."""
    got = start
    with open(part, "ab" if start else "wb") as f:
        while True:
            try:
                chunk = resp.read(_CHUNK)
            except (OSError, ValueError, http.client.HTTPException) as exc:  # reset, IncompleteRead, timeout
                raise DownloadError(f"{url}: transfer broke after {got} bytes ({exc}); "
                                    "run again to resume") from None
            if not chunk:
                break
            f.write(chunk)
            got += len(chunk)
            bar.update(len(chunk))
        f.flush()
        os.fsync(f.fileno())
    return got


def download_url(url: str, dest: str | os.PathLike, *, progress: bool = True,
                 timeout: float = 60.0, force: bool = False,
                 progress_factory: Callable | None = None,
                 check: Callable[[Path], None] | None = None) -> Path:
    """Fetch ``url`` to ``dest`` through ``dest.part`` (resumed if present); returns ``dest``.

    An existing ``dest`` is kept unless ``force``. Raises :class:`DownloadError` when the
    server fails or the byte count differs from what it announced. ``check(part)``, when
    given, judges the complete ``.part`` before it is renamed onto ``dest``: an exception
    from it deletes the ``.part`` (a whole file that is wrong is not resumed) and is
    raised as a :class:`DownloadError`.
    """
    _check_scheme(url)
    dest = Path(dest)
    if dest.is_file() and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if force and part.exists():
        part.unlink()
    start = part.stat().st_size if part.is_file() else 0
    try:
        resp = _open(url, start, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:
            # the .part may already be whole: the server says what the size is
            total = _total_from(exc, 0) if exc.headers.get("Content-Range") else None
            if total == start:
                return _place(part, dest, url, check)
            part.unlink()
            return download_url(url, dest, progress=progress, timeout=timeout, force=False,
                                progress_factory=progress_factory, check=check)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(_unreachable(url, dest, exc)) from None

    with resp:
        status = getattr(resp, "status", 200)
        if start and status != 206:
            start = 0  # the server ignored Range: start over
        elif status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "").strip())
            if not m or m.group(1) is None or int(m.group(1)) != start:
                raise DownloadError(f"{url}: asked for bytes from {start}, server answered "
                                    f"{resp.headers.get('Content-Range')!r}")
        total = _total_from(resp, start)
        if progress_factory is None:
            from tqdm.auto import tqdm as progress_factory  # noqa: N813
        bar = progress_factory(total=total, initial=start, unit="B", unit_scale=True,
                               unit_divisor=1024, desc=dest.name, disable=not progress)
        try:
            got = _append_body(resp, part, start, bar, url)
        finally:
            bar.close()
    if total is not None and got != total:
        raise DownloadError(f"{url}: got {got} of {total} bytes; {part} kept, run again to resume")
    return _place(part, dest, url, check)


def _place(part: Path, dest: Path, url: str, check: Callable[[Path], None] | None) -> Path:
    """The complete ``part`` onto ``dest`` (atomic rename), once ``check`` accepts it."""
    if check is not None:
        try:
            check(part)
        except (CaffeFormatError, UsageError, OSError) as exc:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: the downloaded file is not what was asked for, so it was "
                                f"deleted and {dest} not written: {exc}") from None
    os.replace(part, dest)
    return dest


def download_model(name: str, *, base_url: str | None = None,
                   cache_dir: str | os.PathLike | None = None, progress: bool = True,
                   force: bool = False, timeout: float = 60.0) -> Path:
    """Fetch a zoo model's weights into the cache; returns the caffemodel's path. The file is
    checked (:func:`check_model_weights`) before it takes the model's name."""
    url, _ = model_url(name, base_url)
    return download_url(url, weights_path(name, cache_dir), progress=progress, timeout=timeout,
                        force=force, check=lambda part: check_model_weights(name, part))


def check_model_weights(name: str, path: str | os.PathLike) -> None:
    """Raise :class:`CaffeFormatError` unless ``path`` is a caffemodel for zoo model ``name``:
    it parses, and every layer with params of the model's deploy net finds weights there
    with the blob count and shapes it needs (the net is built on the meta device: shapes
    only, no memory for the weights)."""
    with torch.device("meta"):
        net = CaffeNet(zoo.get(name).deploy_net())
    net.load_weights(path, strict=True)


def weights_path(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`download_model` puts (or has put) a zoo model's weights."""
    _, fname = model_url(name)
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return folder / fname


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes as hex (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
