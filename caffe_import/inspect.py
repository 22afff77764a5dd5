"""What a file holds, judged by its content: :func:`inspect` describes one file, its
:class:`FileInfo` renders as text or JSON and names the layer types caffe_import lacks.

Caffe's files (caffemodel, .caffemodel.h5, net and solver prototxt, binaryproto, solverstate)
and the project's own outputs: the artefacts ``convert`` writes (.pt, .safetensors), torch.export
programs (.pt2), ONNX models and the solver snapshots ``caffe_import.solver.Solver`` writes.

For each file: the detected format and version, then (nets and weights) every layer with
its type and bottoms -> tops, and (weights: caffemodels, artefacts, ONNX) the param blob shapes
and the total parameter count and bytes; a net prototxt holds no weights, so it has neither,
but its TEST net is built (no weights, nothing run) for its input and blob shapes, or the
reason it does not build is said; its Python layers are flagged with what they need. The
stored activations ``caffe-import dump`` writes (``reference.h5``) are listed blob by blob.
"""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import h5py
from google.protobuf import text_format
from safetensors import safe_open

from .convert import read_converted, stored_net
from .errors import CaffeFormatError, UsageError
from .io import detect, read_mean, read_solver
from .io.binary import read_weights_net, scan_file
from .io.hdf5 import layer_groups
from .io.text import choose_schema, load_text, parse_net, parse_text
from .io.textscan import problems_error, unknown_fields
from .layers import registry
from .layers.python_layer import DEFAULT_PYTHON_LAYERS, PythonLayerRegistry, builtin_python_layers
from .net import CaffeNet, filter_net
from .parity.reference import is_reference, reference_shapes
from .proto import caffe_pb2
from .proto.schema import Schema, detected_schema, resolve_schema
from .solver import STATE_FORMAT

__all__ = ["FileInfo", "inspect", "render"]


@dataclass
class FileInfo:
    """One file's description. ``data`` is JSON-ready (what ``caffe-import inspect --json``
    prints): ``file``, ``format``, ``size`` and, by format, ``version``, ``schema``, ``name``,
    ``layers`` (``name``, ``type``, ``bottom``, ``top``, ``params`` shapes; for a net prototxt
    also ``test``: whether the TEST net includes it), ``param_count``, ``param_bytes``, ..."""

    data: dict[str, Any]

    @property
    def file(self) -> str:
        return self.data["file"]

    def as_dict(self) -> dict[str, Any]:
        return self.data

    def text(self) -> str:
        """The human-readable description: a header line, then one indented line per fact
        and per layer, then the totals."""
        return render(self.data)

    def unknown_layer_types(self) -> list[str]:
        """``'name' (type 'T')`` for each layer of a net prototxt's TEST net that caffe_import
        cannot build.

        Only net prototxts are judged: a caffemodel's stored layers often include data layers
        of the training net, and its weights are usable all the same.
        """
        return self._unimplemented(in_test_net=True)

    def train_only_unknown_types(self) -> list[str]:
        """Like :meth:`unknown_layer_types`, for the layers the TEST net leaves out (a TRAIN
        net, ``--phase train``, would need them)."""
        return self._unimplemented(in_test_net=False)

    def _unimplemented(self, in_test_net: bool) -> list[str]:
        if self.data.get("format") != "net prototxt":
            return []
        return [f"'{r['name']}' (type '{r['type']}')" for r in self.data.get("layers", [])
                if r.get("type") and r.get("test", True) == in_test_net
                and registry.get(r["type"]) is None]


