"""``caffe.draw``: a net's graph (layers as boxes, blobs as octagons), drawn with pydot.

Same drawing as pycaffe's ``draw.py``: layers coloured by type (convolutions red, pooling
orange, inner products purple, in-place layers green), edges labelled with the output count,
optionally the learning-rate multipliers. :func:`graph_spec` builds the graph as plain data
(no pydot needed); :func:`get_pydot_graph`, :func:`draw_net` and :func:`draw_net_to_file`
need ``pydot`` (or ``pydotplus``) and Graphviz, as pycaffe's do.
"""
from __future__ import annotations

from typing import Any

from ..proto import caffe_pb2

LAYER_STYLE_DEFAULT = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}
_COLORS = {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
           "InnerProduct": "#CC33FF"}
_LEARNED = ("Convolution", "Deconvolution", "InnerProduct")


def _pydot():
    try:
        import pydotplus as pydot  # pycaffe's first choice
    except ImportError:
        try:
            import pydot
        except ImportError as exc:
            raise ImportError("caffe.draw needs pydot (pip install pydot) and Graphviz") from exc
    return pydot


def get_edge_label(layer) -> str:
    if layer.type == "Data":
        return f"Batch {layer.data_param.batch_size}"
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer) -> tuple[float, float]:
    if layer.type not in _LEARNED:
        raise ValueError(f"{layer.type} layers do not have a learning rate multiplier")
    mults = [p.lr_mult for p in layer.param] + [1.0, 1.0]
    if len(layer.param) > 2:
        raise ValueError("Could not parse the learning rate multiplier")
    return mults[0], mults[1]


def get_layer_label(layer, rankdir: str, display_lrm: bool = False) -> str:
    sep = " " if rankdir in ("TB", "BT") else r"\n"
    parts = [layer.name]
    if layer.type == "Pooling":
        pool = caffe_pb2.PoolingParameter.PoolMethod.Name(layer.pooling_param.pool)
        parts.append(f"({layer.type} {pool})")
    else:
        parts.append(f"({layer.type})")
    if layer.type == "Pooling":
        p = layer.pooling_param
        k, s, pad = p.kernel_size, p.stride, p.pad
    elif layer.type in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        k = p.kernel_size[0] if len(p.kernel_size) else 1
        s = p.stride[0] if len(p.stride) else 1
        pad = p.pad[0] if len(p.pad) else 0
    if layer.type in ("Convolution", "Deconvolution", "Pooling"):
        parts.append(sep.join([f"kernel size: {k}", f"stride: {s}", f"pad: {pad}"]))
    if display_lrm and layer.type in _LEARNED:
        lrm0, lrm1 = get_layer_lr_mult(layer)
        if lrm0 or lrm1:
            parts.append(f"lr mult: {lrm0:.1f}, {lrm1:.1f}")
    return '"' + sep.join(parts) + '"'


def _included(layer, phase) -> bool:
    if phase is None:
        return True
    if len(layer.include) and len(layer.exclude):
        raise ValueError(f"layer {layer.name} has both include and exclude specified.")
    included = not len(layer.include)
    for rule in layer.include:
        included = included or rule.phase == phase
    for rule in layer.exclude:
        included = included and rule.phase != phase
    return included


def graph_spec(caffe_net, rankdir: str, label_edges: bool = True, phase=None,
               display_lrm: bool = False) -> tuple[dict[str, tuple[str, dict]], list[dict]]:
    """Nodes ``{key: (label, style)}`` and edges ``[{'src', 'dst', 'label'}]`` of the drawing."""
    nodes: dict[str, tuple[str, dict]] = {}
    edges: list[dict] = []
    for layer in caffe_net.layer:
        if not _included(layer, phase):
            continue
        key = f"{layer.name}_{layer.type}"
        in_place = len(layer.bottom) == 1 and list(layer.bottom) == list(layer.top)
        style = NEURON_LAYER_STYLE if in_place else dict(
            LAYER_STYLE_DEFAULT, fillcolor=_COLORS.get(layer.type, "#6495ED"))
        nodes[key] = (get_layer_label(layer, rankdir, display_lrm), style)
        for b in layer.bottom:
            nodes[b + "_blob"] = (b, BLOB_STYLE)
            edges.append({"src": b + "_blob", "dst": key, "label": '""'})
        for t in layer.top:
            nodes[t + "_blob"] = (t, {})
            edges.append({"src": key, "dst": t + "_blob",
                          "label": get_edge_label(layer) if label_edges else '""'})
    return nodes, edges


def get_pydot_graph(caffe_net, rankdir: str, label_edges: bool = True, phase=None,
                    display_lrm: bool = False) -> Any:
    pydot = _pydot()
    graph = pydot.Dot(caffe_net.name or "Net", graph_type="digraph", rankdir=rankdir)
    spec_nodes, spec_edges = graph_spec(caffe_net, rankdir, label_edges, phase, display_lrm)
    nodes = {k: pydot.Node(label, **style) for k, (label, style) in spec_nodes.items()}
    for node in nodes.values():
        graph.add_node(node)
    for e in spec_edges:
        graph.add_edge(pydot.Edge(nodes[e["src"]], nodes[e["dst"]], label=e["label"]))
    return graph


def draw_net(caffe_net, rankdir: str, ext: str = "png", phase=None,
             display_lrm: bool = False) -> bytes:
    """The drawing encoded as ``ext`` (png, pdf, svg, ...)."""
    return get_pydot_graph(caffe_net, rankdir, phase=phase,
                           display_lrm=display_lrm).create(format=ext)


def draw_net_to_file(caffe_net, filename: str, rankdir: str = "LR", phase=None,
                     display_lrm: bool = False) -> None:
    """Write the drawing; the format is the file's extension."""
    ext = filename[filename.rfind(".") + 1:]
    with open(filename, "wb") as fid:
        fid.write(draw_net(caffe_net, rankdir, ext, phase, display_lrm))
