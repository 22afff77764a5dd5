"""The dispatcher both commands share (caffe_import/cli/__init__.py): ``--version``."""
from __future__ import annotations

import importlib.metadata
import re

import pytest

import caffe_import.cli as caffe_cli
import fcn_repro
import fcn_repro.cli as fcn_cli
from caffe_import.version import __version__


@pytest.mark.parametrize("cli, prog, version", [(caffe_cli, "caffe-import", __version__),
                                                (fcn_cli, "fcn-repro", fcn_repro.__version__)])
def test_version_names_the_package_and_torch(capsys, cli, prog, version):
    assert cli.main(["--version"]) == 0
    line = capsys.readouterr().out.strip()
    torch = importlib.metadata.version("torch")
    assert line.startswith(f"{prog} {version} (torch {torch}, Python ")
    assert re.fullmatch(r".*, Python \d+\.\d+\.\d+\)", line)
