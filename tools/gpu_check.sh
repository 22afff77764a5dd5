#!/usr/bin/env bash
# One command for every GPU check of the project (see tools/gpu_check.py): the CUDA tests,
# parity on CUDA for every stored reference, host-sync checks, bench_forward and bench_eval
# on CUDA, in one markdown report ($OUT/gpu_report.md, else ./gpu_report.md). Installs
# nothing; runs this checkout (PYTHONPATH=.). Exit: 0 passed, 1 a step failed, 2 no CUDA.
#   tools/gpu_check.sh                      # on a GPU machine, about 5-8 minutes
#   GPU_CHECK_DRY_RUN=1 tools/gpu_check.sh  # every step on the CPU, tiny settings (seconds)
set -u
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" tools/gpu_check.py "$@"
