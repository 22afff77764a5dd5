"""The converted artefact: one self-contained file holding a net definition and its weights.

Caffe ships a model as two files (a prototxt and a caffemodel) and rebuilds the net from them
every time. The artefact keeps both in one file, with no pickled code:

* ``.pt``: a plain ``torch.save`` of a dict of strings, ints, lists and tensors, so
  ``torch.load(path, weights_only=True)`` reads it;
* ``.safetensors``: tensors ``params/<quoted layer>/<i>`` and the rest as string metadata.

Both carry the net's prototxt (the whole ``NetParameter`` in current form), the state it was
built in (phase, stages, level: Caffe filters layers by them at build time) and every param
blob in Caffe's order, float32. ``load`` rebuilds the ``CaffeNet``.

``write_as`` (``caffe-import convert -o``) writes whichever of :data:`OUTPUT_FORMATS` the
output's name ends in: the artefact, Caffe's own weight files, or an export; any other name is
refused rather than written in a form the name does not say.

Dict keys of the ``.pt`` form (format version 1)::

    format          "caffe_import.converted"
    format_version  1
    net_prototxt    str (protobuf text of caffe.NetParameter)
    phase           "train" | "test"
    stages          list[str]
    level           int
    params          {layer name: [tensor, ...]}
    producer        str (caffe_import and torch versions)
    precision       "exact" | "fast" (optional, default exact: the mode ``load`` builds in;
                    the params are float32 either way)

Format version 2 (written only for nets read with a Caffe fork's schema; version 1 otherwise,
so older readers keep reading BVLC nets) adds::

    schema          "default" | a fork name ("ssd", "pspnet", ...) | "proto:<file name>"
    schema_proto    str: base64 of the user's schema (a FileDescriptorProto), for "proto:"

``load`` parses the net text with that schema, so fork fields come back by name.
"""
from __future__ import annotations

import base64
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, unquote

import numpy as np
import torch
from google.protobuf import descriptor_pb2

from .errors import CaffeFormatError, UsageError
from .export import write_export
from .io.atomic import atomic_path
from .io.text import parse_text
from .net import CaffeNet
from .proto.schema import BVLC, Schema, get_schema, resolve_schema, schema_of
from .version import __version__

FORMAT = "caffe_import.converted"
FORMAT_VERSION = 2

#: What ``write_as`` writes, chosen by how the output's name ends (longest ending first).
OUTPUT_FORMATS = {
    ".caffemodel": "Caffe binary weights",
    ".caffemodel.h5": "Caffe HDF5 weights",
    ".pt": "caffe_import artefact, torch.load(weights_only=True)",
    ".safetensors": "caffe_import artefact, safetensors",
    ".onnx": "ONNX graph of the deploy net",
    ".pt2": "torch.export program of the deploy net",
}
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_SAFETENSORS_HEADER = 100 << 20




def net_definition(net) -> Any:
    """The ``NetParameter`` to store for ``net``: the one it instantiated (Caffe's state
    filtering already applied, the include/exclude rules kept), with ``state.stage`` cleared
    because the stages are stored beside it (``CaffeNet`` adds given stages to the file's)."""
    param = type(net.net_param)()
    param.CopyFrom(net.net_param)
    del param.state.stage[:]
    return param


def _net_state(net) -> tuple[str, list[str], int]:
    """``(phase, stages, level)`` the net was built with (stages and level as its
    ``net_param.state`` records them: the file's own plus the ones given)."""
    phase = str(getattr(net, "phase", "test")).lower()
    state = net.net_param.state
    stages = list(dict.fromkeys(str(s) for s in state.stage))
    return phase, stages, int(state.level)


def _weights_of(net) -> "OrderedDict[str, list[torch.Tensor]]":
    out: OrderedDict[str, list[torch.Tensor]] = OrderedDict()
    for layer, params in net.params.items():
        if params:
            # clone: shared params become independent copies (safetensors refuses aliasing,
            # and the net re-shares them from ParamSpec.name when it is rebuilt)
            out[layer] = [p.detach().to("cpu", torch.float32).contiguous().clone()
                          for p in params]
    return out


def output_format(path: str | os.PathLike) -> str:
    """The key of :data:`OUTPUT_FORMATS` that ``path``'s name ends in (any case); a
    ``UsageError`` naming the accepted endings for any other name."""
    name = Path(path).name.lower()
    for ending in sorted(OUTPUT_FORMATS, key=len, reverse=True):
        if name.endswith(ending) and len(name) > len(ending):
            return ending
    raise UsageError(f"{path}: the output's name chooses its format and must end in one of "
                     f"{', '.join(OUTPUT_FORMATS)}")


