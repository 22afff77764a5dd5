"""The merge engine: BVLC's ``caffe.proto`` descriptor plus fork deltas -> one descriptor pool,
and the wire <-> pool numbering tables of the result.

A fork's delta (package ``caffe.<fork>``) lists the fields and messages it adds to BVLC's
schema with the fork's own numbers. :func:`merge` copies BVLC's FileDescriptorProto and adds
each delta in turn: with ``single`` (one fork, or a user's schema) the fork's numbers, types
and defaults win; in the default mixture the first fork keeps a name two forks define
differently (:class:`_Conflict` records the others) and a number two fields share is moved to a
private number (``RELOCATED_BASE`` and above, never on disk). :func:`wire_maps` then records,
per message, how each merged schema numbers fields on the wire versus in the pool
(``AMBIGUOUS`` where the forks disagree). Compiling a user's ``.proto``
(:func:`compile_proto_file`, :func:`load_descriptor`) lives here too. The fork catalogue is
:mod:`caffe_import.proto.catalogue`; the ``Schema`` object and its selection,
:mod:`caffe_import.proto.schema`.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from google.protobuf import descriptor_pb2 as dpb
from google.protobuf import descriptor_pool

from ..errors import CaffeFormatError, UsageError
from . import caffe_pb2
from .catalogue import BVLC, param_types

FD = dpb.FieldDescriptorProto
#: numbers at and above this hold fields moved aside in a merged pool; never on disk
RELOCATED_BASE = 100_000_000
#: ambiguous wire number marker (a field whose number differs between merged forks)
AMBIGUOUS = -1


# ---------------------------------------------------------------------- compiling
def _grpc_tools_trouble(exc: ImportError) -> str:
    """Why ``import grpc_tools`` failed: not installed, or installed and missing something
    (grpcio-tools releases for protobuf 4 import ``pkg_resources``, gone from setuptools 81)."""
    if exc.name in (None, "grpc_tools"):
        return " (pip install grpcio-tools, or the package's [proto] extra)"
    hint = (": pip install 'setuptools<81' (its pkg_resources), or a grpcio-tools for protobuf "
            ">= 5" if exc.name == "pkg_resources" else "")
    return f", which is installed but fails to import ({type(exc).__name__}: {exc}){hint}"


def compile_proto_file(path: str | os.PathLike,
                       include: Iterable[str | os.PathLike] = ()) -> dpb.FileDescriptorProto:
    """Compile a ``.proto`` file with grpcio-tools' protoc (in process) to its descriptor."""
    try:
        from grpc_tools import protoc  # lazy: an optional dependency (the [proto] extra)
    except ImportError as exc:
        raise UsageError(f"{path}: compiling a .proto needs grpcio-tools{_grpc_tools_trouble(exc)}; "
                         "or pass a descriptor set made by "
                         "'protoc --descriptor_set_out=caffe.pb caffe.proto'") from None
    path = Path(path).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "schema.pb"
        args = ["protoc", f"-I{path.parent}", *[f"-I{Path(i).resolve()}" for i in include],
                f"--descriptor_set_out={out}", path.name]
        # protoc reports errors on stderr; run_main returns non-zero then
        rc = protoc.main(args)
        if rc != 0 or not out.exists():
            raise CaffeFormatError("protoc could not compile this schema (its errors are "
                                   "printed above)", path=path)
        fds = dpb.FileDescriptorSet.FromString(out.read_bytes())
    for fd in fds.file:
        if fd.name == path.name:
            return fd
    raise CaffeFormatError("protoc produced no descriptor for this file", path=path)


