#!/usr/bin/env python3
"""Everything the project checks on a GPU, in one call and one markdown report.

Run as ``tools/gpu_check.sh`` from the checkout (it sets ``PYTHONPATH=.``); installs nothing.
Steps, each with its own time budget so that the whole run stays under 8 minutes on an
H100/H200:

1. the CUDA tests (``pytest -m cuda``; skipped with a note when pytest is absent);
2. ``python -m caffe_import parity --device cuda`` on every stored Caffe reference under
   ``tests/fixtures`` (fork fixtures included, with their fork), in ``exact`` mode at the
   cases' own (CPU) tolerances, a few processes at a time;
3. every fixture net's forward on CUDA under ``torch.cuda.set_sync_debug_mode("error")``, in
   exact and fast mode: a layer that makes the host wait on the device fails here;
4. ``tools/bench_forward.py --device cuda`` (exact, TF32, bf16, channels_last, compile, CUDA
   graphs; batch 1 and 8; argmax agreement with exact);
5. ``tools/bench_eval.py --device cuda`` (evaluation pipeline: decode vs forward vs metrics).

The report goes to ``$OUT/gpu_report.md`` when ``$OUT`` is set, else ``./gpu_report.md``
(``--report`` overrides). Exit status: 0 all passed, 1 a step failed, 2 no CUDA device.

``GPU_CHECK_DRY_RUN=1`` (or ``--dry-run``) runs every step on the CPU with tiny settings (one
parity case, the narrow FCN-8s at 32 px, a 1-image eval) - seconds, for the test suite.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
TOTAL_BUDGET_S = 450  # 7.5 minutes; the slowest steps come last and get what is left
TAIL_LINES = 80


@dataclass
class Step:
    name: str
    ok: bool | None  # None: skipped
    seconds: float
    summary: str
    output: str = ""
    rows: list[str] = field(default_factory=list)


class Budget:
    def __init__(self, total: float) -> None:
        self.end = time.monotonic() + total

    def left(self, want: float) -> float:
        return max(5.0, min(want, self.end - time.monotonic()))


def run_cmd(cmd: list[str], timeout: float) -> tuple[int, str]:
    """Run ``cmd`` in the checkout with PYTHONPATH=.; (exit code, stdout+stderr)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    try:
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=timeout)
        return res.returncode, res.stdout + res.stderr
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return 124, out + f"\n(timed out after {timeout:.0f} s)"


def _smallest(cases: list[dict]) -> list[dict]:
    """The dry run's one case: the smallest BVLC reference (by weights size)."""
    bvlc = [c for c in cases if c["case"].startswith("caffe_reference/")] or cases
    return sorted(bvlc, key=lambda c: c["weights"].stat().st_size)[:1]


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(str(text).split()).replace("|", "/")[:limit]


UNIMPLEMENTED = "with no implementation"  # CaffeNet's error for a layer type not written yet


def _fork_of(case_dir: Path, meta: dict) -> str | None:
    """A fork fixture's fork (``tests/fixtures/forks/<fork>/<case>``, or its meta's ``fork``)."""
    rel = case_dir.relative_to(FIXTURES).parts
    fork = meta.get("fork") or (rel[1] if len(rel) > 2 and rel[0] == "forks" else None)
    if fork:
        from caffe_import.proto.schema import canonical_fork
        fork = canonical_fork(fork)
    return fork


def reference_cases() -> list[dict]:
    """Every stored reference with a net, weights and reference.h5 (meta.json names them)."""
    cases = []
    for meta_path in sorted(FIXTURES.rglob("meta.json")):
        d = meta_path.parent
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        net = d / meta.get("net", "net.prototxt")
        weights = d / str(meta.get("weights", "weights.caffemodel"))
        ref = d / meta.get("reference", "reference.h5")
        if net.is_file() and weights.is_file() and ref.is_file():
            cases.append({"case": str(d.relative_to(FIXTURES)), "net": net, "weights": weights,
                          "reference": ref, "fork": _fork_of(d, meta),
                          "phase": str(meta.get("phase", "TEST")).lower()})
    return cases


# ----------------------------------------------------------------------------- steps
def step_pytest(dry: bool, budget: Budget) -> Step:
    t0 = time.monotonic()
    try:
        import pytest  # noqa: F401
    except ImportError:
        return Step("CUDA tests", None, 0.0, "pytest is not installed here: skipped")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests"]
    if dry:
        cmd = [sys.executable, "-m", "pytest", "--version"]
    code, out = run_cmd(cmd, budget.left(120))
    ok = code in (0, 5)  # 5: no test selected
    last = out.strip().splitlines()[-1] if out.strip() else f"exit {code}"
    return Step("CUDA tests", ok, time.monotonic() - t0,
                ("dry run: " if dry else "") + last, out)


