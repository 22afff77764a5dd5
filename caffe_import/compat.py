"""The differences between the Python, torch and protobuf versions pyproject.toml admits, in
one place, so that the rest of the package is written for one API.

The floors (Python 3.10, torch 2.1, protobuf 4.21; the rest in ``.ci/floor-constraints.txt``)
are tested by ``.ci/run``'s second suite run. A feature that needs a newer torch says so in
one line through :func:`require_torch`, naming the version (the ``TORCH_FOR_*`` constants).

This module imports only the standard library (and :mod:`.errors`, which imports nothing) at
load time, and torch inside the functions about torch: ``caffe_import.io`` uses it and must
not load torch (the commands set OpenMP's threads before torch loads: ``threads.py``).
"""
from __future__ import annotations

import re
import sys
from typing import Any

from .errors import UsageError

#: ``torch.export`` (``.pt2``) and the ONNX exporter built on it (``dynamo=True``, what
#: ``export_onnx`` uses). Before 2.8, ``torch.export`` cannot trace the generator-based context
#: managers around the net's forward (``CaffeNet.only_steps_for``, which limits an export to
#: the requested outputs, and ``precision_scope``; torch 2.1-2.7), and ``torch.onnx.export``
#: has no ``dynamo=`` before 2.5. .ci/run tests the exports on torch 2.8.0.
TORCH_FOR_EXPORT = "2.8"


def torch_version() -> tuple[int, int]:
    """``(major, minor)`` of the running torch (``"2.1.0+cpu"`` -> ``(2, 1)``)."""
    import torch  # lazy: see the module's docstring

    found = re.match(r"(\d+)\.(\d+)", torch.__version__)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def torch_at_least(version: str) -> bool:
    """Whether the running torch is ``version`` (``"2.8"``) or newer."""
    wanted = tuple(int(p) for p in version.split(".")[:2])
    return torch_version() >= wanted


def require_torch(version: str, feature: str) -> None:
    """``UsageError`` in one line, naming ``feature`` and the torch it needs, unless the
    running torch is ``version`` or newer."""
    if not torch_at_least(version):
        import torch  # lazy: see the module's docstring

        raise UsageError(f"{feature} needs torch >= {version} (this is torch "
                         f"{torch.__version__}); the rest of the package works from torch 2.1")


def is_compiling() -> bool:
    """Whether torch.compile / torch.export (dynamo) is tracing the caller:
    ``torch.compiler.is_compiling`` from torch 2.3; before, dynamo's own spelling (torch 2.1
    and 2.2 fold ``torch._dynamo.is_compiling()`` to True while tracing)."""
    import torch  # lazy: see the module's docstring (dynamo traces an import of a loaded module)

    check = getattr(torch.compiler, "is_compiling", None)
    if check is None:  # torch 2.1-2.2
        import torch._dynamo  # lazy: heavy, and only torch < 2.3 lacks torch.compiler's spelling

        check = torch._dynamo.is_compiling
    return bool(check())


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)`` (Python 3.11+): the note is printed under the exception's message
    in the traceback. Python 3.10 has no notes: there the note goes into ``__notes__`` and,
    for an exception whose message is its one string argument (RuntimeError, ValueError,
    TypeError ... : torch's errors), onto the end of that message, so a user still sees it."""
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:
        _add_note_py310(exc, note)


def _add_note_py310(exc: BaseException, note: str) -> None:
    notes = getattr(exc, "__notes__", None)
    exc.__notes__ = [*(notes if isinstance(notes, list) else []), note]  # type: ignore[attr-defined]
    if type(exc).__str__ is BaseException.__str__:
        if not exc.args:
            exc.args = (note,)
        elif len(exc.args) == 1 and isinstance(exc.args[0], str):
            exc.args = (f"{exc.args[0]}\n{note}",)


def field_names(descriptor: Any) -> list[str]:
    """The field names of a protobuf message ``descriptor``, in declaration order (iterating
    ``fields_by_name`` yields descriptors, not names, on protobuf 4.21.0-4.21.2)."""
    return [field.name for field in descriptor.fields]


__all__ = ["TORCH_FOR_EXPORT", "torch_version", "torch_at_least", "require_torch",
           "is_compiling", "add_note", "field_names"]