def inspect(path: str | os.PathLike, *, fork: str | None = None,
            proto: str | os.PathLike | None = None, schema: Schema | None = None,
            input_shapes: Mapping[str, Sequence[int]] | None = None,
            python_layers: PythonLayerRegistry | None = None) -> FileInfo:
    """Describe one file, its kind told by content (nets and weights read with the Caffe fork
    schema ``fork``/``proto``/``schema`` when given; see :mod:`caffe_import.proto.schema`).
    A net prototxt's TEST net is built as ``CaffeNet`` builds it, with ``input_shapes`` and
    ``python_layers`` (for its blob shapes; an ``input_shapes`` name the net lacks is an error).

    Raises ``CaffeFormatError`` for a file of no known kind or a damaged one (the error says
    where it breaks), ``FileNotFoundError`` for a missing one."""
    path = os.fspath(path)
    schema = resolve_schema(schema, fork, proto)
    if os.path.isdir(path):
        raise CaffeFormatError("is a folder; expected a Caffe file", path=path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    kind = detect(path)
    info: dict[str, Any] = {"file": path, "format": kind, "size": os.path.getsize(path)}
    if kind == "caffemodel":
        info.update(_inspect_caffemodel(path, schema))
    elif kind == "hdf5":
        info.update(_inspect_h5(path))
    elif kind == "prototxt":
        info.update(_inspect_prototxt(path, schema))
        if info["format"] == "net prototxt":
            _add_shapes(info, path, schema, input_shapes or {}, python_layers)
    elif kind == "binaryproto":
        array = read_mean(path)
        info.update({"shape": list(array.shape), "dtype": "float32", "param_count": array.size,
                     "param_bytes": array.nbytes})
    elif kind == "solverstate":
        info.update(_inspect_solverstate(path))
    else:
        artefact = _inspect_artefact(path)
        if artefact is None:
            _explain_unknown(path)
        info.update(artefact)
    return FileInfo(info)


# ----------------------------------------------------------------------------- Caffe's files
def _inspect_caffemodel(path: str, schema: Schema | None) -> dict[str, Any]:
    model = scan_file(path)
    shapes = {l.name: [b.shape for b in l.blobs] for l in model.layers if l.blobs}
    net_param = read_weights_net(path, schema=schema)
    info = {"version": model.layout,
            "legacy_blob_shapes": any(b.legacy for l in model.layers for b in l.blobs),
            "schema": detected_schema(net_param), "name": net_param.name,
            "layers": _layer_rows(net_param, shapes)}
    _totals(info)
    return info


def _inspect_solverstate(path: str) -> dict[str, Any]:
    state = caffe_pb2.SolverState()
    try:
        with open(path, "rb") as fh:
            state.ParseFromString(fh.read())
    except Exception as exc:
        raise CaffeFormatError(f"corrupt solver state: {exc}", path=path) from None
    return {"iter": state.iter, "learned_net": state.learned_net,
            "current_step": state.current_step, "history_blobs": len(state.history)}


def _inspect_prototxt(path: str, schema: Schema | None) -> dict[str, Any]:
    """A net prototxt (its version, schema and layers) or else a solver prototxt (its fields)."""
    try:
        net_param, raw = _read_net_prototxt(path, schema)
    except CaffeFormatError as net_error:
        try:
            solver = read_solver(path, schema=schema)
        except CaffeFormatError:
            raise net_error from None
        return {"format": "solver prototxt", "version": "current",
                "solver": text_format.MessageToString(solver)}
    rows = _layer_rows(net_param, {})
    for row, included in zip(rows, _in_test_phase(net_param)):
        row["test"] = included
    return {"format": "net prototxt", "version": _raw_net_version(raw),
            "schema": detected_schema(net_param), "name": net_param.name, "layers": rows}


def _read_net_prototxt(path: str, schema: Schema | None) -> tuple[Any, Any]:
    """``(net, raw)``: the net upgraded, and as written (which tells its version). A text
    with fields the schema lacks (a solver, or a net with errors) raises the net's one
    complete error: every unknown field (line, layer) and every layer of the TEST net whose
    type has no implementation, as building the net reports them."""
    text, _ = load_text(path)
    if unknown_fields(text, choose_schema(text, schema).NetParameter.DESCRIPTOR):
        net_param, unknown, where, chosen = parse_net(path, schema=schema)
        missing = [(lp.name, lp.type, f"type '{lp.type}'")
                   for lp in filter_net(net_param, "test").layer
                   if registry.get(lp.type, fork=chosen.fork) is None]
        raise problems_error(unknown, missing, chosen, path=where,
                             known_types=registry.known_types())
    net_param, _, where, chosen = parse_net(path, schema=schema)  # chosen: what read it
    return net_param, parse_text(text, chosen.NetParameter(), where)


def _raw_net_version(net_param: Any) -> str:
    if any(l.HasField("layer") for l in net_param.layers):
        return "V0"
    if len(net_param.layers):
        return "V1"
    return "current"


def _in_test_phase(net_param: Any) -> list[bool]:
    """Per layer, whether the TEST net (what CaffeNet, convert and parity build unless told
    otherwise) includes it, by Caffe's include/exclude rules."""
    test = filter_net(net_param, "test")
    names = [layer.name for layer in test.layer]
    out, i = [], 0
    for layer in net_param.layer:  # filter_net copies: match by order and name
        hit = i < len(names) and names[i] == layer.name
        out.append(hit)
        i += hit
    return out


def _inspect_h5(path: str) -> dict[str, Any]:
    info: dict[str, Any] = {"version": "Caffe HDF5 (/data/<layer>/<i>)"}
    with h5py.File(path, "r") as f:
        if is_reference(f):
            return _inspect_reference(path)
        if "data" not in f:
            raise CaffeFormatError("HDF5 file has no '/data' group: not Caffe weights", path=path)
        shapes = {}
        for name, group in layer_groups(f["data"]):
            keys = sorted((k for k in group if k.isdigit()), key=int)
            shapes[name] = [tuple(group[k].shape) for k in keys]
    info["layers"] = _layer_rows(caffe_pb2.NetParameter(), shapes)
    _totals(info)
    return info


def _add_shapes(info: dict[str, Any], path: str, schema: Schema | None,
                input_shapes: Mapping[str, Sequence[int]],
                python_layers: PythonLayerRegistry | None) -> None:
    """The TEST net's input and blob shapes (``inputs``, each row's ``top_shapes``), built
    as ``CaffeNet`` builds it, without weights and running nothing; else ``shapes_unknown``:
    why it does not build. Each Python layer's row gets ``python``: what it needs."""
    _flag_python_layers(info["layers"], python_layers or DEFAULT_PYTHON_LAYERS)
    try:
        net = CaffeNet(path, schema=schema, input_shapes=input_shapes,
                       python_layers=python_layers)
    except (CaffeFormatError, UsageError) as exc:
        said, named = str(exc), f"{getattr(exc, 'path', None)}: "
        info["shapes_unknown"] = said[len(named):] if said.startswith(named) else said
        return
    unknown = [n for n in input_shapes if n not in net.inputs]
    if unknown:
        raise CaffeFormatError(f"the net has no input blob {unknown[0]!r} "
                               f"(inputs: {', '.join(net.inputs) or 'none'})", path=path)
    shapes = net.blob_shapes
    info["inputs"] = [f"{n} {_dims(shapes[n])}" for n in net.inputs]
    for row in info["layers"]:
        if row.get("test", True):
            row["top_shapes"] = [list(shapes[t]) if t in shapes else None for t in row["top"]]


def _flag_python_layers(rows: list[dict[str, Any]], python_layers: PythonLayerRegistry) -> None:
    """``python`` for each ``type: "Python"`` row: the module and class it names, whether a
    class is registered for them, and caffe_import's built-in one if there is."""
    offered = builtin_python_layers()
    registered = python_layers.entries()
    for row in rows:
        if "python" in row:
            key = (row["python"]["module"], row["python"]["layer"])
            builtin = offered.get(".".join(key))
            row["python"].update(registered=key in registered,
                                 builtin=builtin[1] if builtin else None)


def _inspect_reference(path: str) -> dict[str, Any]:
    """The stored activations ``caffe-import dump`` writes (and Caffe's references): the phase,
    what wrote them, and the shape of every array (see :mod:`caffe_import.parity.reference`)."""
    held = reference_shapes(path)
    info: dict[str, Any] = {"format": "stored activations (parity reference)",
                            "version": f"phase {held['phase'].upper()}",
                            "producer": str(held["attrs"].get("caffe", "")),
                            "inputs": [f"{n} {_dims(s)}" for n, s in held.get("inputs", {}).items()],
                            "stored": {k: v for k, v in held.items()
                                       if k not in ("attrs", "phase", "inputs")}}
    return info


def _dims(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _layer_rows(net_param: Any, shapes: dict[str, list[tuple[int, ...]]]) -> list[dict[str, Any]]:
    rows = []
    for layer in net_param.layer:
        rows.append({"name": layer.name, "type": layer.type, "bottom": list(layer.bottom),
                     "top": list(layer.top), "params": [list(s) for s in shapes.get(layer.name, [])]})
        if layer.type == "Python":
            rows[-1]["python"] = {"module": layer.python_param.module,
                                  "layer": layer.python_param.layer}
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


# ----------------------------------------------------------------------------- own outputs
def _inspect_artefact(path: str) -> dict[str, Any] | None:
    """What ``caffe-import convert`` / ``export`` write, told by content: a caffe_import
    artefact (.pt or .safetensors), a torch.export program (.pt2) or an ONNX model. None for
    anything else. Nothing in the file is run (the .pt is read with ``weights_only``)."""
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
    try:
        with safe_open(path, "np") as f:
            meta, count = f.metadata() or {}, len(f.keys())
    except Exception:  # not safetensors at all
        return None
    if meta.get("format") != STATE_FORMAT:
        return None
    return {"format": "caffe_import solver state (.safetensors)", "version": STATE_FORMAT,
            "solver": f"type: {meta.get('type', '?')}", "iter": int(meta.get("iter", 0)),
            "learned_net": meta.get("learned_net", ""), "history_blobs": count}


def _artefact_info(path: str, content: dict[str, Any], kind: str) -> dict[str, Any]:
    net_param = stored_net(content, path)
    shapes = {layer: [tuple(t.shape) for t in ts] for layer, ts in content["params"].items()}
    info = {"format": kind, "version": f"format version {content['format_version']}",
            "schema": detected_schema(net_param), "name": net_param.name, "phase": content["phase"],
            "stages": list(content["stages"]),
            "level": content["level"], "layers": _layer_rows(net_param, shapes)}
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
        import onnx  # lazy: optional dependency (the onnx extra)
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
    with open(path, "rb") as fh:
        head = fh.read(2)
    if not head:
        raise CaffeFormatError("file is empty: expected a caffemodel, .caffemodel.h5, prototxt, "
                               "binaryproto or solverstate", path=path)
    if head.startswith(_CAFFEMODEL_STARTS):
        scan_file(path)  # its error says where the damaged caffemodel breaks
    raise CaffeFormatError("not a Caffe file this tool knows (expected a caffemodel, "
                           ".caffemodel.h5, prototxt, binaryproto or solverstate)", path=path)



# ----------------------------------------------------------------------------- text
def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


def _layer_lines(layers: list[dict[str, Any]]) -> list[str]:
    """One line per layer (tops with their shapes where known, params in brackets), and under
    each Python layer what it needs."""
    if not layers:
        return []
    out = []
    width = max(len(r["name"]) for r in layers)
    twidth = max(len(r["type"]) for r in layers)
    for r in layers:
        shapes = r.get("top_shapes") or [None] * len(r["top"])
        tops = ",".join(t + (f" ({_dims(s)})" if s is not None else "")
                        for t, s in zip(r["top"], shapes))
        params = " ".join("x".join(map(str, s)) or "scalar" for s in r["params"])
        out.append(f"  {r['name']:<{width}}  {r['type']:<{twidth}}  {','.join(r['bottom'])} -> "
                   f"{tops}" + (f"  [{params}]" if params else ""))
        if "registered" in r.get("python", {}):
            out.append("    " + _python_need(r["python"]))
    return out


def _python_need(python: dict[str, Any]) -> str:
    """What a Python layer needs to build, in one line."""
    name = f"{python['module']}.{python['layer']}"
    if python["registered"]:
        return f"Python layer {name}: a class is registered for it"
    if python["builtin"]:
        return (f"Python layer {name}: needs a class; caffe_import has one built in: "
                f"--builtin-python-layer {name} (Python: {python['builtin']})")
    return (f"Python layer {name}: needs a class, registered with "
            "caffe_import.layers.python_layer.register_python_layer (see docs/pycaffe.md)")


def _stored_lines(stored: dict[str, Any]) -> list[str]:
    """The arrays of a stored-activation file, group by group."""
    out = []
    titles = {"blobs": "blobs", "blob_diffs": "blob gradients", "params": "param blobs",
              "diffs": "param gradients"}
    for group, title in titles.items():
        if group not in stored:
            continue
        entries = [(n, s) for n, s in stored[group].items()] if group in ("blobs", "blob_diffs") \
            else [(f"{n}[{i}]", s) for n, shapes in stored[group].items() for i, s in enumerate(shapes)]
        out.append(f"  {title}: {len(entries)}")
        width = max((len(n) for n, _ in entries), default=0)
        out.extend(f"    {n:<{width}}  {_dims(s)}" for n, s in entries)
    return out


def render(info: dict[str, Any]) -> str:
    """The text ``caffe-import inspect`` prints for one file's description (``FileInfo.data``)."""
    out: list[str] = []
    out.append(f"{info['file']}: {info['format']}, {info.get('version', '')}".rstrip(", "))
    if info.get("schema") not in (None, "bvlc"):
        out.append(f"  schema: {info['schema']} (Caffe fork fields; docs/forks.md)")
    if info.get("name"):
        out.append(f"  net name: {info['name']}")
    if info.get("legacy_blob_shapes"):
        out.append("  blobs use the legacy num/channels/height/width shape fields")
    if "shape" in info:
        out.append(f"  shape: {tuple(info['shape'])} float32")
    if "solver" in info:
        out.extend(f"  {line}" for line in info["solver"].splitlines())
    if "phase" in info:
        stages = ", stages " + ",".join(info["stages"]) if info["stages"] else ""
        out.append(f"  phase {info['phase']}{stages}, level {info['level']}")
    for key in ("producer", "note"):
        if info.get(key):
            out.append(f"  {info[key]}")
    for key in ("inputs", "outputs"):
        if info.get(key):
            out.append(f"  {key}: {'; '.join(info[key])}")
    if "iter" in info:
        out.append(f"  iter {info['iter']}, learned_net {info['learned_net']!r}, "
                   f"{info['history_blobs']} history blobs")
    if info.get("shapes_unknown"):
        why = info["shapes_unknown"].splitlines()  # the first problem where a list follows
        out.append("  blob shapes: not known, the TEST net does not build: "
                   + (f"{why[0]} {why[1].strip()}" if why[0].endswith(":") and len(why) > 1
                      else why[0]))
    out.extend(_layer_lines(info.get("layers", [])))
    out.extend(_stored_lines(info.get("stored", {})))
    if "param_count" in info:
        out.append(f"  total: {info['param_count']:,} params, {_human(info['param_bytes'])}")
    return "\n".join(out)