def _parity_args(case: dict, device: str) -> list[str]:
    args = [sys.executable, "-m", "caffe_import", "parity", str(case["net"]),
            str(case["weights"]), str(case["reference"]), "--device", device,
            "--precision", "exact", "--json"]
    verb = (ROOT / "caffe_import" / "cli" / "parity.py").read_text()
    if case["fork"] and ("--fork" in verb or "add_schema_options" in verb):
        args += ["--fork", str(case["fork"])]
    return args


def step_parity(device: str, dry: bool, budget: Budget) -> Step:
    t0 = time.monotonic()
    cases = _smallest(reference_cases()) if dry else reference_cases()
    rows, outputs, ok = [], [], True
    from concurrent.futures import ThreadPoolExecutor
    workers = max(1, min(8, (os.cpu_count() or 2) // 2))  # one process per case, a few at once
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda c: run_cmd(_parity_args(c, device), budget.left(120)),
                                cases))
    for case, (code, out) in zip(cases, results):
        try:
            start = out.index("{")
            summary = json.loads(out[start:out.rindex("}") + 1]).get("summary", "")
        except ValueError:
            summary = out.strip().splitlines()[-1] if out.strip() else f"exit {code}"
        result = "pass" if code == 0 else "FAIL"
        if code == 2 and UNIMPLEMENTED in out:  # a fork layer nobody has written yet
            result, summary = "skipped", "a layer type has no implementation yet"
        ok &= result != "FAIL"
        rows.append(f"| {case['case']} | {result} | {_one_line(summary)} |")
        if result == "FAIL":
            outputs.append(f"--- {case['case']} (exit {code})\n{out}")
    passed = sum("| pass |" in r for r in rows)
    skipped = sum("| skipped |" in r for r in rows)
    return Step("parity (exact)", ok and bool(cases), time.monotonic() - t0,
                f"{passed}/{len(cases)} cases within their tolerances on {device}"
                + (f" ({skipped} skipped: layers not implemented)" if skipped else ""),
                "\n".join(outputs), ["| case | result | summary |", "| --- | --- | --- |"] + rows)


def _sync_check_case(case: dict, device, precision: str) -> tuple[str | None, list[str]]:
    """(None when a forward ran with no host sync outside the layers that declare
    ``host_reads``, else what failed; those layers, as ``"name (Type)"``)."""
    import torch

    from caffe_import.net import CaffeNet
    from caffe_import.parity import read_reference
    kwargs = {"fork": case["fork"]} if case["fork"] else {}
    net = CaffeNet(str(case["net"]), str(case["weights"]), phase="test", device=device,
                   precision=precision, compile=False, **kwargs)
    ref = read_reference(case["reference"])
    feed = {k: torch.as_tensor(v).to(device) for k, v in ref.inputs.items() if k in net.inputs}
    net(**feed)  # warm-up: lazy init, packing, cuDNN autotuning may sync; that is fine once
    cuda = device.type == "cuda"
    hooks = _allow_documented_reads(net) if cuda else []
    exempt = [f"{m.name} ({type(m).__name__})" for m in net.layers
              if getattr(m, "host_reads", "")]
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
    try:
        net(**feed)
    except Exception as exc:  # noqa: BLE001 - the report says which layer synced
        return f"{type(exc).__name__}: {exc}", exempt
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode(0)
        for h in hooks:
            h.remove()
    return None, exempt


def _allow_documented_reads(net) -> list:
    """Hooks that lift sync debug mode during the forward of layers declaring ``host_reads``
    (and put "error" back after), so every other layer is still checked."""
    import torch

    def lift(*_):
        torch.cuda.set_sync_debug_mode(0)

    def restore(*_):
        torch.cuda.set_sync_debug_mode("error")

    hooks = []
    for m in net.layers:
        if getattr(m, "host_reads", ""):
            hooks += [m.register_forward_pre_hook(lift), m.register_forward_hook(restore)]
    return hooks


def step_sync(device_name: str, dry: bool, budget: Budget) -> Step:
    import torch
    t0 = time.monotonic()
    device = torch.device(device_name)
    cases = [c for c in reference_cases() if c["phase"] == "test"]
    cases = _smallest(cases) if dry else cases
    rows, ok = [], True
    for case in cases:
        for precision in ("exact", "fast"):
            if time.monotonic() > budget.end:
                rows.append(f"| {case['case']} | {precision} | not run (time budget) |")
                continue
            try:
                err, exempt = _sync_check_case(case, device, precision)
            except Exception as exc:  # noqa: BLE001 - a net that does not build is reported
                if UNIMPLEMENTED in str(exc):
                    rows.append(f"| {case['case']} | {precision} | skipped: a layer type has "
                                f"no implementation yet |")
                    continue
                err, exempt = f"could not run: {type(exc).__name__}: {exc}", []
            ok &= err is None
            note = f" (documented reads in {', '.join(exempt)})" if exempt else ""
            rows.append(f"| {case['case']} | {precision} | "
                        f"{'no host sync' + note if err is None else _one_line(err)} |")
    what = "forward under set_sync_debug_mode('error')" if device.type == "cuda" else \
        "forward on CPU (dry run: sync debug mode needs CUDA)"
    return Step("host syncs", ok and bool(cases), time.monotonic() - t0,
                f"{sum('no host sync' in r for r in rows)}/{len(rows)} {what}", "",
                ["| case | mode | result |", "| --- | --- | --- |"] + rows)


