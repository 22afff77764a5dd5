"""A non-editable install carries everything the package reads at run time.

`pip install .` (no `-e`) copies only what the wheel lists, so a data file missing from
``[tool.setuptools.package-data]`` works in the checkout and fails on a user's machine. This
builds the wheel from a copy of the sources (the checkout's ``build/`` is neither used nor
touched) and checks its file list against the asset folders on disk.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
import pytest

from support import ROOT
PACKAGES = ("caffe_import", "fcn_repro")

# What the run-time code opens by path (demo.py, data/_layout.py, the proto module), named
# explicitly so that deleting one from the tree fails here too, not only in the wheel.
REQUIRED = (
    "caffe_import/proto/caffe_pb2.py",
    "caffe_import/proto/caffe.proto",
    "fcn_repro/assets/voc_fcn8s_narrow/net.prototxt",
    "fcn_repro/assets/voc_fcn8s_narrow/weights.caffemodel",
    "fcn_repro/assets/voc_fcn8s_narrow/reference.h5",
    "fcn_repro/assets/voc_fcn8s_narrow/meta.json",
    "fcn_repro/assets/fcn_release/demo/image.jpg",
    "fcn_repro/assets/fcn_release/demo/label.png",
    "fcn_repro/assets/fcn_release/data/pascal/classes.txt",
    "fcn_repro/assets/fcn_release/data/pascal/seg11valid.txt",
    "fcn_repro/assets/fcn_release/data/pascal-context/classes-59.txt",
    "fcn_repro/assets/fcn_release/data/pascal-context/classes-400.txt",
    "fcn_repro/assets/fcn_release/data/nyud/classes.txt",
    "fcn_repro/assets/fcn_release/data/nyud/val.txt",
    "fcn_repro/assets/fcn_release/data/sift-flow/classes.txt",
    "fcn_repro/assets/fcn_release/data/sift-flow/test.txt",
    "caffe_import/cli/__init__.py",
    "fcn_repro/cli/__init__.py",
)


def _source_files() -> list[str]:
    """Every file of the two packages as the checkout has it (caches left out)."""
    out = []
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                out.append(path.relative_to(ROOT).as_posix())
    return sorted(out)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    try:
        import setuptools  # noqa: F401  (--no-build-isolation builds with the installed one)
    except ImportError:
        pytest.skip("setuptools is not installed: cannot build a wheel offline")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
           "--no-index", "-q", "-w", str(dist), str(src)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot run pip wheel: {exc}")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        if any("No module named pip" in line for line in tail):
            pytest.skip("pip is not available")
        pytest.fail("pip wheel failed:\n" + "\n".join(tail))
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return zipfile.ZipFile(wheels[0])


def test_wheel_holds_the_assets_the_code_opens(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    missing = [f for f in REQUIRED if f not in names]
    assert not missing, f"wheel lacks run-time files: {missing}"


def test_wheel_holds_every_file_of_both_packages(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    missing = [f for f in _source_files() if f not in names]
    assert not missing, f"in the tree but not in the wheel (add to package-data): {missing}"


def test_wheel_bundles_the_real_weights_not_a_pointer(wheel: zipfile.ZipFile) -> None:
    on_disk = (ROOT / "fcn_repro/assets/voc_fcn8s_narrow/weights.caffemodel").stat().st_size
    info = wheel.getinfo("fcn_repro/assets/voc_fcn8s_narrow/weights.caffemodel")
    assert info.file_size == on_disk > 100_000


def test_wheel_declares_both_commands(wheel: zipfile.ZipFile) -> None:
    entry = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    text = wheel.read(entry).decode()
    assert "caffe-import = caffe_import.cli:main" in text
    assert "fcn-repro = fcn_repro.cli:main" in text


def test_wheel_carries_no_tests_or_build_leftovers(wheel: zipfile.ZipFile) -> None:
    tops = {n.split("/", 1)[0] for n in wheel.namelist()}
    assert tops <= set(PACKAGES) | {n for n in tops if n.endswith(".dist-info")}, tops


def test_wheel_states_its_python_and_brings_the_onnx_runtime(wheel: zipfile.ZipFile) -> None:
    meta = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Python: >=3.10" in meta  # `str | os.PathLike` at module level needs 3.10
    for extra in ("onnx", "test"):
        # setuptools < 71 writes extra == 'onnx', later ones extra == "onnx"
        assert re.search(rf'Requires-Dist: onnxruntime[^;\n]*; extra == ["\']{extra}["\']', meta), extra


def test_wheel_states_its_license_as_an_spdx_expression(wheel: zipfile.ZipFile) -> None:
    """project.license is an SPDX string (a {text = ...} table is deprecated by setuptools,
    which warns on every build), and the build asks for a setuptools that reads it."""
    meta = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: BSD-2-Clause" in meta
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "BSD-2-Clause"', text, re.M)
    floor = re.search(r'^requires = \[[^\]]*"setuptools>=(\d+)', text, re.M)
    assert floor and int(floor[1]) >= 77, "setuptools reads an SPDX project.license from 77 on"


def _release(version: str) -> tuple[int, ...]:
    """``"9"`` and ``"9.0"`` alike: the numbers, trailing zeros dropped."""
    numbers = [int(n) for n in version.split(".")]
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def test_readmes_version_table_is_what_pyproject_admits() -> None:
    """README's "Supported versions": every package's oldest tested version is its floor in
    pyproject.toml (the floor run of .ci/run installs exactly those)."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Supported versions", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    pyproject = (ROOT / "pyproject.toml").read_text()
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    checked = 0
    for names, versions in rows:
        if ".pt2" in names:  # torch.export's torch: caffe_import.compat.TORCH_FOR_EXPORT
            continue
        names = re.sub(r"`\[\w+\]`:", "", names)
        for name, version in zip(names.split(","), versions.split(",")):
            floor = re.search(rf'"{re.escape(name.strip())}>=([\d.]+)"', pyproject)
            assert floor, f"{name.strip()} has no floor in pyproject.toml"
            assert _release(floor.group(1)) == _release(version.strip()), (name, version)
            checked += 1
    assert checked >= 18