def load_descriptor(path: str | os.PathLike) -> dpb.FileDescriptorProto:
    """A user's schema: a ``.proto`` (compiled here) or a compiled descriptor set."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such schema file (expected a fork's caffe.proto)")
    raw = path.read_bytes()
    if path.suffix == ".proto" or raw.lstrip()[:1].isalpha() or raw.lstrip()[:2] == b"//":
        fd = compile_proto_file(path)
    else:
        try:
            fds = dpb.FileDescriptorSet.FromString(raw)
        except Exception:
            raise CaffeFormatError("neither a .proto nor a descriptor set", path=path) from None
        files = [f for f in fds.file if any(m.name == "LayerParameter" for m in f.message_type)]
        if not files:
            raise CaffeFormatError("this descriptor set holds no LayerParameter", path=path)
        fd = files[-1]
    if fd.package != "caffe":
        raise CaffeFormatError(f"package is {fd.package!r}; a Caffe schema is package 'caffe'",
                               path=path)
    return fd


def rename_message(fd: dpb.FileDescriptorProto, old: str, new: str) -> None:
    """Rename top-level message ``old`` to ``new`` (dropping the fork's own ``new``)."""
    for msg in list(fd.message_type):
        if msg.name == new:
            fd.message_type.remove(msg)
    for msg in fd.message_type:
        if msg.name == old:
            msg.name = new

    def fix(msg: dpb.DescriptorProto) -> None:
        for f in msg.field:
            if f.type_name == f".caffe.{old}" or f.type_name.startswith(f".caffe.{old}."):
                f.type_name = f".caffe.{new}" + f.type_name[len(f".caffe.{old}"):]
        for sub in msg.nested_type:
            fix(sub)

    for msg in fd.message_type:
        fix(msg)


def v1_era(fd: dpb.FileDescriptorProto) -> bool:
    """True for a schema from before Caffe's current layer format (DeepLab v1's): its
    ``NetParameter.layers`` (field 2) holds its ``LayerParameter``, BVLC's V1 layer."""
    for msg in fd.message_type:
        if msg.name == "NetParameter":
            return any(f.number == 2 and f.type_name.endswith(".LayerParameter")
                       for f in msg.field)
    return False


# ---------------------------------------------------------------------- merging
@dataclass
class _Conflict:
    message: str
    name: str
    fork: str
    kept: str  # who keeps the name (in the default schema)


def _compatible(a: FD, b: FD) -> bool:
    varints = {FD.TYPE_INT32, FD.TYPE_UINT32, FD.TYPE_INT64, FD.TYPE_UINT64}
    if a.label != b.label and b.label == FD.LABEL_REPEATED:
        return False  # a base field that is repeated reads a fork's optional one
    if a.type == b.type:
        return a.type_name == b.type_name
    return a.type in varints and b.type in varints


class _Merger:
    """Merges deltas (package ``caffe.<fork>``) into a copy of BVLC's FileDescriptorProto."""

    def __init__(self) -> None:
        self.file = dpb.FileDescriptorProto.FromString(caffe_pb2.DESCRIPTOR.serialized_pb)
        self.next_number: dict[str, int] = {}
        self.conflicts: list[_Conflict] = []
        self.owner: dict[tuple[str, str], str] = {}  # (message, field) -> fork that added it

    def _relocated(self, msg_name: str) -> int:
        n = self.next_number.get(msg_name, RELOCATED_BASE)
        self.next_number[msg_name] = n + 1
        return n

    def add(self, delta: dpb.FileDescriptorProto, fork: str, fork_wins: bool) -> None:
        prefix = f".{delta.package}."
        delta = dpb.FileDescriptorProto.FromString(delta.SerializeToString())
        _rewrite_types(delta, prefix)
        top = {m.name: m for m in self.file.message_type}
        for msg in delta.message_type:
            if msg.name in top:
                self._merge_message(top[msg.name], msg, msg.name, fork, fork_wins)
            else:
                self.file.message_type.add().CopyFrom(msg)
                for f in msg.field:
                    self.owner[(msg.name, f.name)] = fork
        enums = {e.name: e for e in self.file.enum_type}
        for enum in delta.enum_type:
            if enum.name in enums:
                _merge_enum(enums[enum.name], enum, fork_wins)
            else:
                self.file.enum_type.add().CopyFrom(enum)

    def mirror_v1_params(self) -> None:
        """A fork's ``*_param`` of V1 layers (DeepLab v1's interp_param) also on the current
        LayerParameter, under a private number: the upgrade moves V1 params there."""
        top = {m.name: m for m in self.file.message_type}
        layer, v1 = top["LayerParameter"], top["V1LayerParameter"]
        have = {f.name for f in layer.field}
        for f in v1.field:
            if f.name.endswith("_param") and f.name not in have and f.type == FD.TYPE_MESSAGE:
                new = layer.field.add()
                new.CopyFrom(f)
                new.ClearField("json_name")
                new.number = self._relocated("LayerParameter")
                self.owner[("LayerParameter", f.name)] = self.owner.get(
                    ("V1LayerParameter", f.name), BVLC)

    def _merge_message(self, base: dpb.DescriptorProto, msg: dpb.DescriptorProto, path: str,
                       fork: str, fork_wins: bool) -> None:
        enums = {e.name: e for e in base.enum_type}
        for enum in msg.enum_type:
            if enum.name in enums:
                _merge_enum(enums[enum.name], enum, fork_wins)
            else:
                base.enum_type.add().CopyFrom(enum)
        nested = {m.name: m for m in base.nested_type}
        for sub in msg.nested_type:
            if sub.name in nested:
                self._merge_message(nested[sub.name], sub, f"{path}.{sub.name}", fork, fork_wins)
            else:
                base.nested_type.add().CopyFrom(sub)
        for f in msg.field:
            self._merge_field(base, f, path, fork, fork_wins)

    def _merge_field(self, base: dpb.DescriptorProto, f: FD, path: str, fork: str,
                     fork_wins: bool) -> None:
        by_name = {g.name: g for g in base.field}
        old = by_name.get(f.name)
        if old is not None:
            if _compatible(old, f):
                if fork_wins and old.label != FD.LABEL_REPEATED:  # the fork's default
                    if f.HasField("default_value"):
                        old.default_value = f.default_value
                    else:
                        old.ClearField("default_value")
                return
            if not fork_wins:
                self.conflicts.append(_Conflict(path, f.name, fork,
                                                self.owner.get((path, f.name), BVLC)))
                return
            base.field.remove(old)
        new = base.field.add()
        new.CopyFrom(f)
        new.ClearField("json_name")
        self.owner[(path, f.name)] = fork
        holders = [g for g in base.field if g.number == f.number and g is not new]
        for g in holders:
            if fork_wins:
                g.number = self._relocated(path)
            else:
                new.number = self._relocated(path)


def _merge_enum(base: dpb.EnumDescriptorProto, enum: dpb.EnumDescriptorProto,
                fork_wins: bool = True) -> None:
    """Add the fork's enum values. A fork value whose number a base value already has
    replaces it in a fork's own schema (DeepLab v1's IMAGE_SEG_DATA is V1 type 39, BVLC's
    DECONVOLUTION); in the default mixture it is left out, so text naming it asks for the
    fork instead of being read as the other value."""
    names = {v.name for v in base.value}
    for v in enum.value:
        if v.name in names:
            continue
        clash = [w for w in base.value if w.number == v.number]
        if clash and not fork_wins:
            continue
        for w in clash:
            base.value.remove(w)
        base.value.add().CopyFrom(v)


def _rewrite_types(fd: dpb.FileDescriptorProto, prefix: str) -> None:
    def fix(msg: dpb.DescriptorProto) -> None:
        for f in msg.field:
            if f.type_name.startswith(prefix):
                f.type_name = ".caffe." + f.type_name[len(prefix):]
        for sub in msg.nested_type:
            fix(sub)

    for msg in fd.message_type:
        fix(msg)
    if prefix != ".caffe.":
        del fd.dependency[:]


# ---------------------------------------------------------------------- wire views
View = dict[str, dict[str, int]]  # message path -> field name -> wire number


def _view(fd: dpb.FileDescriptorProto) -> View:
    out: View = {}

    def walk(msg: dpb.DescriptorProto, path: str) -> None:
        out[path] = {f.name: f.number for f in msg.field}
        for sub in msg.nested_type:
            walk(sub, f"{path}.{sub.name}")

    for msg in fd.message_type:
        walk(msg, msg.name)
    return out


def _fork_view(delta: dpb.FileDescriptorProto) -> View:
    """BVLC's numbering with the fork's fields on top (a reused number drops BVLC's field)."""
    view = {k: dict(v) for k, v in _view(
        dpb.FileDescriptorProto.FromString(caffe_pb2.DESCRIPTOR.serialized_pb)).items()}
    for path, fields in _view(delta).items():
        target = view.setdefault(path, {})
        for name, number in fields.items():
            for other in [n for n, w in target.items() if w == number and n != name]:
                del target[other]
            target[name] = number
    return view


# ---------------------------------------------------------------------- wire maps
def _pool_to_wire(schema: Any, msg: dpb.DescriptorProto, path: str,
                  views: list[tuple[str, View]], single: bool) -> dict[int, Optional[int]]:
    """Pool number -> wire number (None: not on the wire; AMBIGUOUS: forks disagree), only
    where they differ. A fork schema uses its own view (the last); the mixture uses BVLC's
    number for BVLC's fields and the forks' (when they agree) for theirs."""
    out: dict[int, Optional[int]] = {}
    for f in msg.field:
        wires: dict[int, list[str]] = {}
        for label, view in views:
            if f.name in view.get(path, {}):
                wires.setdefault(view[path][f.name], []).append(label)
        bvlc_number = views[0][1].get(path, {}).get(f.name)
        if single:
            w = views[-1][1].get(path, {}).get(f.name)
        elif bvlc_number is not None:
            w = bvlc_number
        elif len(wires) == 1:
            (w,) = wires
        elif not wires:
            w = None
        else:
            w = AMBIGUOUS
            schema.ambiguous[(f"caffe.{path}", f.number)] = ", ".join(
                f"{n} in {' and '.join(labs)}" for n, labs in sorted(wires.items()))
        if w != f.number:
            out[f.number] = w
    return out


def _wire_to_pool(schema: Any, msg: dpb.DescriptorProto, path: str,
                  views: list[tuple[str, View]], single: bool) -> dict[int, Optional[int]]:
    """Wire number -> pool number (None: skipped), only where they differ. A number with
    several meanings is skipped; on a LayerParameter the layer's type may decide it
    (``schema.by_layer_type``)."""
    pool_numbers = {f.name: f.number for f in msg.field}
    by_wire: dict[int, dict[str, list[str]]] = {}
    for label, view in views:
        for name, w in view.get(path, {}).items():
            if name in pool_numbers:
                by_wire.setdefault(w, {}).setdefault(name, []).append(label)
    out: dict[int, Optional[int]] = {}
    for w, names in by_wire.items():
        if single:
            own = views[-1][1].get(path, {})
            names = {n: names[n] for n in names if own.get(n) == w}
        if len(names) == 1:
            (name,) = names
            if pool_numbers[name] != w:
                out[w] = pool_numbers[name]
        elif names:
            out[w] = None
            if path == "LayerParameter":
                schema.by_layer_type[w] = {t: pool_numbers[n] for n in names
                                           for t in param_types(n)}
    for number in set(pool_numbers.values()) - set(by_wire) - set(out):
        if number >= RELOCATED_BASE:  # a private pool number is never read from a file
            out[number] = None
    return out


def wire_maps(schema: Any, merged: "Merged", single: bool) -> None:
    """Fill a :class:`~caffe_import.proto.schema.Schema`'s translation tables
    (``pool_to_wire``, ``wire_to_pool``, ``by_layer_type``, ``ambiguous``) from the views of
    the merged schemas."""
    views = merged.views

    def walk(msg: dpb.DescriptorProto, path: str) -> None:
        p2w = _pool_to_wire(schema, msg, path, views, single)
        w2p = _wire_to_pool(schema, msg, path, views, single)
        if p2w:
            schema.pool_to_wire[f"caffe.{path}"] = p2w
        if w2p:
            schema.wire_to_pool[f"caffe.{path}"] = w2p
        for sub in msg.nested_type:
            walk(sub, f"{path}.{sub.name}")

    for msg in merged.file.message_type:
        walk(msg, msg.name)


# ---------------------------------------------------------------------- merging it all
@dataclass
class Merged:
    """A merged schema: its descriptor pool, its FileDescriptorProto, the wire view of each
    schema merged in (BVLC's first), and what the merger recorded."""

    pool: Any
    file: dpb.FileDescriptorProto
    views: list[tuple[str, View]]
    conflicts: list[_Conflict]
    owner: dict[tuple[str, str], str]


def merge(name: str, deltas: list[tuple[str, dpb.FileDescriptorProto]], single: bool) -> Merged:
    """BVLC's schema with ``deltas`` (label, delta) merged in order, built into a new pool;
    ``single``: one fork's schema (its numbers win) rather than the default mixture."""
    merger = _Merger()
    views: list[tuple[str, View]] = [(BVLC, _view(merger.file))]
    for label, delta in deltas:
        merger.add(delta, label, fork_wins=single)
        views.append((label, _fork_view(delta)))
    merger.mirror_v1_params()
    merged = merger.file
    merged.name = f"caffe_import/{name}/caffe.proto"
    pool = descriptor_pool.DescriptorPool()
    try:
        pool.Add(merged)
    except Exception as exc:
        raise CaffeFormatError(f"schema {name!r} does not build: {exc}") from None
    return Merged(pool, merged, views, merger.conflicts, dict(merger.owner))


def user_delta(fd: dpb.FileDescriptorProto) -> dpb.FileDescriptorProto:
    """A user's full fork ``caffe.proto`` descriptor as a delta to merge like a shipped one
    (package ``caffe.user``; a V1-era schema's ``LayerParameter`` is BVLC's
    ``V1LayerParameter``)."""
    user = dpb.FileDescriptorProto()
    user.CopyFrom(fd)
    if v1_era(user):
        rename_message(user, "LayerParameter", "V1LayerParameter")
    user.package = "caffe.user"
    return user
