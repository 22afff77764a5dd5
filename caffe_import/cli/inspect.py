"""``caffe-import inspect FILE...``: what a Caffe file holds, judged by its content.

The project's own outputs are recognised too: the artefacts ``convert`` writes (.pt,
.safetensors), torch.export programs (.pt2) and ONNX models.

For each file: the detected format and version, then (nets and weights) every layer with
its type and bottoms -> tops, and (weights: caffemodels, artefacts, ONNX) the param blob shapes
and the total parameter count and bytes; a net prototxt holds no weights, so it has neither.
``--json`` prints the same as a JSON list, one object per file.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from ..errors import CaffeFormatError
from ..proto.schema import Schema, resolve_schema
from .options import add_schema_options


def _layer_rows(net, shapes: dict[str, list[tuple[int, ...]]]) -> list[dict[str, Any]]:
    rows = []
    for layer in net.layer:
        rows.append({"name": layer.name, "type": layer.type, "bottom": list(layer.bottom),
                     "top": list(layer.top), "params": [list(s) for s in shapes.get(layer.name, [])]})
    known = {r["name"] for r in rows}
    for name, blob_shapes in shapes.items():  # weights without a layer entry (HDF5)
        if name not in known:
            rows.append({"name": name, "type": "", "bottom": [], "top": [],
                         "params": [list(s) for s in blob_shapes]})
    return rows


def _totals(info: dict[str, Any]) -> None:
    count = sum(math.prod(s) for row in info.get("layers", []) for s in row["params"])
    info["param_count"] = count
    info["param_bytes"] = count * 4  # float32, as Net<float> holds them


def _raw_net_version(net) -> str:
    if any(l.HasField("layer") for l in net.layers):
        return "V0"
    if len(net.layers):
        return "V1"
    return "current"


def _inspect_prototxt(path: str, schema: Schema | None) -> dict[str, Any]:
    """A net prototxt (its version, schema and layers) or else a solver prototxt (its fields)."""
    from google.protobuf import text_format

    from ..io import read_net, read_solver
    from ..io.text import _single_fork_reading, choose_schema, load_text, parse_text
    from ..io.textscan import unknown_fields
    from ..proto.schema import schema_of

    text, _ = load_text(path)
    try:
        chosen = choose_schema(text, schema)
        if unknown_fields(text, chosen.NetParameter.DESCRIPTOR):
            raise _net_problems(path, schema)  # a solver, or the net's complete error
        try:
            raw = parse_text(text, chosen.NetParameter(), path)
        except CaffeFormatError:  # the one fork whose own schema reads it, if any
            found = None if schema is not None else _single_fork_reading(text, path)
            if found is None:
                raise
            raw = found[0]
    except CaffeFormatError as net_error:
        try:
            solver = read_solver(path, schema=schema)
        except CaffeFormatError:
            raise net_error from None
        return {"format": "solver prototxt", "version": "current",
                "solver": text_format.MessageToString(solver)}
    net = read_net(path, schema=schema)
    rows = _layer_rows(net, {})
    for row, included in zip(rows, _in_test_phase(net)):
        row["test"] = included
    return {"format": "net prototxt", "version": _raw_net_version(raw),
            "schema": schema_of(net).name, "name": net.name, "layers": rows}


def _in_test_phase(net) -> list[bool]:
    """Per layer, whether the TEST net (what CaffeNet, convert and parity build unless told
    otherwise) includes it, by Caffe's include/exclude rules."""
    from ..net import filter_net

    test = filter_net(net, "test")
    names = [layer.name for layer in test.layer]
    out, i = [], 0
    for layer in net.layer:  # filter_net copies: match by order and name
        hit = i < len(names) and names[i] == layer.name
        out.append(hit)
        i += hit
    return out


def _net_problems(path: str, schema: Schema | None) -> CaffeFormatError:
    """The net's one complete error: every unknown field (line, layer) and every layer of
    the TEST net whose type has no implementation, as building the net reports them."""
    from ..io.text import parse_net
    from ..io.textscan import problems_error
    from ..layers import registry
    from ..net import filter_net

    net, unknown, where, chosen = parse_net(path, schema=schema)
    missing = [(lp.name, lp.type, f"type '{lp.type}'") for lp in filter_net(net, "test").layer
               if registry.get(lp.type) is None]
    return problems_error(unknown, missing, chosen, path=where)


