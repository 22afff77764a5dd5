"""A small net-spec DSL: write a Caffe net as Python expressions, get a ``NetParameter``.

In the spirit of pycaffe's ``caffe.NetSpec`` / ``caffe.layers`` (our own design and code)::

    n = NetSpec()
    n.data, n.label = L.Python(module="voc_layers", layer="VOCSegDataLayer", ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=3, pad=1, num_output=64,
                            param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    text = n.to_prototxt()

Keyword arguments are routed onto ``LayerParameter`` as pycaffe routes them:

* a name ending in ``param`` (``param``, ``loss_param``, ``convolution_param``, ...) is the
  ``LayerParameter`` field of that name;
* any other name is looked up first in the layer type's own ``<prefix>_param`` sub-message
  (``Convolution`` -> ``convolution_param``, ``InnerProduct`` -> ``inner_product_param``,
  ``ReLU`` -> ``relu_param``, found from the schema's ``XxxParameter`` message names), then on
  ``LayerParameter`` itself (``loss_weight``, ``include``, ``propagate_down``, ...).

Differences from pycaffe, all on the side of catching mistakes early:

* kwargs are checked when the layer is written (``L.Convolution(x, kernal_size=3)`` raises
  :class:`~caffe_import.errors.CaffeFormatError` at once, not at serialisation);
* types that Caffe configures through another type's message take flat kwargs too:
  ``Deconvolution`` and ``Im2col`` use ``convolution_param`` (as Caffe's C++ layers do), so
  ``L.Deconvolution(x, kernel_size=4, stride=2)`` works here where pycaffe fails;
* a top given two different names is an error rather than silently renamed.

Naming follows pycaffe: a top is named by the attribute (or item) it was assigned to; tops
never assigned get ``<Type><k>`` with a per-type counter; a layer is named after its first
top (so ``n.relu1 = L.ReLU(n.conv1, in_place=True)`` is a layer ``relu1`` whose top is
``conv1``); layers are emitted depth-first, inputs before users, in assignment order.

Schemas: ``L``/``P``/``NetSpec()``/``to_proto`` write BVLC's ``caffe_pb2`` messages. A Caffe
fork's fields (SSD's ``norm_param``, ...) need that fork's schema, given once:
``Layers(schema)`` / ``Params(schema)`` / ``NetSpec(schema=...)`` / ``to_proto(...,
schema=...)`` with a :class:`~caffe_import.proto.schema.Schema` (``get_schema("ssd")``). A
net takes the schema given to it, else that of its first fork layer (BVLC's when it has
none); a layer made with another schema is carried over by field name. ``caffe-import run --fork NAME`` gives a pycaffe script
``caffe.layers``/``caffe.params``/``caffe.NetSpec`` bound to that fork's schema.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator, Mapping

from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor

from caffe_import.errors import CaffeFormatError
from caffe_import.proto.schema import BVLC, Schema, bvlc

__all__ = ["NetSpec", "L", "P", "Layers", "Params", "Top", "Function", "to_proto",
           "param_field_for_type", "NotATop"]

# Caffe layer types whose C++ implementation reads another type's parameter message.
_SHARED_PARAM_FIELD = {
    "Deconvolution": "convolution_param",
    "Im2col": "convolution_param",
}


def _param_fields_by_type(schema: Schema) -> dict[str, str]:
    """Map a layer type name to its ``<prefix>_param`` field, from the schema.

    Every ``LayerParameter`` field ``foo_param`` whose message type is ``XxxParameter`` makes
    type ``Xxx`` use ``foo_param`` (``InnerProductParameter`` -> ``inner_product_param``,
    ``ReLUParameter`` -> ``relu_param``, ``PythonParameter`` -> ``python_param``).
    """
    out: dict[str, str] = {}
    for field in schema.LayerParameter.DESCRIPTOR.fields:
        if field.message_type is None or not field.name.endswith("_param"):
            continue
        msg = field.message_type.name
        if msg.endswith("Parameter") and msg not in ("ParamSpec",):
            out.setdefault(msg[: -len("Parameter")], field.name)
    out.update(_SHARED_PARAM_FIELD)
    return out


_TYPE_PARAM_FIELD: dict[int, dict[str, str]] = {}  # id(schema.pool) -> type -> field; a cache


def param_field_for_type(type_name: str, schema: Schema | None = None) -> str | None:
    """The ``LayerParameter`` sub-message field a layer type's flat kwargs go to, if any, in
    ``schema`` (default BVLC's: a fork's own types, SSD's ``Normalize`` -> ``norm_param``,
    are in its schema only)."""
    schema = schema or bvlc()
    table = _TYPE_PARAM_FIELD.get(id(schema.pool))
    if table is None:
        table = _TYPE_PARAM_FIELD[id(schema.pool)] = _param_fields_by_type(schema)
    return table.get(type_name)


def _is_repeated(field: FieldDescriptor) -> bool:
    # protobuf >= 5 has FieldDescriptor.is_repeated; older ones only the label
    rep = getattr(field, "is_repeated", None)
    if isinstance(rep, bool):
        return rep
    return field.label == FieldDescriptor.LABEL_REPEATED


def _convert_scalar(field: FieldDescriptor, value: Any, where: str) -> Any:
    """Coerce a Python value for a scalar field; enum values may be given by name."""
    if field.type == FieldDescriptor.TYPE_ENUM:
        if isinstance(value, str):
            ev = field.enum_type.values_by_name.get(value)
            if ev is None:
                names = ", ".join(v.name for v in field.enum_type.values)
                raise CaffeFormatError(f"{where}: {field.name} must be one of {names}, got {value!r}")
            return ev.number
        if isinstance(value, bool) or not isinstance(value, int) or value not in field.enum_type.values_by_number:
            raise CaffeFormatError(f"{where}: {field.name} is not a valid {field.enum_type.name} value: {value!r}")
        return value
    if field.type == FieldDescriptor.TYPE_BOOL and not isinstance(value, bool):
        raise CaffeFormatError(f"{where}: {field.name} expects true/false, got {value!r}")
    return value


def assign_fields(msg: Any, values: Mapping[str, Any], where: str) -> None:
    """Set ``values`` onto protobuf message ``msg`` recursively.

    A dict becomes a nested message, a list of dicts repeated messages, a scalar given for a
    repeated field a one-element list, an enum may be given by name. Unknown names and
    ill-typed values raise :class:`CaffeFormatError` mentioning ``where``.
    """
    fields = msg.DESCRIPTOR.fields_by_name
    for key, value in values.items():
        field = fields.get(key)
        if field is None:
            raise CaffeFormatError(f"{where}: {msg.DESCRIPTOR.name} has no field {key!r}")
        _assign_one(msg, field, value, f"{where}: {key}")


def _assign_one(msg: Any, field: FieldDescriptor, value: Any, where: str) -> None:
    is_msg = field.type == FieldDescriptor.TYPE_MESSAGE
    try:
        if _is_repeated(field):
            items = list(value) if isinstance(value, (list, tuple)) else [value]
            target = getattr(msg, field.name)
            for item in items:
                if is_msg:
                    if not isinstance(item, Mapping):
                        raise CaffeFormatError(f"{where} expects dicts (one {field.message_type.name} each), got {item!r}")
                    assign_fields(target.add(), item, where)
                else:
                    target.append(_convert_scalar(field, item, where))
        elif is_msg:
            if not isinstance(value, Mapping):
                raise CaffeFormatError(f"{where} expects a dict ({field.message_type.name}), got {value!r}")
            sub = getattr(msg, field.name)
            sub.SetInParent()
            assign_fields(sub, value, where)
        else:
            setattr(msg, field.name, _convert_scalar(field, value, where))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, CaffeFormatError):
            raise
        raise CaffeFormatError(f"{where}: {exc}") from None


class Top:
    """One output blob of a :class:`Function` (``fn.tops[index]``)."""

    __slots__ = ("fn", "index", "hint")

    def __init__(self, fn: "Function", index: int) -> None:
        self.fn = fn
        self.index = index
        self.hint: str | None = None  # the name it was last assigned under, for messages

    def __repr__(self) -> str:
        label = self.hint or f"<{self.fn.type_name} top {self.index}>"
        return f"Top({label})"

    def to_proto(self) -> Any:
        """The net producing this top, with auto-generated names."""
        return to_proto(self)


class NotATop(CaffeFormatError, TypeError):
    """A layer's input is not a top made by another layer (pycaffe raises ``TypeError``, with
    this message)."""


class Function:
    """A layer call: type, input tops, the parameters (as a partial ``LayerParameter`` of
    ``schema``, BVLC's by default)."""

    def __init__(self, type_name: str, inputs: tuple[Top, ...], kwargs: dict[str, Any],
                 schema: Schema | None = None) -> None:
        self.schema = schema or bvlc()
        for i, bottom in enumerate(inputs):
            if not isinstance(bottom, Top):
                raise NotATop(f"{type_name} input {i} is not a Top (type is {type(bottom)})")
        self.type_name = type_name
        self.inputs = inputs
        self.ntop = int(kwargs.pop("ntop", 1))
        self.in_place = bool(kwargs.pop("in_place", False))
        if self.ntop < 0:
            raise CaffeFormatError(f"L.{type_name}: ntop must be >= 0, got {self.ntop}")
        if self.in_place and len(inputs) != self.ntop:
            raise CaffeFormatError(
                f"L.{type_name}: in_place needs as many bottoms as tops ({len(inputs)} vs {self.ntop})")
        self.kwargs = dict(kwargs)
        self.param = self._build_param(kwargs)
        self.tops = tuple(Top(self, i) for i in range(self.ntop))

    def _build_param(self, kwargs: dict[str, Any]) -> Any:
        where = f"L.{self.type_name}"
        lp = self.schema.LayerParameter()
        lp_fields = lp.DESCRIPTOR.fields_by_name
        own = param_field_for_type(self.type_name, self.schema)
        for key in ("name", "type", "bottom", "top"):
            if key in kwargs:
                raise CaffeFormatError(f"{where}: {key!r} is set by the net spec, not by a keyword")
        for key, value in kwargs.items():
            if key.endswith("param"):
                if key not in lp_fields:
                    raise CaffeFormatError(f"{where}: LayerParameter has no field {key!r}")
                _assign_one(lp, lp_fields[key], value, f"{where}: {key}")
                continue
            if own is not None and key in lp_fields[own].message_type.fields_by_name:
                sub = getattr(lp, own)
                _assign_one(sub, sub.DESCRIPTOR.fields_by_name[key], value, f"{where}: {own}.{key}")
                sub.SetInParent()
            elif key in lp_fields:
                _assign_one(lp, lp_fields[key], value, f"{where}: {key}")
            else:
                home = f"{own} or LayerParameter" if own else "LayerParameter (this type has no own parameter message)"
                raise CaffeFormatError(f"{where}: unknown keyword {key!r}: not a field of {home}")
        return lp

    def param_with_type(self) -> Any:
        """The parameters with ``type`` (and the name hint, if any) filled in."""
        lp = self.schema.LayerParameter()
        lp.CopyFrom(self.param)
        lp.type = self.type_name
        if self.tops and self.tops[0].hint:
            lp.name = self.tops[0].hint
        return lp

    def layer_param(self, names: Mapping[Top, str], fn_name: str | None = None) -> Any:
        """This layer as a full ``LayerParameter`` given the names of every top involved."""
        lp = self.schema.LayerParameter()
        if self.tops:
            lp.name = names[self.tops[0]]
        else:
            lp.name = fn_name or self.type_name
        lp.type = self.type_name
        lp.bottom.extend(blob_name(b, names) for b in self.inputs)
        lp.top.extend(blob_name(t, names) for t in self.tops)
        lp.MergeFrom(self.param)
        return lp

    def __repr__(self) -> str:
        return f"Function({self.type_name}, ntop={self.ntop})"


def blob_name(top: Top, names: Mapping[Top, str]) -> str:
    """The blob a top writes: its own name, or for an in-place layer its bottom's blob."""
    while top.fn.in_place:
        top = top.fn.inputs[top.index]
    return names[top]


def _call_result(fn: Function) -> Top | tuple[Top, ...] | Function:
    if fn.ntop == 0:
        return fn
    if fn.ntop == 1:
        return fn.tops[0]
    return fn.tops


class Layers:
    """``L.<Type>(*bottoms, **kwargs)`` makes a layer of Caffe type ``<Type>``, its
    parameters in ``schema`` (BVLC's by default)."""

    def __init__(self, schema: Schema | None = None) -> None:
        self.schema = schema or bvlc()

    def __getattr__(self, type_name: str):
        if type_name.startswith("__"):
            raise AttributeError(type_name)

        def make(*bottoms: Top, **kwargs: Any):
            return _call_result(Function(type_name, tuple(bottoms), kwargs, self.schema))

        make.__name__ = type_name
        return make


class _EnumNamespace:
    """``P.Pooling.MAX`` -> ``PoolingParameter.MAX`` (enum values by message)."""

    def __init__(self, message: Any) -> None:
        self._message = message

    def __getattr__(self, name: str) -> int:
        for enum in self._message.DESCRIPTOR.enum_types:
            if name in enum.values_by_name:
                return enum.values_by_name[name].number
        raise AttributeError(f"{self._message.DESCRIPTOR.name} has no enum value {name!r}")


class Params:
    """``P.<Type>.<VALUE>``: the enum values of ``<Type>Parameter`` in ``schema`` (BVLC's by
    default)."""

    def __init__(self, schema: Schema | None = None) -> None:
        self.schema = schema or bvlc()

    def __getattr__(self, type_name: str) -> _EnumNamespace:
        if type_name.startswith("__"):
            raise AttributeError(type_name)
        try:
            message = self.schema.message(f"{type_name}Parameter")
        except KeyError:
            raise AttributeError(f"no {type_name}Parameter message in the schema") from None
        return _EnumNamespace(message)


L = Layers()
P = Params()

_SPEC_SLOTS = ("_tops", "_fn_names", "_schema")


class NetSpec:
    """Named tops, assigned as attributes (``n.conv1 = ...``) or items (``n["conv1"] = ...``).

    A value may be a :class:`Top` or, for layers with no tops (``ntop=0``), the
    :class:`Function` itself.
    """

    def __init__(self, schema: Schema | None = None) -> None:
        object.__setattr__(self, "_tops", OrderedDict())
        object.__setattr__(self, "_schema", schema)

    def __setattr__(self, name: str, value: Top | Function) -> None:
        if name in _SPEC_SLOTS:
            object.__setattr__(self, name, value)
            return
        if not isinstance(value, (Top, Function)):
            raise CaffeFormatError(f"NetSpec.{name}: expected a layer top, got {value!r}")
        for other, existing in self._tops.items():
            if existing is value and other != name:
                raise CaffeFormatError(
                    f"NetSpec.{name}: this top is already named {other!r}; a blob has one name")
        if isinstance(value, Top):
            value.hint = name
        self._tops[name] = value

    def __getattr__(self, name: str) -> Top | Function:
        try:
            return self._tops[name]
        except KeyError:
            raise AttributeError(f"NetSpec has no top {name!r}") from None

    __setitem__ = __setattr__

    def __getitem__(self, name: str) -> Top | Function:
        return self.__getattr__(name)

    def __contains__(self, name: str) -> bool:
        return name in self._tops

    def __iter__(self) -> Iterator[str]:
        return iter(self._tops)

    def to_proto(self, name: str | None = None) -> Any:
        """The ``NetParameter`` (no net name unless given, no legacy inputs), of the schema
        given to the spec, else of its first fork layer, else BVLC's."""
        return _emit(self._tops, name, schema=self._schema)

    def to_prototxt(self, name: str | None = None) -> str:
        """``to_proto()`` as prototxt text, fields in field-number order as Caffe prints them."""
        return text_format.MessageToString(self.to_proto(name))


def to_proto(*tops: Top, name: str | None = None, schema: Schema | None = None) -> Any:
    """The net producing ``tops``, every blob auto-named ``<Type><k>``; a ``NetParameter`` of
    ``schema`` (default: its first fork layer's, else BVLC's)."""
    return _emit(OrderedDict((f"\0{i}", t) for i, t in enumerate(tops)), name, assigned=False,
                 schema=schema)


def _carried(lp: Any, schema: Schema) -> Any:
    """A layer made with another schema, as ``schema``'s ``LayerParameter`` (by field name)."""
    if type(lp) is schema.LayerParameter:
        return lp
    moved = schema.LayerParameter()
    try:
        text_format.Parse(text_format.MessageToString(lp), moved)
    except text_format.ParseError as exc:
        raise CaffeFormatError(f"NetSpec: layer '{lp.name}' ({lp.type}) sets a field schema "
                               f"{schema.name!r} lacks: {exc}") from None
    return moved


def _emit(named: Mapping[str, Top | Function], net_name: str | None,
          assigned: bool = True, schema: Schema | None = None) -> Any:
    names: dict[Top, str] = {}
    fn_names: dict[Function, str] = {}
    if assigned:
        for key, value in named.items():
            if isinstance(value, Top):
                names[value] = key
            else:
                fn_names[value] = key
    counters: dict[str, int] = {}
    taken = set(names.values()) | set(fn_names.values())

    def auto(type_name: str) -> str:
        while True:
            k = counters.get(type_name, 0) + 1
            counters[type_name] = k
            candidate = f"{type_name}{k}"
            if candidate not in taken:
                taken.add(candidate)
                return candidate

    layers: list[tuple[Schema, Any]] = []
    done: set[Function] = set()

    def visit(fn: Function, stack: tuple[Function, ...]) -> None:
        if fn in done:
            return
        if fn in stack:  # cannot happen with tops made by calls, but be safe
            raise CaffeFormatError(f"NetSpec: cycle through a {fn.type_name} layer")
        for bottom in fn.inputs:
            visit(bottom.fn, stack + (fn,))
        for t in fn.tops:
            if t not in names:
                names[t] = auto(fn.type_name)
        for b in fn.inputs:
            if b not in names:  # its producer was visited above, so it has a name
                names[b] = auto(b.fn.type_name)
        if not fn.tops and fn not in fn_names:
            fn_names[fn] = auto(fn.type_name)
        layers.append((fn.schema, fn.layer_param(names, fn_names.get(fn))))
        done.add(fn)

    for value in named.values():
        visit(value.fn if isinstance(value, Top) else value, ())
    # BVLC's fields are in every schema: a fork's layer decides the net's schema
    schema = schema or next((s for s, _ in layers if s.name != BVLC), bvlc())
    net = schema.NetParameter()
    if net_name:
        net.name = net_name
    net.layer.extend(_carried(lp, schema) for _, lp in layers)
    return net
