"""`caffe-import run`: a script's failure is reported as python reports it, without the
command's own frames; a bad Caffe file the script opened names the script line."""
from __future__ import annotations

from caffe_import.cli import main

BAD_NET = 'import caffe\n\nnet = caffe.Net("absent.prototxt", caffe.TEST)\n'
BUG = "def f():\n    return 1 / 0\n\nf()\n"


def test_a_script_bug_shows_only_the_scripts_frames(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bug.py").write_text(BUG)
    assert main(["run", "bug.py"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n  File \"bug.py\", line 4")
    assert 'File "bug.py", line 2, in f' in err and err.rstrip().endswith("division by zero")
    assert "caffe_import" not in err and "runpy" not in err


def test_a_bad_caffe_file_names_the_script_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad_net.py").write_text(BAD_NET)
    assert main(["run", "bad_net.py"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("caffe-import: error: bad_net.py, line 3: ") and "absent.prototxt" in err
    assert "Traceback" not in err


def test_a_missing_script_argument_names_only_the_script(capsys):
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "required: script\n" in err and "args" not in err.split("required:")[1]


def test_output_into_a_closed_pipe_stops_quietly(tmp_path, capsys, monkeypatch):
    """`caffe-import run s.py | head`: the script's BrokenPipeError ends the run as it ends
    every verb (quietly, exit 1), not as an error blamed on a script line."""
    import caffe_import.cli as cli

    monkeypatch.setattr(cli, "_quiet_broken_pipe", lambda: None)
    (tmp_path / "pipe.py").write_text("raise BrokenPipeError(32, 'Broken pipe')\n")
    assert main(["run", str(tmp_path / "pipe.py")]) == 1
    assert "error" not in capsys.readouterr().err


PY2 = 'import caffe\n\nprint "net:", caffe.TEST\n'
PY2_MODULE = "def f():\n    try:\n        pass\n    except ValueError, e:\n        pass\n"


def test_a_python_2_script_gets_pythons_syntax_error_and_one_line_to_port_it(tmp_path, capsys,
                                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "py2.py").write_text(PY2)
    assert main(["run", "py2.py"]) == 1
    err = capsys.readouterr().err
    assert err.startswith('  File "py2.py", line 3\n') and "SyntaxError: Missing parentheses" in err
    (hint,) = [line for line in err.splitlines() if "lib2to3" in line]
    assert hint.startswith("caffe-import: note: py2.py is Python 2") and "-w py2.py" in hint
    assert "Traceback" not in err and "caffe_import" not in err and "runpy" not in err


def test_a_python_2_module_the_script_imports_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "old_layers.py").write_text(PY2_MODULE)
    (tmp_path / "uses.py").write_text("import old_layers\n")
    assert main(["run", "uses.py"]) == 1
    err = capsys.readouterr().err
    assert 'File "uses.py", line 1' in err and "old_layers.py\", line 4" in err
    assert "caffe-import: note: " in err and "lib2to3 -w" in err and "caffe_import" not in err


def test_a_bad_pycaffe_call_ends_at_the_script_line(tmp_path, capsys, monkeypatch):
    """``net.forward(end='nonexistent')``: the script's line and one clear error, none of
    caffe_import's frames (a C++ Caffe has none to show either)."""
    from support.tiny_segmentation import DEPLOY

    monkeypatch.chdir(tmp_path)
    (tmp_path / "deploy.prototxt").write_text(DEPLOY)
    (tmp_path / "end.py").write_text('import caffe\nnet = caffe.Net("deploy.prototxt", caffe.TEST)\n'
                                     'net.forward(end="nonexistent")\n')
    assert main(["run", "end.py"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n  File \"end.py\", line 3")
    assert err.rstrip().splitlines()[-1].startswith(
        "ValueError: forward(end='nonexistent'): no layer named 'nonexistent'")
    assert "caffe_import" not in err and "runpy" not in err
