"""tools/gpu_check.sh: without CUDA it says so and exits 2; its dry run (every step on the
CPU, tiny settings) writes the markdown report with every step passing."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from support import ROOT

SCRIPT = ROOT / "tools" / "gpu_check.sh"


def _run(tmp_path, **env):
    full = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, **env)
    return subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=full, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_and_fails(tmp_path):
    res = _run(tmp_path, GPU_CHECK_DRY_RUN="0")
    assert res.returncode == 2
    assert "no CUDA device" in res.stderr
    assert "No CUDA device here" in (tmp_path / "gpu_report.md").read_text()


def test_dry_run_runs_every_step_on_the_cpu(tmp_path):
    res = _run(tmp_path, GPU_CHECK_DRY_RUN="1")
    assert res.returncode == 0, res.stdout + res.stderr
    report = (tmp_path / "gpu_report.md").read_text()
    for step in ("CUDA tests", "parity (exact)", "host syncs", "bench_forward", "bench_eval"):
        assert f"| {step} | pass |" in report or f"| {step} | skipped |" in report, step
    assert "1/1 cases within their tolerances on cpu" in report
    assert "best:" in report and "argmax agree" in report


def _gpu_check_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_sync_check_names_the_layers_with_documented_host_reads():
    """DetectionOutput sizes its top from the data, so it may read from the device (so do
    ROIPooling, Filter's selected rows and HDF5Output's file); the check lifts sync debug mode
    for it alone and the report names it. Plain layers declare none."""
    from caffe_import.layers import registry

    declared = {name for name in registry.known_types()
                if getattr(registry.get(name), "host_reads", "")}
    assert declared == {"DetectionOutput", "ROIPooling", "Filter", "HDF5Output"}
    gpu_check = _gpu_check_module()
    case = next(c for c in gpu_check.reference_cases()
                if c["case"].endswith("ssd/layers_detection_output"))
    err, exempt = gpu_check._sync_check_case(case, torch.device("cpu"), "exact")
    assert err is None
    assert exempt and all(e.endswith("(DetectionOutput)") for e in exempt)