def write_as(net, path: str | os.PathLike, say: Callable[[str], Any] = print) -> str:
    """Write ``net`` (a ``CaffeNet``) in the format ``path``'s name ends in (see
    :data:`OUTPUT_FORMATS`); ``.onnx``/``.pt2`` are exported (batch, height and width dynamic
    where the net allows it; a bfloat16 net is refused for ONNX) and checked against the eager
    net (``say`` hears about each slow step). Returns a line saying what was written."""
    ending = output_format(path)
    if ending in (".onnx", ".pt2"):
        return write_export(net, path, say=say, kind=ending)
    if ending in (".pt", ".safetensors"):
        save_converted(net, path)
    else:
        net.save_weights(path, h5=ending == ".caffemodel.h5")
    n = sum(p.numel() for ps in net.params.values() for p in ps)
    return (f"wrote {path} ({OUTPUT_FORMATS[ending]}): {len(net.layer_names)} layers, "
            f"{n} param values")


def save_converted(net, path: str | os.PathLike) -> None:
    """Write ``net`` (a ``CaffeNet``) as one file, atomically: safetensors when ``path`` ends
    in ``.safetensors``, a ``torch.save`` dict loadable with ``weights_only=True`` when it ends
    in ``.pt``. Other names are refused (``UsageError``), so the name never hides the form."""
    from google.protobuf import text_format

    path = Path(path)
    if path.suffix.lower() not in (".pt", ".safetensors"):
        raise UsageError(f"{path}: a converted artefact is written as .pt or .safetensors")
    definition = net_definition(net)
    prototxt = text_format.MessageToString(definition)
    phase, stages, level = _net_state(net)
    params = _weights_of(net)
    producer = f"caffe_import {__version__}, torch {torch.__version__}"
    schema = _schema_record(definition)
    version = 2 if schema else 1
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        tensors = {f"params/{quote(layer, safe='')}/{i}": t
                   for layer, ts in params.items() for i, t in enumerate(ts)}
        metadata = {"format": FORMAT, "format_version": str(version),
                    "precision": _precision_of(net),
                    "net_prototxt": prototxt, "phase": phase, "stages": json.dumps(stages),
                    "level": str(level), "layers": json.dumps(list(params)),
                    "producer": producer, **schema}
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=metadata)
        return
    payload = {"format": FORMAT, "format_version": version, "net_prototxt": prototxt,
               "phase": phase, "stages": stages, "level": level,
               "params": {layer: ts for layer, ts in params.items()}, "producer": producer,
               "precision": _precision_of(net), **schema}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _schema_record(net_param) -> dict[str, str]:
    """The artefact keys naming the schema ``net_param`` was read with (none for BVLC)."""
    schema = schema_of(net_param)
    if schema.name == BVLC:
        return {}
    record = {"schema": schema.name}
    if schema.descriptor is not None:
        record["schema_proto"] = base64.b64encode(schema.descriptor).decode("ascii")
    return record


def _schema_of_payload(payload: dict[str, Any], path: Path) -> Schema:
    """The schema a loaded artefact's net text is parsed with."""
    name = payload.get("schema")
    if not name:
        return get_schema(BVLC)
    if not isinstance(name, str):
        raise CaffeFormatError(f"schema {name!r}: expected a fork name", path=path)
    if name.startswith("proto:"):
        try:
            fd = descriptor_pb2.FileDescriptorProto.FromString(
                base64.b64decode(payload.get("schema_proto") or "", validate=True))
        except Exception:  # binascii.Error, DecodeError: both mean a damaged record
            raise CaffeFormatError(f"schema {name!r}: its stored descriptor is missing or "
                                   "damaged", path=path) from None
        return get_schema(proto=fd)
    try:
        return get_schema(name)
    except Exception as exc:
        raise CaffeFormatError(f"the net was read with Caffe fork schema {name!r}, which this "
                               f"caffe_import does not know ({exc})", path=path) from None


def _precision_of(net) -> str:
    return str(getattr(net, "precision", "exact"))