def inspect_file(path: str, fork: str | None = None, proto: str | None = None, *,
                 schema: Schema | None = None) -> dict[str, Any]:
    """A JSON-ready description of one file (nets and weights read with the Caffe fork schema
    ``fork``/``proto``/``schema`` when given; see :mod:`caffe_import.proto.schema`)."""
    schema = resolve_schema(schema, fork, proto)
    from ..io import detect
    from ..proto import caffe_pb2
    from ..proto.schema import schema_of

    if os.path.isdir(path):
        raise CaffeFormatError("is a folder; expected a Caffe file", path=path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    kind = detect(path)
    info: dict[str, Any] = {"file": path, "format": kind, "size": os.path.getsize(path)}
    if kind == "caffemodel":
        from ..io.binary import read_weights_net, scan_file

        model = scan_file(path)
        info["version"] = model.layout
        shapes = {l.name: [b.shape for b in l.blobs] for l in model.layers if l.blobs}
        info["legacy_blob_shapes"] = any(b.legacy for l in model.layers for b in l.blobs)
        net = read_weights_net(path, schema=schema)
        info["schema"] = schema_of(net).name
        info["name"] = net.name
        info["layers"] = _layer_rows(net, shapes)
        _totals(info)
    elif kind == "hdf5":
        info.update(_inspect_h5(path))
    elif kind == "prototxt":
        info.update(_inspect_prototxt(path, schema))
    elif kind == "binaryproto":
        from ..io import read_mean

        array = read_mean(path)
        info.update({"shape": list(array.shape), "dtype": "float32", "param_count": array.size,
                     "param_bytes": array.nbytes})
    elif kind == "solverstate":
        state = caffe_pb2.SolverState()
        try:
            with open(path, "rb") as fh:
                state.ParseFromString(fh.read())
        except Exception as exc:
            raise CaffeFormatError(f"corrupt solver state: {exc}", path=path) from None
        info.update({"iter": state.iter, "learned_net": state.learned_net,
                     "current_step": state.current_step, "history_blobs": len(state.history)})
    else:
        artefact = _inspect_artefact(path)
        if artefact is None:
            _explain_unknown(path)
        info.update(artefact)
    return info


# ----------------------------------------------------------------------------- own outputs
def _inspect_artefact(path: str) -> dict[str, Any] | None:
    """What ``caffe-import convert`` / ``export`` write, told by content: a caffe_import
    artefact (.pt or .safetensors), a torch.export program (.pt2) or an ONNX model. None for
    anything else. Nothing in the file is run (the .pt is read with ``weights_only``)."""
    import zipfile

    from ..convert import read_converted

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
                return _pt2_info(z, names)
        return _artefact_info(path, read_converted(path), "caffe_import artefact (.pt)")
    try:
        return _artefact_info(path, read_converted(path), "caffe_import artefact (.safetensors)")
    except CaffeFormatError:
        pass
    return _solver_state_info(path) or _onnx_info(path)


def _solver_state_info(path: str) -> dict[str, Any] | None:
    """The solver state ``caffe_import.solver.Solver`` snapshots (``fcn-repro train``'s
    ``*.solverstate.safetensors``), told by its metadata; None for anything else."""
    from safetensors import safe_open

    from ..solver import _STATE_FORMAT

    try:
        with safe_open(path, "np") as f:
            meta, count = f.metadata() or {}, len(f.keys())
    except Exception:  # not safetensors at all
        return None
    if meta.get("format") != _STATE_FORMAT:
        return None
    return {"format": "caffe_import solver state (.safetensors)", "version": _STATE_FORMAT,
            "solver": f"type: {meta.get('type', '?')}", "iter": int(meta.get("iter", 0)),
            "learned_net": meta.get("learned_net", ""), "history_blobs": count}


def _artefact_info(path: str, content: dict[str, Any], kind: str) -> dict[str, Any]:
    from ..convert import stored_net
    from ..proto.schema import schema_of

    net = stored_net(content, path)
    shapes = {layer: [tuple(t.shape) for t in ts] for layer, ts in content["params"].items()}
    info = {"format": kind, "version": f"format version {content['format_version']}",
            "schema": schema_of(net).name, "name": net.name, "phase": content["phase"],
            "stages": list(content["stages"]),
            "level": content["level"], "layers": _layer_rows(net, shapes)}
    _totals(info)
    return info


def _pt2_info(z, names: list[str]) -> dict[str, Any]:
    def read(suffix: str) -> str:
        match = [n for n in names if n.endswith(suffix)]
        return z.read(match[0]).decode(errors="replace").strip() if match else "?"

    weights = [n for n in names if "/data/weights/weight_" in n]
    return {"format": "torch.export program (.pt2)",
            "version": f"archive format {read('archive_format')} {read('archive_version')}",
            "note": f"{len(weights)} weight tensors; load with torch.export.load"}


def _onnx_info(path: str) -> dict[str, Any] | None:
    with open(path, "rb") as fh:
        if fh.read(1) != b"\x08":  # ModelProto starts with ir_version (field 1, varint)
            return None
    try:
        import onnx
    except ImportError:
        if path.lower().endswith(".onnx"):
            return {"format": "ONNX model", "note": "install onnx to see inside"}
        return None
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception:  # not a ModelProto after all
        return None
    graph = model.graph
    params = sum(math.prod(t.dims) for t in graph.initializer)
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    return {"format": "ONNX model", "version": f"IR {model.ir_version}, opset {opsets}",
            "name": graph.name, "producer": f"{model.producer_name} {model.producer_version}",
            "inputs": [_onnx_value(v) for v in graph.input],
            "outputs": [_onnx_value(v) for v in graph.output],
            "note": f"{len(graph.node)} nodes", "param_count": params, "param_bytes": params * 4}


def _onnx_value(v) -> str:
    dims = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
            for d in v.type.tensor_type.shape.dim]
    return f"{v.name} {'x'.join(dims)}"


