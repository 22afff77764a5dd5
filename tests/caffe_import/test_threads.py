"""caffe_import.threads: OpenMP defaults that stay fast with another process on the cores."""
from __future__ import annotations

import os
import subprocess
import sys
from caffe_import import threads
from caffe_import.threads import cgroup_cpu_limit, configure_threads, thread_settings, usable_cpus
from support import ROOT


def test_passive_waiting_and_usable_cores_unless_the_user_chose(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda: 3)
    assert thread_settings({}) == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "3"}
    for chosen in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"):
        assert thread_settings({chosen: "1"}) == {"OMP_NUM_THREADS": "3"}
    assert thread_settings({"OMP_NUM_THREADS": "8"}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_NUM_THREADS": "8"}
    assert configure_threads(env) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert env == {"OMP_NUM_THREADS": "8", "OMP_WAIT_POLICY": "PASSIVE"}


def _cgroup(tmp_path, lines, files):
    tmp_path.mkdir()
    (tmp_path / "self").write_text("".join(f"{line}\n" for line in lines))
    for name, text in files.items():
        (tmp_path / "fs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fs" / name).write_text(text)
    return cgroup_cpu_limit(tmp_path / "fs", tmp_path / "self")


def test_cgroup_quota_v2_v1_and_none(tmp_path):
    assert _cgroup(tmp_path / "a", ["0::/pod/box"], {"pod/box/cpu.max": "max 100000",
                                                     "pod/cpu.max": "150000 100000"}) == 1.5
    assert _cgroup(tmp_path / "b", ["4:cpu,cpuacct:/docker/x", "3:memory:/docker/x"],
                   {"cpu,cpuacct/docker/x/cpu.cfs_quota_us": "200000",
                    "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000"}) == 2.0
    assert _cgroup(tmp_path / "c", ["1:cpu:/", "0::/"], {"cpu/cpu.cfs_quota_us": "-1",
                                                          "cpu/cpu.cfs_period_us": "100000"}) is None
    assert cgroup_cpu_limit(tmp_path / "none", tmp_path / "no-such-file") is None


def test_usable_cpus_is_the_affinity_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 2.5)
    assert usable_cpus() == 2
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 0.3)
    assert usable_cpus() == 1
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert usable_cpus() == 4


def test_both_commands_configure_before_torch_loads():
    env = {k: v for k, v in os.environ.items()
           if k not in threads.WAIT_VARIABLES and k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT)
    code = ("import os, sys\n"
            "from fcn_repro.cli import main\n"
            "assert main(['netspec', '--list']) == 0\n"
            "import torch\n"
            "from caffe_import.threads import usable_cpus\n"
            "print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'], "
            "torch.get_num_threads(), usable_cpus(), file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    policy, variable, torch_threads, cpus = out.stderr.split()[-4:]
    assert policy == "PASSIVE" and variable == torch_threads == cpus


def test_the_test_suite_runs_with_them_too():
    if not any(name in os.environ for name in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME")):
        assert os.environ.get("OMP_WAIT_POLICY")
    assert os.environ.get("OMP_NUM_THREADS")
