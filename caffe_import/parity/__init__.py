"""Parity with Caffe: stored activations read and written, our run compared against them, and
our solver against a recorded Caffe trajectory.

Rooms: ``reference`` (the stored-activation file format), ``compare`` (tolerance, rows,
report), ``run`` (running a net; ``check_parity`` and ``dump``), ``solver`` (solver parity).
"""
from __future__ import annotations

from .compare import (DEFAULT_MAX_ABS, DEFAULT_REL_L2, KINDS, ParityReport, ParityRow, Tolerance,
                      compare_arrays)
from .reference import StoredActivations, read_reference, write_reference
from .run import RunResult, check_parity, dump, run_net
from .solver import (DEFAULT_SOLVER_REL_L2, SOLVER_CASE_FILES, SolverParityReport, SolverStep,
                     check_solver_parity)

__all__ = ["StoredActivations", "read_reference", "write_reference", "Tolerance", "ParityRow",
           "ParityReport", "compare_arrays", "run_net", "check_parity", "dump",
           "DEFAULT_REL_L2", "DEFAULT_MAX_ABS", "SolverStep", "SolverParityReport",
           "check_solver_parity"]
