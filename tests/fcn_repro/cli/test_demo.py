"""fcn-repro demo's command line: where it writes by default stays out of version control."""
from __future__ import annotations

import subprocess

import pytest

from fcn_repro.cli import build_parser
from support import ROOT


def test_the_default_output_folder_is_ignored_by_git():
    if not (ROOT / ".gitignore").is_file():
        pytest.skip("not a source checkout")
    default = build_parser().parse_args(["demo"]).output
    assert not default.is_absolute()
    out = subprocess.run(["git", "check-ignore", "-q", "--no-index", f"{default}/demo_label.png"],
                         cwd=ROOT, capture_output=True)
    if out.returncode == 128:
        pytest.skip(f"git cannot answer here: {out.stderr.decode().strip()}")
    assert out.returncode == 0, f"{default}/ is not in .gitignore"
