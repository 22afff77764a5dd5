"""CPU threading defaults that stay fast when other processes share the machine.

PyTorch runs its CPU kernels on an OpenMP thread team (GNU libgomp in the Linux wheels), one
thread per CPU the process may run on. A net's forward is thousands of short parallel regions
(every convolution, ReLU, crop), each ending in a barrier where the threads that finished wait
for the rest. By default libgomp waits *actively*: it spins (``GOMP_SPINCOUNT``, 300,000 polls
when ``OMP_WAIT_POLICY`` is unset) before it sleeps. When another process is busy on one of
the cores, the team has more threads than free cores: the spinning threads hold cores that the
team's own descheduled thread needs, so every barrier lasts until the scheduler switches, and
an evaluation of 40 small images took 21 s where one thread took 0.8 s, and 76 s where
passive waiting took 1 s (see ``docs/performance.md``).
libgomp shortens the spinning only when the team outnumbers the CPUs it may use, which it
counts once at start-up, not the CPUs other processes leave free. Containers make it worse:
the affinity mask shows every host CPU while a cgroup quota grants a few.

:func:`configure_threads` sets, unless the user already chose them:

* ``OMP_WAIT_POLICY=PASSIVE``: a thread with nothing to do sleeps at once (libgomp: spin
  count 0; Intel/LLVM OpenMP: ``KMP_BLOCKTIME`` 0). Read once when the OpenMP runtime loads,
  i.e. on ``import torch``: it must be set before that (both commands and the test suite do
  it first thing). A user's ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or ``KMP_BLOCKTIME``
  leaves the waiting policy alone.
* ``OMP_NUM_THREADS``: the CPUs this process may actually use (:func:`usable_cpus`: the
  affinity mask, capped by a cgroup CPU quota); also applied with ``torch.set_num_threads``
  when torch is already loaded.

Child processes (DataLoader workers, ``torchrun`` ranks) inherit both through the environment.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Mapping, MutableMapping

__all__ = ["WAIT_VARIABLES", "usable_cpus", "cgroup_cpu_limit", "thread_settings", "configure_threads"]

#: variables through which a user has chosen how OpenMP threads wait
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def _quota_v2(folder: Path) -> float | None:
    """CPUs granted by a cgroup v2 ``cpu.max`` (``"max 100000"``: no limit)."""
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _quota_v1(folder: Path) -> float | None:
    """CPUs granted by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1: none)."""
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def cgroup_cpu_limit(root: str | os.PathLike = "/sys/fs/cgroup",
                     self_cgroup: str | os.PathLike = "/proc/self/cgroup") -> float | None:
    """The CPU quota of this process's cgroup and its ancestors in CPUs (e.g. 1.5), or None.

    cgroup v2 (``0::/path`` -> ``<root>/path/cpu.max``) and v1 (the ``cpu`` controller's
    ``cpu.cfs_quota_us``); the smallest quota on the way up to ``root`` counts.
    """
    root = Path(root)
    try:
        lines = Path(self_cgroup).read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = Path(path.strip().lstrip("/"))
        if controllers == "":
            bases, read = [root, root / "unified"], _quota_v2  # unified: the hybrid layout
        elif "cpu" in controllers.split(","):
            bases, read = [root / controllers, root / "cpu"], _quota_v1
        else:
            continue
        for base in bases:
            for folder in [base / rel, *(base / p for p in rel.parents)]:
                limit = read(folder)
                if limit is not None:
                    limits.append(limit)
    return min(limits) if limits else None


def usable_cpus() -> int:
    """CPUs this process may run on: the affinity mask, capped by the cgroup quota (at least 1)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        n = min(n, max(1, math.floor(limit)))
    return max(1, n)


def thread_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables :func:`configure_threads` sets: the ones ``environ`` does not set yet."""
    env = os.environ if environ is None else environ
    settings = {}
    if not any(name in env for name in WAIT_VARIABLES):
        settings["OMP_WAIT_POLICY"] = "PASSIVE"
    if "OMP_NUM_THREADS" not in env:
        settings["OMP_NUM_THREADS"] = str(usable_cpus())
    return settings


def configure_threads(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set :func:`thread_settings` in ``environ`` (default ``os.environ``); returns them.

    Call it before ``import torch``: the waiting policy cannot change once the OpenMP
    runtime has loaded (the thread count still can, and is applied to a loaded torch).
    """
    env = os.environ if environ is None else environ
    settings = thread_settings(env)
    env.update(settings)
    torch = sys.modules.get("torch")
    if torch is not None and "OMP_NUM_THREADS" in settings and env is os.environ:
        torch.set_num_threads(int(settings["OMP_NUM_THREADS"]))
    return settings
