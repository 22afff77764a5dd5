"""Python identifiers for Caffe's layer and blob names: sanitised, unique, never a keyword, a
name the generated module itself uses, or an ``nn.Module`` attribute."""
from __future__ import annotations

import builtins
import keyword
import re

from torch import nn

#: names model.py binds at module level or uses inside forward
RESERVED = frozenset({"self", "torch", "nn", "F", "math", "values", "index", "outputs",
                      "_", "l", "O", "I"})
#: what an attribute may not be called: nn.Module's members and the generated class's own
_MODULE_NAMES = frozenset(dir(nn.Module())) | {"loss_weights"}


def identifier(name: str) -> str:
    """``name`` with every character outside ``[A-Za-z0-9_]`` as ``_``, not starting with a
    digit (``conv4_3_norm/mbox`` -> ``conv4_3_norm_mbox``, ``1x1`` -> ``_1x1``)."""
    text = re.sub(r"\W", "_", name, flags=re.ASCII) or "_"
    return f"_{text}" if text[0].isdigit() else text


class Namer:
    """Hands out distinct identifiers; ``taken`` ones (and the reserved ones) are never given."""

    def __init__(self, taken=(), attributes: bool = False) -> None:
        self.used: set[str] = set(taken) | RESERVED
        if attributes:
            self.used |= _MODULE_NAMES
        self.given: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name in self.given:
            return self.given[name]
        base = identifier(name)
        if keyword.iskeyword(base) or base in dir(builtins):
            base += "_"
        out, k = base, 1
        while out in self.used:
            k += 1
            out = f"{base}_{k}"
        self.used.add(out)
        self.given[name] = out
        return out
