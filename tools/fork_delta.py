#!/usr/bin/env python
"""Write a fork's additions to Caffe's schema as a small ``.proto`` (a "delta").

A fork of Caffe ships its own full ``caffe.proto``: BVLC's messages plus its own fields and
messages, with its own field numbers. This tool compiles that file and BVLC's
(``caffe_import/proto/caffe.proto``) with protoc (grpcio-tools) and prints only what differs,
in package ``caffe.<fork>``:

* a message of BVLC's name (``message LayerParameter { ... }``) lists the fields the fork adds
  to it, and fields whose number, type or default the fork changed;
* messages and enums BVLC does not have are copied whole.

``caffe_import.proto.merge`` merges such deltas into BVLC's descriptor at run time; each fork
unit's ``caffe_import/forks/<unit>/delta.proto`` was made with this tool (then
``tools/gen_proto.py`` compiles it to ``delta_pb.py`` beside it):

    python tools/fork_delta.py FORK/src/caffe/proto/caffe.proto --fork ssd \\
        --source "weiliu89/caffe@4817bf8 src/caffe/proto/caffe.proto" > caffe_import/forks/ssd/delta.proto
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2 as dpb

from caffe_import.proto.merge import compile_proto_file, rename_message

ROOT = Path(__file__).resolve().parents[1]
BVLC = ROOT / "caffe_import" / "proto" / "caffe.proto"
F = dpb.FieldDescriptorProto
_SCALARS = {F.TYPE_DOUBLE: "double", F.TYPE_FLOAT: "float", F.TYPE_INT64: "int64",
            F.TYPE_UINT64: "uint64", F.TYPE_INT32: "int32", F.TYPE_FIXED64: "fixed64",
            F.TYPE_FIXED32: "fixed32", F.TYPE_BOOL: "bool", F.TYPE_STRING: "string",
            F.TYPE_BYTES: "bytes", F.TYPE_UINT32: "uint32", F.TYPE_SFIXED32: "sfixed32",
            F.TYPE_SFIXED64: "sfixed64", F.TYPE_SINT32: "sint32", F.TYPE_SINT64: "sint64"}
_LABELS = {F.LABEL_OPTIONAL: "optional", F.LABEL_REQUIRED: "required",
           F.LABEL_REPEATED: "repeated"}


def compile_proto(path: Path) -> dpb.FileDescriptorProto:
    """The FileDescriptorProto of a self-contained .proto, compiled in process."""
    return compile_proto_file(path)


_DEFINED: set[str] = set()  # full names the delta being rendered defines
_PACKAGE = ["caffe"]


def _type_name(field: F) -> str:
    """Fully qualified: the delta's own types under its package, BVLC's under ``caffe``."""
    if field.type in (F.TYPE_MESSAGE, F.TYPE_ENUM, F.TYPE_GROUP):
        name = field.type_name
        short = name[len(".caffe."):] if name.startswith(".caffe.") else name.lstrip(".")
        return f".{_PACKAGE[0]}.{short}" if short in _DEFINED else f".caffe.{short}"
    return _SCALARS[field.type]


def _default(field: F) -> str:
    value = field.default_value
    if field.type == F.TYPE_STRING:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def render_field(field: F, indent: str) -> str:
    opts = []
    if field.HasField("default_value"):
        opts.append(f"default = {_default(field)}")
    if field.options.HasField("packed"):
        opts.append(f"packed = {'true' if field.options.packed else 'false'}")
    tail = f" [{', '.join(opts)}]" if opts else ""
    return (f"{indent}{_LABELS[field.label]} {_type_name(field)} {field.name} = "
            f"{field.number}{tail};")


def render_enum(enum: dpb.EnumDescriptorProto, indent: str) -> list[str]:
    lines = [f"{indent}enum {enum.name} {{"]
    if enum.options.allow_alias:
        lines.append(f"{indent}  option allow_alias = true;")
    lines += [f"{indent}  {v.name} = {v.number};" for v in enum.value]
    return lines + [f"{indent}}}"]


def render_message(msg: dpb.DescriptorProto, indent: str = "") -> list[str]:
    lines = [f"{indent}message {msg.name} {{"]
    for enum in msg.enum_type:
        lines += render_enum(enum, indent + "  ")
    for nested in msg.nested_type:
        lines += render_message(nested, indent + "  ")
    lines += [render_field(f, indent + "  ") for f in msg.field]
    return lines + [f"{indent}}}"]


def _same_default(a: F, b: F) -> bool:
    if a.default_value == b.default_value:
        return True
    zero = {"", "0", "false", "0.0"}
    return a.default_value in zero and b.default_value in zero


def delta_message(base: dpb.DescriptorProto, fork: dpb.DescriptorProto):
    """The part of ``fork`` (a message BVLC also has) that differs from ``base``, or None."""
    out = dpb.DescriptorProto(name=fork.name)
    by_name = {f.name: f for f in base.field}
    for field in fork.field:
        old = by_name.get(field.name)
        if (old is not None and old.label == F.LABEL_REPEATED and old.number == field.number
                and old.type == field.type):
            continue  # BVLC made the fork's optional field repeated: same wire format
        if (old is None or old.number != field.number or old.type != field.type
                or old.type_name.split(".")[-1] != field.type_name.split(".")[-1]
                or not _same_default(old, field)):
            out.field.add().CopyFrom(field)
    base_enums = {e.name: e for e in base.enum_type}
    for enum in fork.enum_type:
        old = base_enums.get(enum.name)
        known = {(v.name, v.number) for v in old.value} if old is not None else set()
        if old is None or any((v.name, v.number) not in known for v in enum.value):
            out.enum_type.add().CopyFrom(enum)
    base_nested = {m.name: m for m in base.nested_type}
    for nested in fork.nested_type:
        old = base_nested.get(nested.name)
        part = nested if old is None else delta_message(old, nested)
        if part is not None:
            out.nested_type.add().CopyFrom(part)
    return out if (len(out.field) or len(out.enum_type) or len(out.nested_type)) else None


def _collect(msg: dpb.DescriptorProto, prefix: str) -> None:
    _DEFINED.add(prefix + msg.name)
    for enum in msg.enum_type:
        _DEFINED.add(f"{prefix}{msg.name}.{enum.name}")
    for sub in msg.nested_type:
        _collect(sub, f"{prefix}{msg.name}.")


def delta(base: dpb.FileDescriptorProto, fork: dpb.FileDescriptorProto) -> list[str]:
    parts: list = []
    base_msgs = {m.name: m for m in base.message_type}
    for msg in fork.message_type:
        old = base_msgs.get(msg.name)
        part = msg if old is None else delta_message(old, msg)
        if part is not None:
            parts.append(part)
    base_enums = {e.name: e for e in base.enum_type}
    for enum in fork.enum_type:
        old = base_enums.get(enum.name)
        if old is None or {(v.name, v.number) for v in enum.value} - {
                (v.name, v.number) for v in old.value}:
            parts.append(enum)
    _DEFINED.clear()
    for part in parts:
        if isinstance(part, dpb.DescriptorProto):
            _collect(part, "")
        else:
            _DEFINED.add(part.name)
    lines: list[str] = []
    for part in parts:
        if isinstance(part, dpb.DescriptorProto):
            lines += render_message(part) + [""]
        else:
            lines += render_enum(part, "") + [""]
    return lines


def rename(fd: dpb.FileDescriptorProto, old: str, new: str) -> None:
    """Rename top-level message ``old`` to ``new`` (see caffe_import.proto.merge)."""
    rename_message(fd, old, new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("proto", type=Path, help="the fork's full caffe.proto")
    parser.add_argument("--fork", required=True, help="short name: the package is caffe.<fork>")
    parser.add_argument("--source", default="", help="where the fork's caffe.proto came from")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                        help="a fork message that is BVLC's NEW under another name (DeepLab "
                             "v1's LayerParameter is BVLC's V1LayerParameter)")
    args = parser.parse_args(argv)
    _PACKAGE[0] = f"caffe.{args.fork.replace('-', '_')}"
    fork = compile_proto(args.proto)
    for item in args.rename:
        old, new = item.split("=", 1)
        rename(fork, old, new)
    body = delta(compile_proto(BVLC), fork)
    head = [f"// Fork '{args.fork}': its additions to BVLC Caffe's caffe.proto, with its own field",
            "// numbers (written by tools/fork_delta.py; facts from the fork's schema).",
            f"// Source: {args.source}" if args.source else "// Source: (not given)",
            'syntax = "proto2";', "", f"package {_PACKAGE[0]};", "", 'import "caffe.proto";', ""]
    sys.stdout.write("\n".join(head + body).rstrip() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
