"""Find every field a prototxt names that its schema does not have, with line numbers.

protobuf's text parser stops at the first unknown field (or, with ``allow_unknown_field``,
skips them silently). To report them all at once, with the layer each sits in, this module
walks the text's structure against the message descriptors: field names, ``:``, scalar
values, ``{...}`` / ``<...>`` blocks and ``[...]`` lists. It checks names only; values and
syntax are left to protobuf's parser, which still parses the file afterwards. Text it
cannot follow ends the walk quietly (the parser then reports the syntax error).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from ..compat import field_names
from ..errors import CaffeFormatError
from ..proto.schema import fork_names, get_schema

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\f\v]+) | (?P<nl>\n) | (?P<comment>\#[^\n]*)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<punct>[{}<>:\[\],;])
  | (?P<word>[A-Za-z0-9_.+\-]+)
  | (?P<bad>.)
""", re.VERBOSE)


@dataclass(frozen=True)
class UnknownField:
    """A field name the schema's message does not define."""

    line: int
    column: int
    name: str
    message: str  # the message type it was written in, e.g. "LayerParameter"
    path: str  # where in the net, e.g. "layer[12].norm_param"
    layer: Optional[str] = None  # the enclosing layer's name, when inside one
    layer_type: Optional[str] = None
    close: Optional[str] = None  # the message's field name it most likely misspells

    def describe(self) -> str:
        where = f"line {self.line}"
        if self.layer is not None or self.layer_type is not None:
            where += f", layer '{self.layer or '?'}'"
            if self.layer_type:
                where += f" ({self.layer_type})"
        return f"{where}: unknown field '{self.name}' in {self.message}"


def _repeated(field: Any) -> bool:
    """protobuf 7 has ``is_repeated``; older versions only ``label``."""
    flag = getattr(field, "is_repeated", None)
    return bool(flag) if flag is not None else field.label == field.LABEL_REPEATED


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
        return value[1:-1].replace('\\"', '"').replace("\\'", "'")
    return value


class _Stop(Exception):
    pass


def _tokens(text: str) -> list[tuple[str, str, int, int]]:
    out = []
    line, line_start = 1, 0
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "nl":
            line += 1
            line_start = m.end()
        elif kind in ("ws", "comment"):
            continue
        elif kind == "bad":
            break
        else:
            out.append((kind, m.group(), line, m.start() - line_start + 1))
    return out


class _Walker:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.found: list[dict[str, Any]] = []

    def peek(self) -> Optional[tuple[str, str, int, int]]:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str, int, int]:
        tok = self.peek()
        if tok is None:
            raise _Stop
        self.i += 1
        return tok

    def skip_block(self, close: str) -> None:
        opens = {"}": "{", ">": "<", "]": "["}
        depth = 1
        while depth:
            kind, value, _, _ = self.take()
            if kind != "punct":
                continue
            if value == opens.get(close):
                depth += 1
            elif value == close:
                depth -= 1

    def scalar(self) -> str:
        kind, value, _, _ = self.take()
        if kind not in ("word", "str"):
            raise _Stop
        while kind == "str" and (self.peek() or ("",))[0] == "str":
            value += self.take()[1]  # adjacent strings concatenate
        return value

    def message(self, desc: Any, close: Optional[str], path: str) -> dict[str, str]:
        """Walk one message's fields up to ``close``; return its ``name``/``type`` scalars."""
        scalars: dict[str, str] = {}
        while True:
            tok = self.peek()
            if tok is None:
                if close is None:
                    return scalars
                raise _Stop
            kind, value, line, col = self.take()
            if kind == "punct" and value == close:
                return scalars
            if kind == "punct" and value in ",;":
                continue
            if kind != "word":
                if value == "[":  # an extension or Any name: [pkg.ext]
                    self.skip_block("]")
                    self.field_value(None, path)
                    continue
                raise _Stop
            field = desc.fields_by_name.get(value)
            if field is None:
                field = desc.fields_by_name.get(value.lower())  # group syntax
                if field is not None and field.type != field.TYPE_GROUP:
                    field = None
            if field is None:
                near = difflib.get_close_matches(value, field_names(desc), 1, 0.8)
                self.found.append(dict(line=line, column=col, name=value, message=desc.name,
                                       path=f"{path}.{value}".lstrip("."),
                                       close=near[0] if near else None))
            index = scalars.get(f"#{value}", "0")
            scalars[f"#{value}"] = str(int(index) + 1)
            sub = f"{path}.{value}".lstrip(".")
            if field is not None and _repeated(field):
                sub += f"[{index}]"
            got = self.field_value(field, sub)
            if got is not None and value in ("name", "type"):
                scalars[value] = _unquote(got)

    def field_value(self, field: Any, path: str) -> Optional[str]:
        tok = self.peek()
        if tok is not None and tok[1] == ":":
            self.take()
            tok = self.peek()
        if tok is None:
            raise _Stop
        if tok[1] in ("{", "<"):
            self.take()
            self.sub_message(field, "}" if tok[1] == "{" else ">", path)
            return None
        if tok[1] == "[":
            self.take()
            index = 0
            while True:
                nxt = self.peek()
                if nxt is None:
                    raise _Stop
                if nxt[1] == "]":
                    self.take()
                    return None
                if nxt[1] == ",":
                    self.take()
                    continue
                if nxt[1] in ("{", "<"):
                    self.take()
                    self.sub_message(field, "}" if nxt[1] == "{" else ">", f"{path}[{index}]")
                else:
                    self.scalar()
                index += 1
        return self.scalar()

    def sub_message(self, field: Any, close: str, path: str) -> None:
        desc = getattr(field, "message_type", None) if field is not None else None
        if desc is None:
            self.skip_block(close)
            return
        start = len(self.found)
        scalars = self.message(desc, close, path)
        if desc.name in ("LayerParameter", "V1LayerParameter", "V0LayerParameter"):
            for item in self.found[start:]:
                item.setdefault("layer", scalars.get("name", path))
                item.setdefault("layer_type", scalars.get("type"))