def _read_pt(path: Path) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler's errors vary: all mean "not our artefact"
        raise CaffeFormatError(f"not a readable converted artefact ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})",
                               path=path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CaffeFormatError(f"a torch file, but not a caffe_import artefact (no "
                               f"format '{FORMAT}')", path=path)
    return payload


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CaffeFormatError(f"a safetensors file, but not a caffe_import artefact "
                                       f"(no format '{FORMAT}')", path=path)
            try:
                layers = json.loads(meta.get("layers", "[]"))
                stages = json.loads(meta.get("stages", "[]"))
                level = int(meta.get("level", "0"))
                version = int(meta.get("format_version", "0"))
            except ValueError as exc:
                raise CaffeFormatError(f"bad artefact metadata ({exc})", path=path) from None
            params: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
            by_layer: dict[str, dict[int, torch.Tensor]] = {}
            for key in f.keys():
                head, _, rest = key.partition("/")
                layer_q, _, index = rest.rpartition("/")
                if head != "params" or not layer_q or not index.isdigit():
                    raise CaffeFormatError(f"unexpected tensor '{key}' in the artefact", path=path)
                by_layer.setdefault(unquote(layer_q), {})[int(index)] = f.get_tensor(key)
    except SafetensorError as exc:
        raise CaffeFormatError(f"not a readable safetensors file ({exc})", path=path) from None
    for layer, blobs in by_layer.items():
        if sorted(blobs) != list(range(len(blobs))):
            raise CaffeFormatError(f"param blobs {sorted(blobs)} are not 0..{len(blobs) - 1}",
                                   path=path, layer=layer)
        params[layer] = [blobs[i] for i in range(len(blobs))]
    out = {"format": FORMAT, "format_version": version,
           "net_prototxt": meta.get("net_prototxt"), "phase": meta.get("phase", "test"),
           "stages": stages, "level": level, "params": params,
           "precision": meta.get("precision", "exact")}
    out.update({k: meta[k] for k in ("schema", "schema_proto") if k in meta})
    return out


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= min(size - 8, _MAX_SAFETENSORS_HEADER) and head[8:9] == b"{"


def read_converted(path: str | os.PathLike) -> dict[str, Any]:
    """The artefact's content as a dict (the ``.pt`` keys), validated; no net is built.

    The form is told by content, not suffix. Anything else raises ``CaffeFormatError``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such artefact: {path}")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(_ZIP_MAGIC):
        payload = _read_pt(path)
    elif _looks_like_safetensors(head, size):
        payload = _read_safetensors(path)
    else:
        raise CaffeFormatError("not a converted artefact (neither a torch zip file nor "
                               "safetensors); a caffemodel is read with read_weights", path=path)
    version = payload.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CaffeFormatError(f"artefact format version {version!r}; this caffe_import reads "
                               f"1..{FORMAT_VERSION}", path=path)
    if not isinstance(payload.get("net_prototxt"), str):
        raise CaffeFormatError("the artefact holds no net definition", path=path)
    if payload.get("phase") not in ("train", "test"):
        raise CaffeFormatError(f"phase {payload.get('phase')!r}: expected 'train' or 'test'",
                               path=path)
    stages, level = payload.get("stages"), payload.get("level")
    if not isinstance(stages, (list, tuple)) or not all(isinstance(s, str) for s in stages):
        raise CaffeFormatError("stages must be a list of strings", path=path)
    if not isinstance(level, int):
        raise CaffeFormatError("level must be an int", path=path)
    if payload.setdefault("precision", "exact") not in ("exact", "fast"):
        raise CaffeFormatError(f"precision {payload['precision']!r}: expected 'exact' or "
                               f"'fast'", path=path)
    params = payload.get("params")
    if not isinstance(params, dict):
        raise CaffeFormatError("the artefact holds no params mapping", path=path)
    for layer, blobs in params.items():
        if not isinstance(layer, str) or not isinstance(blobs, (list, tuple)) or not all(
                isinstance(b, torch.Tensor) and b.is_floating_point() for b in blobs):
            raise CaffeFormatError("params must map layer names to lists of float tensors",
                                   path=path, layer=str(layer))
    return payload


def stored_net(payload: dict[str, Any], path: str | os.PathLike, *, fork: str | None = None,
               proto: str | os.PathLike | None = None, schema: Schema | None = None):
    """The ``NetParameter`` of an artefact read by ``read_converted``, parsed with the schema
    it records (``fork``/``proto``/``schema`` override it)."""
    schema = resolve_schema(schema, fork, proto) or _schema_of_payload(payload, Path(path))
    return parse_text(payload["net_prototxt"] or "", schema.NetParameter(),
                      path=f"{path} (net_prototxt)")


def load(path: str | os.PathLike, device: str | torch.device | None = None, *,
         fork: str | None = None, proto: str | os.PathLike | None = None,
         schema: Schema | None = None, precision: str | None = None):
    """Rebuild the ``CaffeNet`` stored by ``save_converted`` (on ``device`` when given), in
    ``precision`` (default: the one recorded in the artefact, else exact).

    The net text is parsed with the Caffe fork schema the artefact records (``fork``/
    ``proto``/``schema`` override it, e.g. for an artefact of a fork this version does not
    ship).

    Loading never runs code from the file: ``.pt`` goes through ``torch.load(weights_only=
    True)``, safetensors through its own parser. A foreign or corrupt file raises
    ``CaffeFormatError``; so does a weight that does not fit its layer.
    """
    payload = read_converted(path)
    net_param = stored_net(payload, path, schema=resolve_schema(schema, fork, proto))
    weights = OrderedDict((layer, [np.array(b.to(torch.float32).numpy(), order="C")
                                   for b in blobs])
                          for layer, blobs in payload["params"].items())
    net = CaffeNet(net_param, weights, phase=payload["phase"], stages=tuple(payload["stages"]),
                   level=payload["level"], device=device,
                   precision=precision or payload["precision"])
    return net


__all__ = ["save_converted", "load", "read_converted", "stored_net", "write_as", "output_format",
           "OUTPUT_FORMATS", "FORMAT", "FORMAT_VERSION"]
