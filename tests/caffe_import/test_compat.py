"""caffe_import.compat: one API over the Python, torch and protobuf versions pyproject.toml
admits (Python 3.10+, torch 2.1+, protobuf 4.21+); .ci/run runs this suite at those floors."""
from __future__ import annotations

import os
import subprocess
import sys
import traceback

import pytest
import torch

from caffe_import import compat
from caffe_import.errors import UsageError
from caffe_import.proto import caffe_pb2
from support import ROOT


def test_torch_version_and_at_least():
    major, minor = compat.torch_version()
    assert torch.__version__.startswith(f"{major}.{minor}")
    assert compat.torch_at_least("2.1")
    assert compat.torch_at_least(f"{major}.{minor}")
    assert not compat.torch_at_least(f"{major}.{minor + 1}")
    assert not compat.torch_at_least(f"{major + 1}.0")


def test_require_torch_says_in_one_line_what_needs_which_torch():
    compat.require_torch("2.1", "anything")
    with pytest.raises(UsageError) as err:
        compat.require_torch("99.0", "the frobnicator")
    message = str(err.value)
    assert "\n" not in message
    assert f"the frobnicator needs torch >= 99.0 (this is torch {torch.__version__})" in message


def test_is_compiling_is_false_eagerly_and_true_under_torch_compile():
    assert compat.is_compiling() is False

    def f(x):
        return x + 1 if compat.is_compiling() else x - 1

    assert torch.equal(torch.compile(f, backend="eager")(torch.zeros(2)), torch.ones(2))


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _raised(exc: BaseException, note: str, add) -> BaseException:
    try:
        try:
            raise exc
        except Exception as e:
            add(e, note)
            raise
    except Exception as e:
        return e


@pytest.mark.parametrize("add", [compat.add_note, compat._add_note_py310],
                         ids=["this-python", "python-3.10-path"])
def test_add_note_shows_the_note_with_the_error(add):
    """On Python 3.10 (no BaseException.add_note) the note still reaches the user: in
    ``__notes__`` and in the message; the error keeps its type and its own message."""
    e = _raised(RuntimeError("shapes do not match"), "in Caffe layer 'fc7'", add)
    assert type(e) is RuntimeError
    assert e.__notes__ == ["in Caffe layer 'fc7'"]
    shown = _format(e)
    assert "RuntimeError: shapes do not match" in shown and "in Caffe layer 'fc7'" in shown
    add(e, "second")
    assert e.__notes__ == ["in Caffe layer 'fc7'", "second"]


def test_add_note_py310_leaves_messages_it_cannot_extend_alone():
    """A KeyError's message is the repr of its key, an OSError's is built from its errno:
    the note goes only to ``__notes__`` there."""
    key = _raised(KeyError("fc7"), "note", compat._add_note_py310)
    assert key.args == ("fc7",) and key.__notes__ == ["note"]
    bare = _raised(ValueError(), "note", compat._add_note_py310)
    assert str(bare) == "note"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="BaseException.add_note is Python 3.11+")
def test_add_note_uses_python_notes_where_they_exist():
    e = _raised(ValueError("bad"), "note", compat.add_note)
    assert str(e) == "bad" and e.__notes__ == ["note"]


def test_field_names_are_names_in_declaration_order():
    desc = caffe_pb2.PoolingParameter.DESCRIPTOR
    names = compat.field_names(desc)
    assert names == [f.name for f in desc.fields]
    assert all(isinstance(n, str) for n in names) and "kernel_size" in names


def test_io_does_not_load_torch(tmp_path):
    """compat imports torch only inside its torch functions: caffe_import.io (which uses
    compat) stays torch-free, so the commands can set OpenMP's threads before torch loads."""
    code = "import sys, caffe_import.io; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "False"