def unknown_fields(text: str, descriptor: Any) -> list[UnknownField]:
    """Every field name in ``text`` that the message ``descriptor`` (e.g. NetParameter's)
    and its sub-messages do not define, in file order."""
    walker = _Walker(text)
    try:
        walker.message(descriptor, None, "")
    except _Stop:
        pass
    return [UnknownField(**item) for item in walker.found]


_SHOWN = 3  # lines per field name / layer type before the rest are summarised

REGISTER_EXAMPLE = '''\
    from caffe_import.layers.base import CaffeLayer
    from caffe_import.layers.registry import register

    @register("{type}")
    class {cls}(CaffeLayer):
        def top_shapes(self, bottom_shapes): return [bottom_shapes[0]]
        def forward(self, x): return (x,)'''


def forks_knowing(message: str, name: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """Shipped forks whose schema has field ``name`` in ``message``."""
    out = []
    for fork in fork_names():
        if fork in exclude:
            continue
        try:
            desc = get_schema(fork).pool.FindMessageTypeByName(f"caffe.{message}")
        except KeyError:
            continue
        if name in desc.fields_by_name:
            out.append(fork)
    return out


def _unknown_lines(unknown: list[UnknownField], selected: tuple[str, ...],
                   hints: dict[str, list[str]]) -> list[str]:
    """Three lines per unknown field name, then the rest of its places by line; ``hints``
    collects which forks know which names."""
    lines: list[str] = []
    groups: dict[tuple[str, str], list[UnknownField]] = {}
    for item in unknown:
        groups.setdefault((item.message, item.name), []).append(item)
    for (message, name), items in groups.items():
        forks = forks_knowing(message, name, exclude=selected)
        close = items[0].close
        note = (f" (a field of fork {', '.join(forks)})" if forks else
                f" (did you mean '{close}'?)" if close else "")
        for fork in forks:
            hints.setdefault(fork, []).append(name)
        lines += [f"  {item.describe()}{note}" for item in items[:_SHOWN]]
        if len(items) > _SHOWN:
            lines.append(f"  ... '{name}' {len(items) - _SHOWN} more time(s), at lines "
                         + ", ".join(str(i.line) for i in items[_SHOWN:]))
    return lines


def _missing_lines(missing: list[tuple[str, str, str]],
                   known_types: Sequence[str] = ()) -> list[str]:
    """Three layers per missing type, then the rest by name; a type close to a known one
    says which (``did you mean 'Convolution'?``)."""
    lines: list[str] = []
    by_type: dict[str, list[tuple[str, str]]] = {}
    for name, type_name, what in missing:
        by_type.setdefault(type_name, []).append((name, what))
    for type_name, entries in by_type.items():
        close = close_type(type_name, known_types) if type_name != "Python" else None
        note = f": did you mean '{close}'?" if close else ""
        lines += [f"  layer '{name}' ({what}{note})" for name, what in entries[:_SHOWN]]
        if len(entries) > _SHOWN:
            lines.append(f"  ... and {len(entries) - _SHOWN} more layer(s) of type "
                         f"'{type_name}': " + ", ".join(f"'{n}'" for n, _ in entries[_SHOWN:]))
    return lines


def _schema_advice(unknown: list[UnknownField], hints: dict[str, list[str]],
                   given: Optional[str]) -> list[str]:
    """The closing line on the schema: the fork whose fields these are, else (unless every
    unknown name looks like a typo, each shown with its close name) where schemas come from.
    ``given``: the user's own proto file, which then plainly lacks these fields."""
    if hints:
        best = max(hints, key=lambda f: len(hints[f]))
        if given:
            return [f"The given proto {given} does not define these fields; they belong to "
                    f"Caffe fork {best}'s schema: pass fork='{best}' (--fork {best}) instead, "
                    "or a caffe.proto that defines them."]
        return [f"These fields belong to a Caffe fork's schema: pass fork='{best}' "
                f"(--fork {best}); or give the fork's own caffe.proto with proto=FILE "
                "(--proto FILE)."]
    if not any(item.close is None for item in unknown):
        return []
    if given:
        return [f"The given proto {given} does not define these fields: give the caffe.proto "
                "of the Caffe that wrote the net; known forks: fork=NAME (--fork NAME)."]
    return ["If the net comes from a Caffe fork, give that fork's caffe.proto with "
            "proto=FILE (--proto FILE); known forks: fork=NAME (--fork NAME)."]


def close_type(type_name: str, known_types: Sequence[str]) -> Optional[str]:
    """The known layer type ``type_name`` most likely misspells (``Convolutoin`` ->
    ``Convolution``; case is ignored, as a reader's eye ignores it), else None."""
    folded = {t.lower(): t for t in known_types if t != type_name}
    match = difflib.get_close_matches(type_name.lower(), list(folded), n=1, cutoff=0.8)
    return folded[match[0]] if match else None


def problems_error(unknown: list[UnknownField], missing: list[tuple[str, str, str]],
                   schema: Any = None, path: object = None,
                   known_types: Sequence[str] = ()) -> "Exception":
    """One CaffeFormatError listing every unknown field (with its line and layer), every
    layer whose type has no implementation, and how to fix each kind. ``known_types``: the
    layer types something implements (the layer registry's); a missing type close to one of
    them is shown as a likely typo, and the recipe for registering a new type is given only
    for types close to none."""
    lines: list[str] = []
    selected = (schema.name,) if schema is not None and schema.fork else ()
    given = schema.name[len("proto:"):] if schema is not None and schema.name.startswith("proto:") else None
    if len(unknown) == 1 and not missing:
        item = unknown[0]
        forks = forks_knowing(item.message, item.name, exclude=selected)
        layer = f" (layer '{item.layer}')" if item.layer else ""
        if forks:
            hint = (f"; it is a field of Caffe fork {', '.join(forks)}: pass fork='{forks[0]}' "
                    f"(--fork {forks[0]})" + (f" instead of the given proto {given}, which does "
                                             "not define it" if given else ""))
        elif item.close:
            hint = f"; did you mean '{item.close}'?"
        elif given:
            hint = f"; the given proto {given} does not define it"
        else:
            hint = ("; a net from a Caffe fork needs its schema: fork=NAME (--fork NAME) or "
                    "proto=FILE (--proto FILE)")
        return CaffeFormatError(f"unknown field '{item.name}' in {item.message}{layer}{hint}",
                                path=path, line=item.line, column=item.column)
    hints: dict[str, list[str]] = {}
    if unknown:
        lines.append(f"{len(unknown)} unknown field(s) for the "
                     f"{'default' if schema is None else repr(schema.name)} Caffe schema:")
        lines += _unknown_lines(unknown, selected, hints)
    if missing:
        lines.append(f"{len(missing)} layer(s) of a type with no implementation:")
        lines += _missing_lines(missing, known_types)
    lines += _schema_advice(unknown, hints, given)
    plain = [t for _, t, _ in missing
             if t != "Python" and close_type(t, known_types) is None]
    if plain:
        first = plain[0]
        cls = re.sub(r"\W", "", first) or "MyLayer"
        lines.append("To add a layer type, register a class in your own module and import "
                     "it before building the net:\n" + REGISTER_EXAMPLE.format(type=first, cls=cls))
    return CaffeFormatError("\n".join(lines), path=path)