# First bytes of a binary NetParameter: field 100 (`layer`), 2 (V1 `layers`) or 1 (`name`),
# length-delimited. A file that starts so but does not parse is a damaged caffemodel.
_CAFFEMODEL_STARTS = (b"\xa2\x06", b"\x12", b"\x0a")


def _explain_unknown(path: str) -> None:
    """Raise the clearest error for a file whose kind could not be told."""
    from ..io.binary import scan_file

    with open(path, "rb") as fh:
        head = fh.read(2)
    if not head:
        raise CaffeFormatError("file is empty: expected a caffemodel, .caffemodel.h5, prototxt, "
                               "binaryproto or solverstate", path=path)
    if head.startswith(_CAFFEMODEL_STARTS):
        scan_file(path)  # its error says where the damaged caffemodel breaks
    raise CaffeFormatError("not a Caffe file this tool knows (expected a caffemodel, "
                           ".caffemodel.h5, prototxt, binaryproto or solverstate)", path=path)


def unknown_layer_types(info: dict[str, Any]) -> list[str]:
    """``'name' (type 'T')`` for each layer of a net prototxt that caffe_import cannot build.

    Only net prototxts are judged: a caffemodel's stored layers often include data layers of
    the training net, and its weights are usable all the same.
    """
    from ..layers import registry

    if info.get("format") != "net prototxt":
        return []
    return [f"'{r['name']}' (type '{r['type']}')" for r in info.get("layers", [])
            if r.get("type") and r.get("test", True) and registry.get(r["type"]) is None]


def train_only_unknown_types(info: dict[str, Any]) -> list[str]:
    """Like :func:`unknown_layer_types`, for the layers the TEST net leaves out (a TRAIN
    net, ``--phase train``, would need them)."""
    from ..layers import registry

    if info.get("format") != "net prototxt":
        return []
    return [f"'{r['name']}' (type '{r['type']}')" for r in info.get("layers", [])
            if r.get("type") and not r.get("test", True) and registry.get(r["type"]) is None]


def _inspect_h5(path: str) -> dict[str, Any]:
    import h5py

    from ..io.hdf5 import _layer_groups

    info: dict[str, Any] = {"version": "Caffe HDF5 (/data/<layer>/<i>)"}
    with h5py.File(path, "r") as f:
        if "data" not in f:
            raise CaffeFormatError("HDF5 file has no '/data' group: not Caffe weights", path=path)
        shapes = {}
        for name, group in _layer_groups(f["data"]):
            keys = sorted((k for k in group if k.isdigit()), key=int)
            shapes[name] = [tuple(group[k].shape) for k in keys]
    from ..proto import caffe_pb2
    info["layers"] = _layer_rows(caffe_pb2.NetParameter(), shapes)
    _totals(info)
    return info


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


