"""Upgrade legacy nets and solvers to the current form, step for step as Caffe does.

Caffe (``src/caffe/util/upgrade_proto.cpp``) applies these in order, to prototxts and to
caffemodels alike:

1. V0 -> V1: a net whose ``layers`` entries wrap a ``V0LayerParameter``; "padding" layers
   are folded into the ``pad`` of the conv/pool layer that consumes them, and each flat V0
   field moves into the V1 sub-message that matches the layer type.
2. Data transformation: ``scale``/``mean_file``/``crop_size``/``mirror`` of V1 Data,
   ImageData and WindowData layers move into ``transform_param``.
3. V1 -> current: ``layers`` become ``layer`` with type strings; ``blobs_lr``,
   ``weight_decay``, ``param`` names and ``blob_share_mode`` become ``ParamSpec`` entries.
4. ``input``/``input_shape``/``input_dim`` become one ``Input`` layer named "input", first.
5. BatchNorm layers with exactly three ``param`` entries get lr_mult = decay_mult = 0.

Where Caffe stops with a fatal error, :class:`CaffeFormatError` is raised; where Caffe only
logs that a V0 field does not apply to the layer type, the field is dropped and a warning is
logged, as Caffe continues too.
"""
from __future__ import annotations

import logging
import os
from typing import Optional

from ..errors import CaffeFormatError
from ..proto import caffe_pb2
from ..proto.catalogue import V1_TYPE_NAMES as FORK_V1_TYPE_NAMES
from ..proto.schema import message_class

log = logging.getLogger(__name__)

V1 = caffe_pb2.V1LayerParameter

V1_TYPE_NAMES = {
    V1.NONE: "", V1.ABSVAL: "AbsVal", V1.ACCURACY: "Accuracy", V1.ARGMAX: "ArgMax",
    V1.BNLL: "BNLL", V1.CONCAT: "Concat", V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    V1.CONVOLUTION: "Convolution", V1.DECONVOLUTION: "Deconvolution", V1.DATA: "Data",
    V1.DROPOUT: "Dropout", V1.DUMMY_DATA: "DummyData", V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    V1.ELTWISE: "Eltwise", V1.EXP: "Exp", V1.FLATTEN: "Flatten", V1.HDF5_DATA: "HDF5Data",
    V1.HDF5_OUTPUT: "HDF5Output", V1.HINGE_LOSS: "HingeLoss", V1.IM2COL: "Im2col",
    V1.IMAGE_DATA: "ImageData", V1.INFOGAIN_LOSS: "InfogainLoss",
    V1.INNER_PRODUCT: "InnerProduct", V1.LRN: "LRN", V1.MEMORY_DATA: "MemoryData",
    V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss", V1.MVN: "MVN",
    V1.POOLING: "Pooling", V1.POWER: "Power", V1.RELU: "ReLU", V1.SIGMOID: "Sigmoid",
    V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss", V1.SILENCE: "Silence",
    V1.SOFTMAX: "Softmax", V1.SOFTMAX_LOSS: "SoftmaxWithLoss", V1.SPLIT: "Split",
    V1.SLICE: "Slice", V1.TANH: "TanH", V1.WINDOW_DATA: "WindowData",
    V1.THRESHOLD: "Threshold",
}

V0_TYPES = {
    "accuracy": V1.ACCURACY, "bnll": V1.BNLL, "concat": V1.CONCAT, "conv": V1.CONVOLUTION,
    "data": V1.DATA, "dropout": V1.DROPOUT, "euclidean_loss": V1.EUCLIDEAN_LOSS,
    "flatten": V1.FLATTEN, "hdf5_data": V1.HDF5_DATA, "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL, "images": V1.IMAGE_DATA, "infogain_loss": V1.INFOGAIN_LOSS,
    "innerproduct": V1.INNER_PRODUCT, "lrn": V1.LRN,
    "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS, "pool": V1.POOLING,
    "relu": V1.RELU, "sigmoid": V1.SIGMOID, "softmax": V1.SOFTMAX,
    "softmax_loss": V1.SOFTMAX_LOSS, "split": V1.SPLIT, "tanh": V1.TANH,
    "window_data": V1.WINDOW_DATA,
}

SOLVER_TYPE_NAMES = {
    caffe_pb2.SolverParameter.SGD: "SGD", caffe_pb2.SolverParameter.NESTEROV: "Nesterov",
    caffe_pb2.SolverParameter.ADAGRAD: "AdaGrad", caffe_pb2.SolverParameter.RMSPROP: "RMSProp",
    caffe_pb2.SolverParameter.ADADELTA: "AdaDelta", caffe_pb2.SolverParameter.ADAM: "Adam",
}

