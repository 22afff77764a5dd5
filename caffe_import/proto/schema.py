"""Caffe schemas: BVLC's ``caffe.proto`` plus the fields of Caffe's forks, built at run time.

Every fork of Caffe (SSD, PSPNet, SegNet, Faster R-CNN, ...) ships its own full
``caffe.proto``: BVLC's messages plus its own fields, with its own field numbers. Several
forks gave one number different meanings (PSPNet's ``interp_param`` is field 143 of
``LayerParameter``, BVLC's ``input_param`` too), or one name different numbers (SegNet's
``bn_param`` is 45, PSPNet's 152). This module keeps them apart:

* ``caffe_import/proto/forks/<fork>.proto`` holds each fork's additions (a "delta", written
  by ``tools/fork_delta.py`` from the fork's own caffe.proto), precompiled into
  ``forks_pb.py`` by ``tools/gen_proto.py``;
* :func:`get_schema` merges BVLC's FileDescriptorProto with the chosen forks' deltas into
  one descriptor pool (message classes made by ``message_factory``) and records, per
  message, how the fork numbers fields *on the wire* (``wire``) versus in the pool
  (``pool``). The two differ only where a fork's number collides with another field's:
  the pool then keeps the field under a private number (never written to disk) and the
  binary reader and writer translate (:meth:`Schema.to_pool`, :meth:`Schema.to_wire`).

Selections:

* ``fork="ssd"`` (one shipped fork): BVLC plus that fork; its numbers win on the wire.
* ``fork="bvlc"``: BVLC master only.
* no fork (the default): BVLC plus every shipped fork, so text prototxts of any family parse
  by name. Where forks define one name differently, the first fork in :data:`DEFAULT_ORDER`
  keeps it (the same-named messages are merged field by field, e.g. one ``BNParameter`` with
  SegNet's ``bn_mode`` and PSPNet's ``frozen``). On the wire a number that means different
  things in different forks is decoded only when the layer's own ``type`` says which
  (``Interp`` -> ``interp_param``, ``Input`` -> ``input_param``); otherwise it is skipped,
  as Caffe skips unknown fields, never misread. Writing a field whose number differs
  between forks needs the fork named.
* ``proto="my_caffe.proto"``: a user's fork schema, compiled at run time (grpcio-tools'
  protoc, in process) or given as a compiled descriptor set (``protoc
  --descriptor_set_out``); merged over BVLC like a shipped fork.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from google.protobuf import descriptor_pb2 as dpb
from google.protobuf import descriptor_pool, message_factory

from ..errors import CaffeFormatError, UsageError
from . import caffe_pb2

FD = dpb.FieldDescriptorProto
#: numbers at and above this hold fields moved aside in a merged pool; never on disk
RELOCATED_BASE = 100_000_000
#: ambiguous wire number marker (a field whose number differs between merged forks)
AMBIGUOUS = -1
DEFAULT = "default"
BVLC = "bvlc"


@dataclass(frozen=True)
class Fork:
    """A shipped fork schema: its delta file and where its caffe.proto came from."""

    name: str
    title: str
    source: str  # repository@commit path of the fork's caffe.proto
    layers: tuple[str, ...]  # layer types the fork adds (for hints and docs)
    aliases: tuple[str, ...] = ()


FORKS: dict[str, Fork] = {f.name: f for f in [
    Fork("ssd", "SSD (weiliu89/caffe, branch ssd)",
         "weiliu89/caffe@4817bf8b4200b35ada8ed0dc378dceaf38c539e4 src/caffe/proto/caffe.proto",
         ("Normalize", "Permute", "PriorBox", "DetectionOutput", "MultiBoxLoss",
          "AnnotatedData", "DetectionEvaluate", "VideoData"), ("weiliu89",)),
    Fork("pspnet", "PSPNet (hszhao/PSPNet; DeepLab v2's schema)",
         "hszhao/PSPNet@798bdc907c8630e8c3997ebfdd0d7cae0c5ab03b src/caffe/proto/caffe.proto",
         ("BN", "Interp", "DenseCRF", "DomainTransform", "SegAccuracy", "MatRead", "MatWrite",
          "BiasChannel", "AdaptiveBiasChannel", "UniqueLabel"), ("psp",)),
    Fork("segnet", "SegNet (alexgkendall/caffe-segnet)",
         "alexgkendall/caffe-segnet@344c113bf1832886f1cbe9f33ffe28a3beeaf412 "
         "src/caffe/proto/caffe.proto", ("BN", "Upsample", "DenseImageData")),
    Fork("segnet-cudnn5", "SegNet for cuDNN 5 (TimoSaemann/caffe-segnet-cudnn5)",
         "TimoSaemann/caffe-segnet-cudnn5@abcf30dca449245e101bf4ced519f716177f0885 "
         "src/caffe/proto/caffe.proto", ("BN", "Upsample", "DenseImageData")),
    Fork("fast-rcnn", "Fast/Faster R-CNN (rbgirshick/caffe-fast-rcnn, branch faster-rcnn)",
         "rbgirshick/caffe-fast-rcnn@4115385deb3b907fcd428ac0ab53b694d741a3c4 "
         "src/caffe/proto/caffe.proto", ("ROIPooling", "SmoothL1Loss"),
         ("faster-rcnn", "py-faster-rcnn")),
    Fork("deeplab", "DeepLab v2 (deeplab-public-ver2)",
         "maweifei/deeplab-ver2@a225e95c3ba1d592ecf410eeaee87ca4088dbb3f "
         "src/caffe/proto/caffe.proto", ("Interp", "DenseCRF", "DomainTransform",
                                         "SegAccuracy", "MatRead", "MatWrite", "ImageSegData"),
         ("deeplab-v2", "deeplabv2")),
    Fork("deeplab-v1", "DeepLab v1 (deeplab-public; V1 'layers' nets with 'hole')",
         "TheLegendAli/DeepLab-Context@fb04e9e2fc2682490ad9f60533b9d6c4c0e0479c "
         "src/caffe/proto/caffe.proto", ("Interp", "ImageSegData", "SegAccuracy", "DenseCRF"),
         ("deeplabv1",)),
    Fork("yolo", "YOLOv3/v4 Caffe ports (darknet2caffe)",
         "ChenYingpeng/darknet2caffe@0595e5c34574dfee49d3ecb67bb0540d903038ba README.md",
         ("Upsample", "Mish"), ("yolov3", "yolov4", "darknet2caffe")),
    Fork("yolov2", "YOLOv2 Caffe port (gklz1982/caffe-yolov2)",
         "gklz1982/caffe-yolov2@ebb27029db4ddc0d40e520634633b0fa9cdcc10d "
         "src/caffe/proto/caffe.proto", ("Reorg", "RegionLoss", "DetectionOutput", "EvalDetection")),
    Fork("shufflenet", "ShuffleNet Caffe ports (farmingyard/ShuffleNet)",
         "farmingyard/ShuffleNet@566005ebf20f5a675feb9b53d27ee94e4bd89648 README.md",
         ("ShuffleChannel",)),
    Fork("ceil-mode", "pooling ceil_mode (BVLC/caffe pull request #3057: DenseNet, ResNeXt ports)",
         "BVLC/caffe pull request #3057 src/caffe/proto/caffe.proto", (),
         ("densenet", "resnext", "ceil_mode")),
]}

#: who keeps a name two forks define differently in the default schema (first wins)
DEFAULT_ORDER: tuple[str, ...] = ("ssd", "pspnet", "deeplab", "deeplab-v1", "segnet",
                                  "segnet-cudnn5", "fast-rcnn", "yolo", "yolov2", "shufflenet",
                                  "ceil-mode")

#: LayerParameter ``*_param`` field -> the layer types that read it, where the type is not
#: the CamelCase of the field name (used to decide contested wire numbers by layer type)
_PARAM_TYPES: dict[str, tuple[str, ...]] = {
    "norm_param": ("Normalize",), "bn_param": ("BN",), "roi_pooling_param": ("ROIPooling",),
    "smooth_l1_loss_param": ("SmoothL1Loss",), "multibox_loss_param": ("MultiBoxLoss",),
    "recurrent_param": ("Recurrent", "RNN", "LSTM"), "inner_product_param": ("InnerProduct",),
    "lrn_param": ("LRN",), "mvn_param": ("MVN",), "hdf5_data_param": ("HDF5Data",),
    "hdf5_output_param": ("HDF5Output",), "relu_param": ("ReLU",), "prelu_param": ("PReLU",),
    "elu_param": ("ELU",), "tanh_param": ("TanH",), "loss_param": (),
    "transform_param": (), "seg_accuracy_param": ("SegAccuracy",),
    "dense_crf_param": ("DenseCRF",), "argmax_param": ("ArgMax",),
}


def _param_types(name: str) -> tuple[str, ...]:
    if name in _PARAM_TYPES:
        return _PARAM_TYPES[name]
    if not name.endswith("_param"):
        return ()
    return ("".join(p[:1].upper() + p[1:] for p in name[:-len("_param")].split("_")),)


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
        from grpc_tools import protoc
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


def _v1_era(fd: dpb.FileDescriptorProto) -> bool:
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


# ---------------------------------------------------------------------- the schema
@dataclass
class Schema:
    """A descriptor pool for one fork selection, with its wire numbering.

    ``name``: "bvlc", "default", a fork name, or "proto:<file>". ``fork``: the single fork
    whose semantics apply (None for BVLC and for the default's mixture). ``forks``: every
    fork merged in. Message classes: ``schema.NetParameter`` / ``schema.message(name)``.
    """

    name: str
    fork: Optional[str]
    forks: tuple[str, ...]
    pool: Any
    conflicts: list = field(default_factory=list)
    # message full name -> {pool number: wire number or None (not on the wire) or AMBIGUOUS}
    pool_to_wire: dict[str, dict[int, Optional[int]]] = field(default_factory=dict)
    # message full name -> {wire number: pool number or None (skip)}
    wire_to_pool: dict[str, dict[int, Optional[int]]] = field(default_factory=dict)
    # LayerParameter wire number -> {layer type: pool number}: contested numbers by type
    by_layer_type: dict[int, dict[str, int]] = field(default_factory=dict)
    ambiguous: dict[tuple[str, int], str] = field(default_factory=dict)
    owner: dict[tuple[str, str], str] = field(default_factory=dict)
    descriptor: Optional[bytes] = None  # a user's schema (proto=): its FileDescriptorProto
    _classes: dict[str, type] = field(default_factory=dict, repr=False)

    def message(self, name: str) -> type:
        """The message class ``caffe.<name>`` of this schema."""
        cls = self._classes.get(name)
        if cls is None:
            if self.name == BVLC and hasattr(caffe_pb2, name):
                cls = getattr(caffe_pb2, name)
            else:
                desc = self.pool.FindMessageTypeByName(f"caffe.{name}")
                cls = _message_class(desc)
            self._classes[name] = cls
        return cls

    def __getattr__(self, name: str):
        if name[:1].isupper():
            try:
                return self.message(name)
            except KeyError:
                pass
        raise AttributeError(name)

    @property
    def identity(self) -> bool:
        """True when pool and wire numbers agree everywhere (nothing to translate)."""
        return not self.pool_to_wire and not self.wire_to_pool and not self.by_layer_type

    def owner_of(self, message: str, name: str) -> str:
        """Which fork a field comes from ("bvlc" for BVLC's own)."""
        return self.owner.get((message, name), BVLC)

    def to_pool(self, data: bytes, message: str = "NetParameter") -> bytes:
        """Wire bytes of a ``message`` (as a fork's Caffe wrote them) -> this pool's numbers;
        contested numbers are dropped unless the layer type decides."""
        if self.identity:
            return data
        from .transcode import transcode

        return transcode(self, data, self.pool.FindMessageTypeByName(f"caffe.{message}"), True)

    def to_wire(self, data: bytes, message: str = "NetParameter",
                layer: Optional[str] = None) -> bytes:
        """This pool's serialized ``message`` -> the fork's wire numbers (fields in number
        order, as protobuf writes them); a field whose number the merged forks disagree on
        is an error naming the forks."""
        if self.identity:
            return data
        from .transcode import transcode

        return transcode(self, data, self.pool.FindMessageTypeByName(f"caffe.{message}"),
                         False, layer=layer)


def _message_class(desc) -> type:
    get = getattr(message_factory, "GetMessageClass", None)
    if get is not None:
        return get(desc)
    return message_factory.MessageFactory(desc.file.pool).GetPrototype(desc)  # pragma: no cover


def forks_fitting(msg: Any, forks: Iterable[str]) -> list[str]:
    """Those of ``forks`` whose schema has every field set in the message ``msg`` (a net
    read with a merged schema): the forks it can have come from."""
    def fits(pool: Any, m: Any) -> bool:
        try:
            desc = pool.FindMessageTypeByName(m.DESCRIPTOR.full_name)
        except KeyError:
            return False
        for fd, value in m.ListFields():
            if fd.name not in desc.fields_by_name:
                return False
            if fd.message_type is not None:
                subs = [value] if hasattr(value, "ListFields") else value
                if not all(fits(pool, sub) for sub in subs):
                    return False
        return True

    return [fork for fork in forks if fits(get_schema(fork).pool, msg)]


_POOLS: dict[int, Schema] = {}
_LOCK = threading.Lock()


def _pool_to_wire(schema: Schema, msg: dpb.DescriptorProto, path: str,
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


def _wire_to_pool(schema: Schema, msg: dpb.DescriptorProto, path: str,
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
                                           for t in _param_types(n)}
    for number in set(pool_numbers.values()) - set(by_wire) - set(out):
        if number >= RELOCATED_BASE:  # a private pool number is never read from a file
            out[number] = None
    return out


def _wire_maps(schema: Schema, merged: dpb.FileDescriptorProto, views: list[tuple[str, View]],
               single: bool) -> None:
    """Fill the schema's translation tables from the views of the merged schemas."""

    def walk(msg: dpb.DescriptorProto, path: str) -> None:
        p2w = _pool_to_wire(schema, msg, path, views, single)
        w2p = _wire_to_pool(schema, msg, path, views, single)
        if p2w:
            schema.pool_to_wire[f"caffe.{path}"] = p2w
        if w2p:
            schema.wire_to_pool[f"caffe.{path}"] = w2p
        for sub in msg.nested_type:
            walk(sub, f"{path}.{sub.name}")

    for msg in merged.message_type:
        walk(msg, msg.name)


def _build(name: str, fork: Optional[str], deltas: list[tuple[str, dpb.FileDescriptorProto]],
           single: bool) -> Schema:
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
    schema = Schema(name, fork, tuple(label for label, _ in deltas), pool,
                    conflicts=merger.conflicts, owner=dict(merger.owner))
    _wire_maps(schema, merged, views, single)
    _POOLS[id(pool)] = schema
    return schema


def _bvlc() -> Schema:
    schema = Schema(BVLC, None, (), caffe_pb2.DESCRIPTOR.pool)
    _POOLS[id(caffe_pb2.DESCRIPTOR.pool)] = schema
    return schema


def fork_names() -> list[str]:
    """The shipped forks' names, in the default schema's order."""
    return list(DEFAULT_ORDER)


def canonical_fork(name: str) -> str:
    """A fork name (or alias, any case) -> its canonical name; UsageError when unknown."""
    key = str(name).strip().lower().replace("_", "-")
    if key in (BVLC, "caffe", "master"):
        return BVLC
    if key in (DEFAULT, "auto", "all"):
        return DEFAULT
    for fork in FORKS.values():
        if key == fork.name or key in fork.aliases:
            return fork.name
    raise UsageError(f"unknown Caffe fork {name!r}; known: {', '.join([BVLC] + fork_names())} "
                     "(or pass the fork's own caffe.proto with proto=/--proto)")


@functools.lru_cache(maxsize=None)
def _deltas() -> dict[str, dpb.FileDescriptorProto]:
    from . import forks_pb

    return {name: dpb.FileDescriptorProto.FromString(blob)
            for name, blob in forks_pb.DELTAS.items()}


@functools.lru_cache(maxsize=None)
def _cached(name: str) -> Schema:
    with _LOCK:
        if name == BVLC:
            return _bvlc()
        deltas = _deltas()
        if name == DEFAULT:
            return _build(DEFAULT, None, [(f, deltas[f]) for f in DEFAULT_ORDER], single=False)
        return _build(name, name, [(name, deltas[name])], single=True)


_BY_DIGEST: dict[str, Schema] = {}


def _from_descriptor(fd: dpb.FileDescriptorProto, label: str) -> Schema:
    """A user's schema (a full fork caffe.proto's descriptor) merged over BVLC; cached by
    content. ``schema.descriptor`` keeps the descriptor (artefacts store it)."""
    blob = fd.SerializeToString(deterministic=True)
    digest = hashlib.sha256(blob).hexdigest()
    if digest not in _BY_DIGEST:
        user = dpb.FileDescriptorProto.FromString(blob)
        if _v1_era(user):  # its LayerParameter is BVLC's V1LayerParameter
            rename_message(user, "LayerParameter", "V1LayerParameter")
        user.package = "caffe.user"  # merged like a shipped delta: its numbers win
        schema = _build(label, label, [(label, user)], single=True)
        schema.descriptor = blob
        _BY_DIGEST[digest] = schema
    return _BY_DIGEST[digest]


@functools.lru_cache(maxsize=16)
def _from_proto(path: str, digest: str) -> Schema:
    return _from_descriptor(load_descriptor(path), f"proto:{os.path.basename(path)}")


_SESSION: list[Schema] = []  # schemas named by using_schema, innermost last


@contextlib.contextmanager
def using_schema(fork: Optional[str] = None, proto: str | os.PathLike | None = None
                 ) -> Iterator[Schema]:
    """While inside, readers that are given no ``fork``/``proto`` use this schema (as if
    named): how ``caffe-import run --fork NAME script.py`` reaches a pycaffe script's
    ``caffe.Net(...)``."""
    schema = get_schema(fork, proto)
    _SESSION.append(schema)
    try:
        yield schema
    finally:
        _SESSION.remove(schema)


def session_schema() -> Optional[Schema]:
    """The schema :func:`using_schema` set, if any."""
    return _SESSION[-1] if _SESSION else None


def get_schema(fork: Optional[str] = None, proto: str | os.PathLike | None = None) -> Schema:
    """The schema for a fork selection (see the module docstring); cached.

    ``fork``: None/"default" (BVLC + every shipped fork), "bvlc", or a fork name.
    ``proto``: a fork's own caffe.proto (or a compiled descriptor set); excludes ``fork``.
    A :class:`Schema` passes through unchanged. Inside :func:`using_schema`, no fork and no
    proto mean that schema.
    """
    if isinstance(fork, Schema):
        return fork
    if proto is not None:
        if fork not in (None, DEFAULT):
            raise UsageError("give either fork= or proto=, not both")
        if isinstance(proto, dpb.FileDescriptorProto):
            return _from_descriptor(proto, f"proto:{proto.name or 'caffe.proto'}")
        path = os.path.abspath(os.fspath(proto))
        try:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError as exc:
            raise UsageError(f"{proto}: cannot read the schema file ({exc.strerror})") from None
        return _from_proto(path, digest)
    if fork is None and _SESSION:
        return _SESSION[-1]
    return _cached(canonical_fork(fork) if fork is not None else DEFAULT)


def bvlc() -> Schema:
    """BVLC master's schema (``caffe_pb2``)."""
    return _cached(BVLC)


def schema_of(message: Any) -> Schema:
    """The schema a message belongs to (BVLC's for ``caffe_pb2`` messages and foreign pools)."""
    pool = message.DESCRIPTOR.file.pool
    found = _POOLS.get(id(pool))
    if found is None:
        bvlc()
        found = _POOLS.get(id(pool))
    return found if found is not None else bvlc()


def message_class(like: Any, name: str) -> type:
    """The class ``caffe.<name>`` in the same schema as the message ``like``."""
    pool = like.DESCRIPTOR.file.pool
    schema = _POOLS.get(id(pool))
    if schema is not None:
        return schema.message(name)
    return _message_class(pool.FindMessageTypeByName(f"caffe.{name}"))


def is_message(value: Any, name: str) -> bool:
    """True when ``value`` is a ``caffe.<name>`` message of any schema (any pool)."""
    desc = getattr(value, "DESCRIPTOR", None)
    return getattr(desc, "full_name", None) == f"caffe.{name}"
