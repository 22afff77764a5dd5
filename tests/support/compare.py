"""The one numeric comparison of the tests: relative L2 error and max-abs error over the
reference's max-abs, both in float64 -- the two numbers a case's meta.json ``tolerance`` bounds
(``rel_l2``, ``max_abs_over_max_ref``)."""
from __future__ import annotations

import numpy as np
import torch


def _array(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def errors(ours: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray) -> tuple[float, float]:
    """(relative L2 error, max abs error / max abs of ``ref``); infinite when shapes differ."""
    a, b = _array(ours), _array(ref)
    if a.shape != b.shape:
        return float("inf"), float("inf")
    diff = a - b
    rel = float(np.linalg.norm(diff) / max(np.linalg.norm(b), 1e-30))
    mx = float(np.abs(diff).max(initial=0) / max(np.abs(b).max(initial=0), 1e-30))
    return rel, mx


def rel_l2(ours: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray) -> float:
    return errors(ours, ref)[0]


def within(ours, ref, tol: dict) -> str | None:
    """None when ``ours`` is within a meta.json ``tolerance`` of ``ref``, else what is wrong."""
    rel, mx = errors(ours, ref)
    if rel <= tol["rel_l2"] and mx <= tol["max_abs_over_max_ref"]:
        return None
    return (f"rel_l2={rel:.3g} max_abs/max_ref={mx:.3g} "
            f"(ours {tuple(np.shape(ours))}, reference {tuple(np.shape(ref))})")


def assert_within(ours, ref, tol: dict, what: str = "") -> None:
    problem = within(ours, ref, tol)
    assert problem is None, f"{what}: {problem}" if what else problem
