"""The project's two exception types: bad Caffe files and bad requests."""
from __future__ import annotations


class CaffeFormatError(ValueError):
    """A file, net or layer is not what Caffe would accept.

    The message always names where (the file, the layer, the line) and what was expected.
    ``path``, ``layer`` and ``line`` are kept as attributes for programs that want them.
    """

    def __init__(self, message: str, *, path: object = None, layer: str | None = None,
                 line: int | None = None, column: int | None = None) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}" + (f", column {column}" if column is not None else ""))
        if layer is not None:
            where.append(f"layer '{layer}'")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")
        self.path = path
        self.layer = layer
        self.line = line
        self.column = column


class UsageError(ValueError):
    """A request the project cannot carry out: an unknown model, dataset, split or option value,
    a missing argument, an output in the way. Not about a Caffe file (that is
    :class:`CaffeFormatError`). The CLIs print its message on one line and exit 2."""