def _print_text(info: dict[str, Any], out) -> None:
    print(f"{info['file']}: {info['format']}, {info.get('version', '')}".rstrip(", "), file=out)
    if info.get("schema") not in (None, "bvlc"):
        print(f"  schema: {info['schema']} (Caffe fork fields; docs/forks.md)", file=out)
    if info.get("name"):
        print(f"  net name: {info['name']}", file=out)
    if info.get("legacy_blob_shapes"):
        print("  blobs use the legacy num/channels/height/width shape fields", file=out)
    if "shape" in info:
        print(f"  shape: {tuple(info['shape'])} float32", file=out)
    if "solver" in info:
        for line in info["solver"].splitlines():
            print(f"  {line}", file=out)
    if "phase" in info:
        stages = ", stages " + ",".join(info["stages"]) if info["stages"] else ""
        print(f"  phase {info['phase']}{stages}, level {info['level']}", file=out)
    for key in ("producer", "note"):
        if info.get(key):
            print(f"  {info[key]}", file=out)
    for key in ("inputs", "outputs"):
        if info.get(key):
            print(f"  {key}: {'; '.join(info[key])}", file=out)
    if "iter" in info:
        print(f"  iter {info['iter']}, learned_net {info['learned_net']!r}, "
              f"{info['history_blobs']} history blobs", file=out)
    layers = info.get("layers", [])
    if layers:
        width = max(len(r["name"]) for r in layers)
        twidth = max(len(r["type"]) for r in layers)
        for r in layers:
            flow = f"{','.join(r['bottom'])} -> {','.join(r['top'])}"
            params = " ".join("x".join(map(str, s)) or "scalar" for s in r["params"])
            print(f"  {r['name']:<{width}}  {r['type']:<{twidth}}  {flow}"
                  + (f"  [{params}]" if params else ""), file=out)
    if "param_count" in info:
        print(f"  total: {info['param_count']:,} params, {_human(info['param_bytes'])}", file=out)


def _say_problems(info: dict[str, Any]) -> int:
    """Stderr lines for a net's unimplemented layer types; 1 when the TEST net needs one."""
    unknown, later = unknown_layer_types(info), train_only_unknown_types(info)
    sys.stdout.flush()
    if unknown:
        print(f"caffe-import: error: {info['file']}: {len(unknown)} layer(s) of a type "
              f"caffe_import does not implement, so CaffeNet cannot build this net: "
              f"{', '.join(unknown)}", file=sys.stderr)
    if later:
        print(f"caffe-import: note: {info['file']}: layers the TEST net leaves out have a "
              f"type caffe_import does not implement (building the net for another phase "
              f"or stage would fail): {', '.join(later)}", file=sys.stderr)
    return 1 if unknown else 0


def run(args: argparse.Namespace) -> int:
    """Each file in turn; one that cannot be read is an error line, and the others are still
    shown (exit 2 if any failed, else 1 if a net has unimplemented layer types)."""
    from . import describe_os_error

    infos, failed, status = [], 0, 0
    for p in args.files:
        try:
            info = inspect_file(os.fspath(p), schema=args.schema)
        except (CaffeFormatError, OSError) as exc:
            if len(args.files) == 1:
                raise
            failed += 1
            sys.stdout.flush()
            what = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            print(f"caffe-import: error: {what}", file=sys.stderr)
            continue
        infos.append(info)
        if not args.json:
            _print_text(info, sys.stdout)
        status = max(status, _say_problems(info))
    if args.json:
        json.dump(infos, sys.stdout, indent=1)
        print()
    return 2 if failed else status


def register(sub) -> None:
    parser = sub.add_parser("inspect", help="show what a Caffe file holds",
                            description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="caffemodel, .caffemodel.h5, prototxt, binaryproto, solverstate, what "
                             "convert/export write (.pt, .safetensors, .pt2, .onnx), or a solver "
                             "snapshot's .solverstate.safetensors")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_schema_options(parser)
    parser.set_defaults(func=run)