# V0 field -> {V0 type: (V1 sub-message, field, repeated?)}; fields with type None apply to any
_V0_MOVES: dict[str, dict[Optional[str], tuple[str, str, bool]]] = {
    "num_output": {"conv": ("convolution_param", "num_output", False),
                   "innerproduct": ("inner_product_param", "num_output", False)},
    "biasterm": {"conv": ("convolution_param", "bias_term", False),
                 "innerproduct": ("inner_product_param", "bias_term", False)},
    "weight_filler": {"conv": ("convolution_param", "weight_filler", False),
                      "innerproduct": ("inner_product_param", "weight_filler", False)},
    "bias_filler": {"conv": ("convolution_param", "bias_filler", False),
                    "innerproduct": ("inner_product_param", "bias_filler", False)},
    "pad": {"conv": ("convolution_param", "pad", True), "pool": ("pooling_param", "pad", False)},
    "kernelsize": {"conv": ("convolution_param", "kernel_size", True),
                   "pool": ("pooling_param", "kernel_size", False)},
    "group": {"conv": ("convolution_param", "group", False)},
    "stride": {"conv": ("convolution_param", "stride", True),
               "pool": ("pooling_param", "stride", False)},
    "pool": {"pool": ("pooling_param", "pool", False)},
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio", False)},
    "local_size": {"lrn": ("lrn_param", "local_size", False)},
    "alpha": {"lrn": ("lrn_param", "alpha", False)},
    "beta": {"lrn": ("lrn_param", "beta", False)},
    "k": {"lrn": ("lrn_param", "k", False)},
    "source": {"data": ("data_param", "source", False),
               "hdf5_data": ("hdf5_data_param", "source", False),
               "images": ("image_data_param", "source", False),
               "window_data": ("window_data_param", "source", False),
               "infogain_loss": ("infogain_loss_param", "source", False)},
    "scale": {None: ("transform_param", "scale", False)},
    "meanfile": {None: ("transform_param", "mean_file", False)},
    "batchsize": {"data": ("data_param", "batch_size", False),
                  "hdf5_data": ("hdf5_data_param", "batch_size", False),
                  "images": ("image_data_param", "batch_size", False),
                  "window_data": ("window_data_param", "batch_size", False)},
    "cropsize": {None: ("transform_param", "crop_size", False)},
    "mirror": {None: ("transform_param", "mirror", False)},
    "rand_skip": {"data": ("data_param", "rand_skip", False),
                  "images": ("image_data_param", "rand_skip", False)},
    "shuffle_images": {"images": ("image_data_param", "shuffle", False)},
    "new_height": {"images": ("image_data_param", "new_height", False)},
    "new_width": {"images": ("image_data_param", "new_width", False)},
    "concat_dim": {"concat": ("concat_param", "concat_dim", False)},
    "det_fg_threshold": {"window_data": ("window_data_param", "fg_threshold", False)},
    "det_bg_threshold": {"window_data": ("window_data_param", "bg_threshold", False)},
    "det_fg_fraction": {"window_data": ("window_data_param", "fg_fraction", False)},
    "det_context_pad": {"window_data": ("window_data_param", "context_pad", False)},
    "det_crop_mode": {"window_data": ("window_data_param", "crop_mode", False)},
    "hdf5_output_param": {"hdf5_output": ("hdf5_output_param", None, False)},
}


def _where(path: object) -> object:
    return path if path is not None else "<net>"


def net_needs_upgrade(net_param: caffe_pb2.NetParameter) -> bool:
    return (len(net_param.layers) > 0 or len(net_param.input) > 0 or len(net_param.input_shape) > 0
            or len(net_param.input_dim) > 0 or _needs_batchnorm(net_param))


def _fold_padding_layers(net_param: caffe_pb2.NetParameter, path: object) -> caffe_pb2.NetParameter:
    """V0 "padding" layers removed; their pad moved onto the conv/pool layer they feed."""
    out = type(net_param)()
    out.CopyFrom(net_param)
    del out.layers[:]
    last_top: dict[str, int] = {name: -1 for name in net_param.input}
    for i, conn in enumerate(net_param.layers):
        v0 = conn.layer
        if v0.type != "padding":
            out.layers.add().CopyFrom(conn)
        for j, blob in enumerate(conn.bottom):
            if blob not in last_top:
                raise CaffeFormatError(f"unknown bottom blob '{blob}' (no earlier layer or "
                                       "input produces it)", path=_where(path), layer=v0.name)
            src_index = last_top[blob]
            if src_index == -1:
                continue
            src = net_param.layers[src_index]
            if src.layer.type == "padding":
                if v0.type not in ("conv", "pool"):
                    raise CaffeFormatError(f"a padding layer feeds a '{v0.type}' layer; only "
                                           "conv and pool layers can absorb padding",
                                           path=_where(path), layer=v0.name)
                if len(conn.bottom) != 1 or len(src.bottom) != 1 or len(src.top) != 1:
                    raise CaffeFormatError("padding layers and the layers they feed take "
                                           "exactly one blob", path=_where(path), layer=v0.name)
                target = out.layers[len(out.layers) - 1]
                target.layer.pad = src.layer.pad
                target.bottom[j] = src.bottom[0]
        for blob in conn.top:
            last_top[blob] = i
    return out


