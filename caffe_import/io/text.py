"""Prototxt (protobuf text format) files: nets and solvers.

Caffe parses with ``google::protobuf::TextFormat::Parse`` and then upgrades legacy forms
(``ReadNetParamsFromTextFileOrDie``); the same happens here with
``google.protobuf.text_format``. A syntax error becomes a :class:`CaffeFormatError` that
names the file, line and column.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple, Optional, TypeVar, Union

from google.protobuf import message as _message
from google.protobuf import text_format

from ..errors import CaffeFormatError
from ..proto import caffe_pb2
from ..proto.schema import BVLC, Schema, fork_names, get_schema, resolve_schema
from .textscan import UnknownField, problems_error, unknown_fields
from .upgrade import upgrade_net, upgrade_solver

PathOrText = Union[str, os.PathLike]
M = TypeVar("M", bound=_message.Message)

MAX_TEXT_BYTES = 1 << 30  # a prototxt is a few KB; refuse to slurp a stray 10 GB file


def _looks_like_path(value: str) -> bool:
    return "\n" not in value and "{" not in value and len(value) < 4096


def load_text(path_or_text: PathOrText) -> tuple[str, object]:
    """``(text, path)``: a path-like or an existing file name is read; other strings are text."""
    if isinstance(path_or_text, os.PathLike) or (
            isinstance(path_or_text, str) and _looks_like_path(path_or_text)
            and os.path.isfile(path_or_text)):
        path = os.fspath(path_or_text)
        size = os.path.getsize(path)
        if size > MAX_TEXT_BYTES:
            raise CaffeFormatError(f"{size} bytes is too large for a prototxt", path=path)
        raw = Path(path).read_bytes()
        if b"\x00" in raw[:4096]:
            raise CaffeFormatError("binary data where a prototxt (text) was expected; a "
                                   "caffemodel or binaryproto is read with read_weights / "
                                   "read_mean", path=path)
        try:
            return raw.decode("utf-8"), path
        except UnicodeDecodeError as exc:
            raise CaffeFormatError(f"not UTF-8 text (byte {exc.start}); expected a prototxt",
                                   path=path) from None
    if isinstance(path_or_text, str) and path_or_text.strip() and not any(
            c in path_or_text for c in ":{}\n"):
        # no prototxt text lacks all of these; this was meant as a file name
        raise FileNotFoundError(f"no such prototxt file: {path_or_text}")
    if isinstance(path_or_text, bytes):
        path_or_text = path_or_text.decode("utf-8")
    if not isinstance(path_or_text, str):
        raise TypeError(f"expected a path or prototxt text, got {type(path_or_text).__name__}")
    return path_or_text, None


def parse_text(text: str, message: M, path: object = None, *,
               allow_unknown: bool = False) -> M:
    """Parse protobuf text into ``message``; errors name the file, line and column.

    ``allow_unknown``: skip fields the schema lacks (found and reported beforehand with
    :func:`caffe_import.io.textscan.unknown_fields`)."""
    try:
        text_format.Parse(text, message, allow_unknown_field=allow_unknown)
    except text_format.ParseError as exc:
        line, column = exc.GetLine(), exc.GetColumn()
        msg = str(exc)
        # the library prefixes "line:column : "; keep only what went wrong
        if line is not None and msg.startswith(f"{line}:"):
            msg = msg.split(" : ", 1)[-1]
        raise CaffeFormatError(f"prototxt syntax error: {msg}",
                               path=path if path is not None else "<text>",
                               line=line, column=column) from None
    return message


def choose_schema(text: str, schema: Optional[Schema] = None,
                  message: str = "NetParameter") -> Schema:
    """The schema a prototxt (a ``message``) is read with: ``schema`` when one was named;
    else BVLC's when BVLC knows every field the text names, else the default (BVLC + every
    fork)."""
    if schema is not None:
        return schema
    if not unknown_fields(text, getattr(caffe_pb2, message).DESCRIPTOR):
        return get_schema(BVLC)
    return get_schema()


def _single_fork_reading(text: str, path: object) -> Optional[tuple[Any, Schema]]:
    """The first shipped fork (in the default order) whose own schema reads ``text`` with no
    unknown field, as ``(net, schema)``; for texts the default mixture cannot read (an enum
    value two forks number differently: DeepLab v1's V1 type IMAGE_SEG_DATA is 39, BVLC's
    DECONVOLUTION too)."""
    for name in fork_names():
        schema = get_schema(name)
        if unknown_fields(text, schema.NetParameter.DESCRIPTOR):
            continue
        try:
            return parse_text(text, schema.NetParameter(), path), schema
        except CaffeFormatError:
            continue
    return None


class ParsedNet(NamedTuple):
    """A net prototxt read once, leniently (:func:`parse_net`): what ``CaffeNet`` is built
    from without reading the file again. ``unknown``: the fields its schema lacks, skipped
    here and reported by ``CaffeNet`` together with any layer type it cannot run."""

    net_param: Any
    unknown: list[UnknownField]
    path: object
    schema: Schema


def parse_net(path_or_text: PathOrText, *, schema: Optional[Schema] = None) -> ParsedNet:
    """``(net_param, unknown fields, path, schema)``: the net parsed leniently (unknown
    fields skipped and listed, not raised) and upgraded; for callers that report every
    problem at once (``CaffeNet``). ``schema``: the one to read with (None: chosen by the
    text, see :func:`choose_schema`)."""
    text, path = load_text(path_or_text)
    chosen = choose_schema(text, schema)
    unknown = unknown_fields(text, chosen.NetParameter.DESCRIPTOR)
    try:
        net_param = parse_text(text, chosen.NetParameter(), path, allow_unknown=bool(unknown))
    except CaffeFormatError:
        found = None if schema is not None else _single_fork_reading(text, path)
        if found is None:
            raise
        (net_param, chosen), unknown = found, []
    return ParsedNet(upgrade_net(net_param, path=path), unknown, path, chosen)


def read_net(path_or_text: PathOrText, *, fork: Optional[str] = None, proto: Any = None,
             schema: Optional[Schema] = None) -> caffe_pb2.NetParameter:
    """A net prototxt (file or text) as a current-form ``NetParameter``.

    Legacy V0 / V1 nets and ``input``/``input_dim``/``input_shape`` fields are upgraded as
    Caffe upgrades them (see :mod:`caffe_import.io.upgrade`), so the result always uses
    ``layer`` entries with type strings and an ``Input`` layer for the net's inputs.

    Caffe forks: ``fork="ssd"`` (or "pspnet", "segnet", ..., "bvlc") reads with that fork's
    schema; ``proto="caffe.proto"`` with a fork's own schema; ``schema=`` with a
    :class:`~caffe_import.proto.schema.Schema` already resolved. By default a net BVLC's
    schema fully describes is read with it (``caffe_pb2`` messages) and any other with BVLC
    plus every shipped fork (:mod:`caffe_import.proto.schema`). Fields no schema knows are
    all reported in one :class:`CaffeFormatError`, each with its line and layer.
    """
    parsed = parse_net(path_or_text, schema=resolve_schema(schema, fork, proto))
    if parsed.unknown:
        raise problems_error(parsed.unknown, [], parsed.schema,
                             path=parsed.path if parsed.path is not None else "<text>")
    return parsed.net_param


def read_solver(path_or_text: PathOrText, *, fork: Optional[str] = None, proto: Any = None,
                schema: Optional[Schema] = None) -> caffe_pb2.SolverParameter:
    """A solver prototxt as ``SolverParameter``, upgraded (``solver_type`` -> ``type``).

    As in Caffe's ``ReadSolverParamsFromTextFileOrDie``, when read from a file an unset
    ``snapshot_prefix`` becomes the solver file's path without its extension, and a prefix
    naming an existing directory gets the solver file's stem appended. ``fork``/``proto``/
    ``schema``: the schema, as for :func:`read_net`.
    """
    text, path = load_text(path_or_text)
    chosen = choose_schema(text, resolve_schema(schema, fork, proto), "SolverParameter")
    unknown = unknown_fields(text, chosen.SolverParameter.DESCRIPTOR)
    if unknown:
        raise problems_error(unknown, [], chosen, path=path if path is not None else "<text>")
    solver = parse_text(text, chosen.SolverParameter(), path)
    return upgrade_solver(solver, path=path)
