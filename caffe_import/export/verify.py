"""Rerun an exported artefact against the eager net and compare, output by output, as the
parity check measures it."""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Callable, Mapping, Sequence

import torch

from ..errors import CaffeFormatError
from ..parity import Tolerance, compare_arrays
from .program import wrap
from .shapes import InputSpec, example_inputs, shapes_line

class VerificationUnavailable(RuntimeError):
    """The exported artefact was written but could not be rerun here (no runtime for it)."""


def max_diffs(ours: Sequence[Any], eager: Sequence[torch.Tensor], names: Sequence[str]
               ) -> "OrderedDict[str, float]":
    """Per output, ``max|ours - eager| / max|eager|`` as the parity check measures it (NaN
    where either side holds a NaN or inf the other does not)."""
    out: OrderedDict[str, float] = OrderedDict()
    anything = Tolerance(rel_l2=math.inf, max_abs=math.inf)
    for name, a, b in zip(names, ours, eager):
        row = compare_arrays("blob", name, a, b.detach().cpu().numpy(), anything)
        if row.ours_shape != row.shape:
            raise CaffeFormatError(f"exported output '{name}' has shape {row.ours_shape}, "
                                   f"eager gives {row.shape}")
        out[name] = row.max_abs
    return out


def eager_outputs(net, inputs: Mapping[str, torch.Tensor], outputs: Sequence[str] | None = None
                  ) -> tuple[torch.Tensor, ...]:
    wrapper = wrap(net, outputs)
    with torch.no_grad():
        return wrapper(*inputs.values())


def verify_program(program: torch.export.ExportedProgram, net,
                   inputs: InputSpec | None = None, outputs: Sequence[str] | None = None,
                   tol: float = 1e-5, second: InputSpec | None = None
                   ) -> "OrderedDict[str, float]":
    """Run ``program`` and the eager net on the same inputs (and, given ``second``, on
    inputs of those shapes too: a dynamic program at another size); return, per output, the
    largest ``max|exported - eager| / max|eager|``. Raises ``CaffeFormatError`` above ``tol``."""
    names = list(outputs) if outputs else list(net.outputs)
    worst: OrderedDict[str, float] = OrderedDict()
    for feed in feeds(net, inputs, second):
        with torch.no_grad():
            got = run_at(lambda f=feed: program.module()(*f.values()), "torch.export program",
                          feed)
        worst = worst_of(worst, max_diffs(got, eager_outputs(net, feed, names), names))
    check_diffs(worst, tol, "torch.export program")
    return worst


def feeds(net, inputs: InputSpec | None, second: InputSpec | None,
           device: str | None = None) -> list["OrderedDict[str, torch.Tensor]"]:
    feeds = [example_inputs(net, inputs, seed=1, device=device)]
    if second is not None:
        feeds.append(example_inputs(net, second, seed=2, device=device))
    return feeds


def run_at(run: Callable[[], Any], what: str, feed: Mapping[str, Any]) -> Any:
    """``run()``; an exported graph refusing these inputs (a size outside what it was
    traced for) is a ``CaffeFormatError`` saying so in one line."""
    try:
        return run()
    except (CaffeFormatError, VerificationUnavailable):
        raise
    except Exception as exc:  # the runtime's own error, in whatever form
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        sizes = shapes_line({k: tuple(v.shape) for k, v in feed.items()})
        raise CaffeFormatError(f"the {what} cannot run at {sizes} ({type(exc).__name__}: "
                               f"{first}); export it with --static (dynamic=False)") from exc


def worst_of(a: Mapping[str, float], b: Mapping[str, float]) -> "OrderedDict[str, float]":
    out = OrderedDict(b)
    for k, v in a.items():
        out[k] = math.nan if math.isnan(v) or math.isnan(b.get(k, 0.0)) else max(v, b.get(k, v))
    return out


def check_diffs(diffs: Mapping[str, float], tol: float, what: str) -> None:
    bad = {k: v for k, v in diffs.items() if not v <= tol}
    if bad:
        raise CaffeFormatError(f"the {what} does not reproduce the eager net: "
                               + ", ".join(f"{k}: max abs / max = {v:.3g}" for k, v in bad.items())
                               + f" (tolerance {tol:g})")


def tol_for(net) -> dict[str, float]:
    """The export check's tolerance: the defaults for an exact net; for ``precision="fast"``
    5e-2, because the export traces PyTorch's own bf16 kernels where the eager net runs
    oneDNN's fused ones (equal up to bf16 rounding)."""
    return {} if getattr(net, "precision", "exact") == "exact" else {"tol": 5e-2}