def _upgrade_v0_layer(conn: caffe_pb2.V1LayerParameter, path: object) -> caffe_pb2.V1LayerParameter:
    out = type(conn)()
    out.bottom.extend(conn.bottom)
    out.top.extend(conn.top)
    if not conn.HasField("layer"):
        return out
    v0 = conn.layer
    if v0.HasField("name"):
        out.name = v0.name
    kind = v0.type
    if v0.HasField("type"):
        if kind not in V0_TYPES:
            raise CaffeFormatError(f"unknown V0 layer type '{kind}'", path=_where(path),
                                   layer=v0.name)
        out.type = V0_TYPES[kind]
    out.blobs.extend(v0.blobs)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)
    for field_name, moves in _V0_MOVES.items():  # messages of any schema: same names
        if not v0.HasField(field_name):
            continue
        move = moves.get(kind) or moves.get(None)
        if move is None:
            log.warning("%s: layer '%s': V0 field %s does not apply to a '%s' layer; dropped "
                        "(Caffe does the same)", _where(path), v0.name, field_name, kind)
            continue
        sub_name, target, repeated = move
        sub = getattr(out, sub_name)
        value = getattr(v0, field_name)
        if target is None:
            sub.CopyFrom(value)
        elif repeated:
            getattr(sub, target).append(value)
        elif field_name in ("weight_filler", "bias_filler"):
            getattr(sub, target).CopyFrom(value)
        elif field_name == "pool":  # V0 and current PoolMethod agree: MAX 0, AVE 1, STOCHASTIC 2
            sub.pool = value
        else:
            setattr(sub, target, value)
    return out


def _upgrade_v0_net(net_param: caffe_pb2.NetParameter, path: object) -> caffe_pb2.NetParameter:
    padded = _fold_padding_layers(net_param, path)
    out = type(net_param)()
    if padded.HasField("name"):
        out.name = padded.name
    for conn in padded.layers:
        out.layers.add().CopyFrom(_upgrade_v0_layer(conn, path))
    out.input.extend(padded.input)
    out.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        out.force_backward = padded.force_backward
    return out


_DATA_TRANSFORM = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                   V1.WINDOW_DATA: "window_data_param"}


def _upgrade_data_transformation(net_param: caffe_pb2.NetParameter) -> None:
    for layer in net_param.layers:
        sub_name = _DATA_TRANSFORM.get(layer.type)
        if sub_name is None:
            continue
        sub = getattr(layer, sub_name)
        for name in ("scale", "mean_file", "crop_size", "mirror"):
            if sub.HasField(name):
                setattr(layer.transform_param, name, getattr(sub, name))
                sub.ClearField(name)


def v1_type_name(v1, path: object = None) -> str:
    """The string type of a V1 layer's ``type`` enum: BVLC's name for BVLC's values, and for
    a fork's own values (a fork schema's LayerType, e.g. DeepLab v1's INTERP = 41) the enum
    name in CamelCase, as the fork's later string types spell them ("Interp")."""
    number = v1.type
    value = v1.DESCRIPTOR.enum_types_by_name["LayerType"].values_by_number.get(number)
    if value is None:
        raise CaffeFormatError(f"unknown V1 layer type {number}", path=_where(path),
                               layer=v1.name)
    if number in V1_TYPE_NAMES and V1.LayerType.Name(number) == value.name:
        return V1_TYPE_NAMES[number]
    return FORK_V1_TYPE_NAMES.get(value.name) or "".join(
        part[:1] + part[1:].lower() for part in value.name.split("_"))




