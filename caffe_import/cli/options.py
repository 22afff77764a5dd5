"""Argument types and up-front checks the verbs of both commands share.

Two kinds, both failing before any real work (a dataset scan, a net build, a training run)
and never as a traceback from deep inside torch or the file system:

* argparse ``type=`` functions (:func:`device`, :func:`output_dir`, :func:`output_file`):
  checked at parse time, reported with the verb's usage line; they read nothing from disk
  but a path's kind, so parsing a command line stays side-effect free;
* ``require_*`` functions, called at the top of a verb's ``run``: inputs that must exist and
  be of the right kind, raising :class:`CaffeFormatError` naming the file.
"""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Iterator

from ..device import DeviceUnavailable, resolve_device
from ..errors import CaffeFormatError


def device(text: str) -> str:
    """A torch device string this machine can use: ``cpu``, ``cuda``, ``cuda:1``, ``mps`` ...

    Returns the string unchanged (the verbs pass it on); checked by
    ``caffe_import.device.resolve_device`` so a CPU-only machine says so instead of failing
    inside a layer.
    """
    try:
        resolve_device(text)
    except DeviceUnavailable as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_precision(parser: argparse.ArgumentParser) -> None:
    """``--precision exact|fast`` (see ``caffe_import.precision``), for every verb that runs
    or builds a net."""
    parser.add_argument("--precision", choices=("exact", "fast"), default="exact",
                        help="exact: Caffe's float32 numbers (default); fast: bf16 where the "
                             "layers allow, channels_last, fused kernels (about 1e-2 relative "
                             "off exact; see docs/performance.md)")


def output_dir(text: str) -> Path:
    """A folder to write into: may not exist yet, but must not be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a file; expected a folder to write into")
    return path


def output_file(text: str) -> str:
    """A file to write (atomically): may not exist yet, but must not be a folder."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: is a folder; expected a file name to write")
    return text


def output_file_path(text: str) -> Path:
    """:func:`output_file` as a ``Path``."""
    return Path(output_file(text))


def require_file(path: str | os.PathLike, expected: str) -> Path:
    """``path`` as a Path if it is an existing file, else a CaffeFormatError naming it."""
    path = Path(path)
    if not path.exists():
        raise CaffeFormatError(f"does not exist; expected {expected}", path=path)
    if path.is_dir():
        raise CaffeFormatError(f"is a folder; expected {expected}", path=path)
    return path


_NOT_WEIGHTS = {
    "prototxt": "a prototxt (text)",
    "binaryproto": "a binaryproto (a mean image)",
    "blobprotovector": "a BlobProtoVector",
    "solverstate": "a solver state (the weights are the .caffemodel saved beside it)",
}


def require_weights_file(path: str | os.PathLike, what: str = "weights") -> Path:
    """An existing caffemodel or .caffemodel.h5, judged by content as the readers do.

    Checked before any work starts (a training run, a dataset scan). Only a file that is
    clearly something else (empty, a prototxt, a mean, a solver state) is refused here; a
    damaged caffemodel goes on to the reader, which says where it breaks.
    """
    from ..io import detect

    expected = "a caffemodel or .caffemodel.h5"
    path = require_file(path, f"{what}: {expected}")
    if path.stat().st_size == 0:
        raise CaffeFormatError(f"file is empty; expected {what}: {expected}", path=path)
    kind = detect(path)
    if kind in _NOT_WEIGHTS:
        raise CaffeFormatError(f"is {_NOT_WEIGHTS[kind]}, not {what}; expected {expected}",
                               path=path)
    return path


def require_dir(path: str | os.PathLike, expected: str) -> Path:
    """``path`` as a Path if it is an existing folder, else a CaffeFormatError naming it."""
    path = Path(path)
    if not path.exists():
        raise CaffeFormatError(f"does not exist; expected {expected}", path=path)
    if not path.is_dir():
        raise CaffeFormatError(f"is a file; expected a folder: {expected}", path=path)
    return path


def add_schema_options(parser: argparse.ArgumentParser) -> None:
    """``--fork NAME`` / ``--proto FILE``: the Caffe fork schema a verb reads its files with."""
    from ..proto.schema import BVLC, fork_names

    group = parser.add_mutually_exclusive_group()
    group.add_argument("--fork", metavar="NAME",
                       help=f"read the net with a Caffe fork's schema: {', '.join(fork_names())} "
                            f"or {BVLC} (default: BVLC, else BVLC plus every fork whose fields "
                            "the net uses; see docs/forks.md)")
    group.add_argument("--proto", metavar="FILE",
                       help="read the net with your fork's own caffe.proto (compiled at run "
                            "time; needs grpcio-tools) or a descriptor set from protoc "
                            "--descriptor_set_out")


def schema_args(args: argparse.Namespace) -> dict:
    """``{"fork": ..., "proto": ...}`` of a verb's parsed ``--fork``/``--proto`` (checked now:
    an unknown fork name or a missing schema file fails before any work)."""
    fork, proto = getattr(args, "fork", None), getattr(args, "proto", None)
    if fork is not None or proto is not None:
        from ..proto.schema import get_schema

        get_schema(fork, proto)
    return {"fork": fork, "proto": proto}


def require_net_file(path: str | os.PathLike, what: str = "net prototxt", *,
                     fork: str | None = None, proto: str | os.PathLike | None = None) -> None:
    """Fail early, naming ``path``, if it does not hold a usable net definition.

    Caffe reads an empty prototxt as an empty net (and would then build nothing); here an
    empty net is a mistaken file, so say so instead of running zero layers. Fields the
    schema lacks are left to the net's build, which reports them with its missing layer
    types in one error.
    """
    from ..io.text import parse_net

    if not os.path.exists(path):
        raise CaffeFormatError(f"does not exist; expected a {what}", path=path)
    if os.path.isdir(path):
        raise CaffeFormatError(f"is a folder: expected a {what}", path=path)
    net = parse_net(path, fork=fork, proto=proto)[0]
    if not len(net.layer) and not len(net.input):
        raise CaffeFormatError(f"defines no layers and no inputs: expected a {what}", path=path)


@contextlib.contextmanager
def naming(path: str | os.PathLike | None) -> Iterator[None]:
    """Name ``path`` in a CaffeFormatError raised inside that names no file itself.

    Net construction and forward report the layer (unknown type, bad bottom, a missing input)
    but not the prototxt it came from; the command line knows the file, so it adds it.
    """
    try:
        yield
    except CaffeFormatError as exc:
        # subclasses (a dataset's layout error, ...) carry their own place: leave them be
        if path is None or exc.path is not None or type(exc) is not CaffeFormatError:
            raise
        raise CaffeFormatError(str(exc), path=os.fspath(path)) from None
