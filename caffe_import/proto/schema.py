"""Caffe schemas: BVLC's ``caffe.proto`` plus the fields of Caffe's forks, built at run time.

Every fork of Caffe (SSD, PSPNet, SegNet, Faster R-CNN, ...) ships its own full
``caffe.proto``: BVLC's messages plus its own fields, with its own field numbers. Several
forks gave one number different meanings (PSPNet's ``interp_param`` is field 143 of
``LayerParameter``, BVLC's ``input_param`` too), or one name different numbers (SegNet's
``bn_param`` is 45, PSPNet's 152). This module keeps them apart:

* each fork is a unit under ``caffe_import/forks/`` (found by
  :mod:`caffe_import.proto.catalogue`) whose ``delta.proto`` holds the fork's additions (a
  "delta", written by ``tools/fork_delta.py`` from the fork's own caffe.proto), precompiled
  into ``delta_pb.py`` by ``tools/gen_proto.py``;
* :func:`get_schema` has :mod:`caffe_import.proto.merge` merge BVLC's FileDescriptorProto with
  the chosen forks' deltas into one descriptor pool (message classes made by
  ``message_factory``) and record, per message, how the fork numbers fields *on the wire*
  (``wire``) versus in the pool (``pool``). The two differ only where a fork's number collides with another field's:
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

import functools
import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from google.protobuf import descriptor_pb2 as dpb
from google.protobuf import message_factory

from ..errors import UsageError
from . import caffe_pb2, merge
from .catalogue import BVLC, DEFAULT, DEFAULT_ORDER, FORKS, Fork, canonical_fork, delta, fork_names
from .merge import AMBIGUOUS, RELOCATED_BASE, compile_proto_file, load_descriptor, rename_message
from .transcode import transcode

__all__ = ["AMBIGUOUS", "BVLC", "DEFAULT", "DEFAULT_ORDER", "FORKS", "Fork", "RELOCATED_BASE",
           "Schema", "bvlc", "canonical_fork", "compile_proto_file", "detected_schema", "fork_names",
           "forks_fitting", "forks_of_fields", "get_schema", "is_message", "load_descriptor",
           "message_class", "rename_message", "schema_of", "session_schema", "using_schema"]


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
        return transcode(self, data, self.pool.FindMessageTypeByName(f"caffe.{message}"), True)

    def to_wire(self, data: bytes, message: str = "NetParameter",
                layer: Optional[str] = None) -> bytes:
        """This pool's serialized ``message`` -> the fork's wire numbers (fields in number
        order, as protobuf writes them); a field whose number the merged forks disagree on
        is an error naming the forks."""
        if self.identity:
            return data
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


def forks_of_fields(msg: Any) -> tuple[str, ...]:
    """Whose fields a message read with the default mixture sets: ``("bvlc",)`` when BVLC's
    schema has them all (a plain Caffe net or caffemodel), else the shipped forks whose
    schema has them all, in the default order (one for an SSD net; SegNet's ``bn_mode``
    fits both SegNet forks); empty when no single schema has them all."""
    if forks_fitting(msg, (BVLC,)):
        return (BVLC,)
    return tuple(forks_fitting(msg, DEFAULT_ORDER))


def detected_schema(msg: Any) -> str:
    """The schema a message holds, as ``caffe-import inspect`` names it: the name of the
    schema it was read with when that is BVLC's, a fork's or a user's; read with the default
    mixture, whose fields it sets (:func:`forks_of_fields`): ``"bvlc"`` for a plain Caffe
    file, the fork (``"ssd"``), the forks that all have them (``"segnet or
    segnet-cudnn5"``), or ``"default"`` when no one schema has them all."""
    schema = schema_of(msg)
    if schema.name != DEFAULT:
        return schema.name
    return " or ".join(forks_of_fields(msg)) or DEFAULT


_POOLS: dict[int, Schema] = {}
_LOCK = threading.Lock()


def _build(name: str, fork: Optional[str], deltas: list[tuple[str, dpb.FileDescriptorProto]],
           single: bool) -> Schema:
    merged = merge.merge(name, deltas, single)
    schema = Schema(name, fork, tuple(label for label, _ in deltas), merged.pool,
                    conflicts=merged.conflicts, owner=merged.owner)
    merge.wire_maps(schema, merged, single)
    _POOLS[id(merged.pool)] = schema
    return schema


def _bvlc() -> Schema:
    schema = Schema(BVLC, None, (), caffe_pb2.DESCRIPTOR.pool)
    _POOLS[id(caffe_pb2.DESCRIPTOR.pool)] = schema
    return schema


@functools.lru_cache(maxsize=None)
def _cached(name: str) -> Schema:
    with _LOCK:
        if name == BVLC:
            return _bvlc()
        if name == DEFAULT:
            return _build(DEFAULT, None, [(f, delta(f)) for f in DEFAULT_ORDER], single=False)
        return _build(name, name, [(name, delta(name))], single=True)


_BY_DIGEST: dict[str, Schema] = {}


def _from_descriptor(fd: dpb.FileDescriptorProto, label: str) -> Schema:
    """A user's schema (a full fork caffe.proto's descriptor) merged over BVLC; cached by
    content. ``schema.descriptor`` keeps the descriptor (artefacts store it)."""
    blob = fd.SerializeToString(deterministic=True)
    digest = hashlib.sha256(blob).hexdigest()
    if digest not in _BY_DIGEST:
        schema = _build(label, label, [(label, merge.user_delta(fd))], single=True)
        schema.descriptor = blob
        _BY_DIGEST[digest] = schema
    return _BY_DIGEST[digest]


@functools.lru_cache(maxsize=16)
def _from_proto(path: str, digest: str) -> Schema:
    return _from_descriptor(load_descriptor(path), f"proto:{os.path.basename(path)}")


def get_schema(fork: Optional[str] = None, proto: str | os.PathLike | None = None) -> Schema:
    """The schema for a fork selection (see the module docstring); cached.

    ``fork``: None/"default" (BVLC + every shipped fork), "bvlc", or a fork name.
    ``proto``: a fork's own caffe.proto (or a compiled descriptor set); excludes ``fork``.
    A :class:`Schema` passes through unchanged.
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
    return _cached(canonical_fork(fork) if fork is not None else DEFAULT)


def resolve_schema(schema: Optional[Schema] = None, fork: Optional[str] = None,
                   proto: str | os.PathLike | None = None) -> Optional[Schema]:
    """The schema a public entry point (``read_net``, ``CaffeNet``, a CLI's ``--fork`` /
    ``--proto``) was asked for, resolved once and then passed down as it is: ``schema``
    itself, else :func:`get_schema` of ``fork``/``proto``, else None (nothing named: a
    reader then picks by content, BVLC's when BVLC knows every field a prototxt names)."""
    if schema is not None:
        if fork is not None or proto is not None:
            raise UsageError("give either schema= or fork=/proto=, not both")
        if not isinstance(schema, Schema):
            raise TypeError(f"schema must be a Schema (get_schema(...)), not {type(schema)!r}")
        return schema
    if fork is None and proto is None:
        return None
    return get_schema(fork, proto)


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
