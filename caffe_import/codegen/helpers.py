"""The helper functions a generated module may call: each one's single home is either the
codegen runtime (``runtime.py``) or, where a layer module already has the pure function, that
module; model.py gets a verbatim copy of those it calls (and of those they call)."""
from __future__ import annotations

import inspect
import re
from typing import Callable, Iterable

from ..forks.yolov2.layers import reorg_index
from ..layers.argmax import caffe_topk
from ..layers.softmax import caffe_softmax
from . import runtime

HELPERS: dict[str, Callable] = {
    name: fn for name, fn in sorted(vars(runtime).items())
    if inspect.isfunction(fn) and fn.__module__ == runtime.__name__}
HELPERS.update(caffe_softmax=caffe_softmax, caffe_topk=caffe_topk, reorg_index=reorg_index)


def _names(text: str) -> set[str]:
    return set(re.findall(r"\b[A-Za-z_]\w*\b", text))


def helper_source(name: str) -> str:
    return inspect.getsource(HELPERS[name]).rstrip() + "\n"


def closure(names: Iterable[str]) -> list[str]:
    """``names`` and every helper they call, callees first, otherwise in sorted order."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order or name in path:
            return
        for callee in sorted(_names(helper_source(name)) & set(HELPERS) - {name}):
            visit(callee, path + (name,))
        order.append(name)

    for name in sorted(set(names)):
        visit(name, ())
    return order