def _upgrade_v1_layer(v1: caffe_pb2.V1LayerParameter, path: object) -> caffe_pb2.LayerParameter:
    out = message_class(v1, "LayerParameter")()
    param_fields = [f.name for f in v1.DESCRIPTOR.fields if f.name.endswith("_param")]
    out.bottom.extend(v1.bottom)
    out.top.extend(v1.top)
    if v1.HasField("name"):
        out.name = v1.name
    out.include.extend(v1.include)
    out.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        out.type = v1_type_name(v1, path)
    out.blobs.extend(v1.blobs)

    def spec(i: int) -> caffe_pb2.ParamSpec:
        while len(out.param) <= i:
            out.param.add()
        return out.param[i]

    for i, name in enumerate(v1.param):
        spec(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        spec(i).share_mode = mode  # V1 and ParamSpec DimCheckMode agree: STRICT 0, PERMISSIVE 1
    for i, lr in enumerate(v1.blobs_lr):
        spec(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        spec(i).decay_mult = decay
    out.loss_weight.extend(v1.loss_weight)
    for name in param_fields:  # a fork's V1 params too (DeepLab v1's interp_param ...)
        if v1.HasField(name):
            getattr(out, name).CopyFrom(getattr(v1, name))
    if v1.HasField("layer"):
        log.warning("%s: layer '%s': a V0 layer nested in a V1 net is ignored (as Caffe does)",
                    _where(path), v1.name)
    return out


def _upgrade_v1_net(net_param: caffe_pb2.NetParameter, path: object) -> caffe_pb2.NetParameter:
    if len(net_param.layer):
        raise CaffeFormatError("the net has both 'layer' (current) and 'layers' (V1) entries; "
                               "Caffe refuses to upgrade it: rewrite it in one form",
                               path=_where(path))
    out = type(net_param)()
    out.CopyFrom(net_param)
    del out.layers[:]
    for v1 in net_param.layers:
        out.layer.add().CopyFrom(_upgrade_v1_layer(v1, path))
    return out


def _upgrade_input(net_param: caffe_pb2.NetParameter, path: object) -> None:
    has_shape, has_dim = len(net_param.input_shape) > 0, len(net_param.input_dim) > 0
    if has_shape or has_dim:
        n = len(net_param.input)
        if has_shape and len(net_param.input_shape) < n:
            raise CaffeFormatError(f"{n} inputs but {len(net_param.input_shape)} input_shape entries",
                                   path=_where(path))
        if not has_shape and len(net_param.input_dim) < 4 * n:
            raise CaffeFormatError(f"{n} inputs need {4 * n} input_dim values, found "
                                   f"{len(net_param.input_dim)}", path=_where(path))
        layer = message_class(net_param, "LayerParameter")(name="input", type="Input")
        for i, name in enumerate(net_param.input):
            layer.top.append(name)
            shape = layer.input_param.shape.add()
            if has_shape:
                shape.CopyFrom(net_param.input_shape[i])
            else:
                shape.dim.extend(net_param.input_dim[4 * i:4 * i + 4])
        layers = [layer] + list(net_param.layer)
        del net_param.layer[:]
        net_param.layer.extend(layers)
    net_param.ClearField("input")
    net_param.ClearField("input_shape")
    net_param.ClearField("input_dim")


def _needs_batchnorm(net_param: caffe_pb2.NetParameter) -> bool:
    return any(l.type == "BatchNorm" and len(l.param) == 3 for l in net_param.layer)


def upgrade_net(net_param: caffe_pb2.NetParameter, path: object = None) -> caffe_pb2.NetParameter:
    """The current form of ``net`` (modified in place and returned)."""
    if any(l.HasField("layer") for l in net_param.layers):
        upgraded = _upgrade_v0_net(net_param, path)
        net_param.Clear()
        net_param.CopyFrom(upgraded)
    _upgrade_data_transformation(net_param)
    if len(net_param.layers):
        upgraded = _upgrade_v1_net(net_param, path)
        net_param.Clear()
        net_param.CopyFrom(upgraded)
    if len(net_param.input):
        _upgrade_input(net_param, path)
    for layer in net_param.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0
    return net_param


def upgrade_solver(solver: caffe_pb2.SolverParameter, path: object = None) -> caffe_pb2.SolverParameter:
    """``solver_type`` enum -> ``type`` string; ``snapshot_prefix`` defaulted as Caffe does.

    Caffe sets an unset ``snapshot_prefix`` to the solver file's path without extension and
    appends the file's stem to a prefix naming an existing directory; both only when the
    solver came from a file (``path`` given).
    """
    if solver.HasField("solver_type"):
        if solver.HasField("type"):
            raise CaffeFormatError("both 'solver_type' (old enum) and 'type' are set; Caffe "
                                   "refuses such a solver", path=_where(path))
        solver.type = SOLVER_TYPE_NAMES[solver.solver_type]
        solver.ClearField("solver_type")
    if path is not None:
        p = os.fspath(path)
        if not solver.HasField("snapshot_prefix"):
            solver.snapshot_prefix = os.path.splitext(p)[0]
        elif os.path.isdir(solver.snapshot_prefix):
            stem = os.path.splitext(os.path.basename(p))[0]
            solver.snapshot_prefix = os.path.join(solver.snapshot_prefix, stem)
    return solver