def step_bench_forward(device: str, dry: bool, budget: Budget) -> Step:
    t0 = time.monotonic()
    cmd = [sys.executable, "tools/bench_forward.py", "--device", device, "--matrix",
           "--no-nsfw", "--reps", "10"]
    if dry:
        cmd = [sys.executable, "tools/bench_forward.py", "--device", device, "--matrix",
               "--no-nsfw", "--net", "narrow", "--size", "32", "--batches", "1",
               "--reps", "1", "--warmup", "1", "--no-compile"]
    code, out = run_cmd(cmd, budget.left(240))
    best = [line for line in out.splitlines() if line.startswith("best:")]
    return Step("bench_forward", code == 0, time.monotonic() - t0,
                best[0] if best else f"exit {code}", out)


def step_bench_eval(device: str, dry: bool, budget: Budget) -> Step:
    t0 = time.monotonic()
    cmd = [sys.executable, "tools/bench_eval.py", "--device", device, "--model", "voc-fcn8s",
           "--images", "48", "--workers", str(min(8, os.cpu_count() or 1))]
    if dry:
        cmd = [sys.executable, "tools/bench_eval.py", "--device", device, "--images", "1",
               "--min-size", "48", "--max-size", "64", "--repeat", "1", "--workers", "0"]
    code, out = run_cmd(cmd, budget.left(120))
    last = out.strip().splitlines()[-1] if out.strip() else f"exit {code}"
    return Step("bench_eval", code == 0, time.monotonic() - t0, last, out)


# ----------------------------------------------------------------------------- report
def environment(device: str) -> list[str]:
    import torch
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor()
    return [f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"- device: {device} ({name or 'cpu'})",
            f"- torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}, "
            f"Python {platform.python_version()}",
            f"- checkout: {commit}"]


def write_report(path: Path, env: list[str], steps: list[Step], note: str = "") -> None:
    lines = ["# GPU check", "", *env, ""]
    if note:
        lines += [note, ""]
    lines += ["| step | result | seconds | summary |", "| --- | --- | --- | --- |"]
    for s in steps:
        result = "skipped" if s.ok is None else ("pass" if s.ok else "FAIL")
        lines.append(f"| {s.name} | {result} | {s.seconds:.0f} | {s.summary.replace('|', '/')} |")
    for s in steps:
        lines += ["", f"## {s.name}", ""]
        if s.rows:
            lines += s.rows + [""]
        if s.output.strip():
            tail = s.output.strip().splitlines()[-TAIL_LINES:]
            lines += ["```", *tail, "```"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true",
                    default=os.environ.get("GPU_CHECK_DRY_RUN", "") not in ("", "0"))
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args(argv)
    out_dir = os.environ.get("OUT")
    report = args.report or (Path(out_dir) / "gpu_report.md" if out_dir else Path("gpu_report.md"))
    import torch
    device = "cpu" if args.dry_run else "cuda"
    env = environment(device)
    if not args.dry_run and not torch.cuda.is_available():
        write_report(report, env, [], "**No CUDA device here: nothing was checked.** "
                                      "(GPU_CHECK_DRY_RUN=1 runs the steps on the CPU.)")
        print(f"gpu_check: no CUDA device (torch {torch.__version__}, CUDA "
              f"{torch.version.cuda or 'none'}); wrote {report}", file=sys.stderr)
        return 2
    budget = Budget(TOTAL_BUDGET_S)
    steps = []
    for fn in (step_pytest, step_parity, step_sync, step_bench_forward, step_bench_eval):
        if fn is step_pytest:
            step = fn(args.dry_run, budget)
        else:
            step = fn(device, args.dry_run, budget)
        steps.append(step)
        print(f"[{step.name}] {'skipped' if step.ok is None else 'pass' if step.ok else 'FAIL'}"
              f" ({step.seconds:.0f} s): {step.summary}", flush=True)
        write_report(report, env, steps, "Dry run on the CPU (tiny settings)." if args.dry_run
                     else "")
    print(f"wrote {report}")
    return 0 if all(s.ok is not False for s in steps) else 1


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
