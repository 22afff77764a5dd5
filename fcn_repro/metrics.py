"""Segmentation scores exactly as the release's ``score.py`` computes them.

One confusion matrix is summed over the whole split (rows: ground truth, columns: prediction);
pixels whose label is outside ``[0, n)`` (void 255) are not counted. From it:

- pixel accuracy  ``sum(diag) / sum(hist)``
- mean accuracy   ``nanmean(diag / hist.sum(1))``           (a class never in the ground truth is NaN)
- mean IU         ``nanmean(diag / (hist.sum(1) + hist.sum(0) - diag))``
- f.w. IU         ``sum(freq[freq > 0] * iu[freq > 0])`` with ``freq = hist.sum(1) / sum(hist)``

Note the release's rule: a class absent from the ground truth but predicted somewhere has IU 0
(not NaN) and so drags the mean IU down. The paper leaves SIFT Flow's three absent classes out of
the averages; ``exclude=`` (given classes) or ``exclude_absent=True`` (classes with no ground-truth
pixel) do that here. Scores are fractions (the paper prints percent).

The matrix lives on the device of the predictions and is updated there without a host sync
(``bincount`` on CPU, ``scatter_add_`` elsewhere, void pixels sent to a spare bin), so an
evaluation loop never waits on the GPU per image. ``all_reduce()`` sums the matrices of all
ranks when ``torch.distributed`` is initialised (sharded evaluation).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch


def predicted_classes(scores: torch.Tensor) -> torch.Tensor:
    """The class of each pixel of ``N x C x H x W`` (or ``C x H x W``) scores: the first channel
    holding the maximum (NaN counts as the maximum), as score.py's ``argmax(0)`` gives it.

    ``max(dim=-3).indices`` rather than ``argmax``: the same indices (first maximum, NaN first),
    but PyTorch's CPU ``argmax`` over the strided channel axis is ~3.5x slower (29 ms vs 8 ms
    for 21 x 375 x 500, one thread) - as long as a narrow net's forward."""
    return scores.max(dim=-3).indices


class ConfusionMatrix:
    """An ``n x n`` int64 confusion matrix accumulated on ``device``."""

    def __init__(self, num_classes: int, device: str | torch.device = "cpu") -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = int(num_classes)
        self.device = torch.device(device)
        # one spare bin at the end collects the ignored (out-of-range) pixels
        self._bins = torch.zeros(self.num_classes ** 2 + 1, dtype=torch.int64, device=self.device)

    @property
    def hist(self) -> torch.Tensor:
        """The ``n x n`` matrix (a view; rows ground truth, columns prediction)."""
        n = self.num_classes
        return self._bins[: n * n].view(n, n)

    def reset(self) -> None:
        self._bins.zero_()

    def update(self, pred: torch.Tensor, label: torch.Tensor) -> None:
        """Count ``pred`` (class indices) against ``label`` (same shape; out-of-range ignored).

        Predictions outside ``[0, n)`` are ignored too (an argmax never gives one)."""
        if pred.shape != label.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != label shape {tuple(label.shape)}")
        n = self.num_classes
        a = label.to(self.device, torch.int64, non_blocking=True).reshape(-1)
        b = pred.to(self.device, torch.int64, non_blocking=True).reshape(-1)
        valid = (a >= 0) & (a < n) & (b >= 0) & (b < n)
        # void goes to a spare bin: a boolean selection would cost more (and sync on a device)
        index = torch.where(valid, a * n + b, torch.full_like(a, n * n))
        if self.device.type == "cpu":
            self._bins += torch.bincount(index, minlength=n * n + 1)
        else:  # CUDA's bincount reads the maximum back to the host; scatter_add_ does not
            self._bins.scatter_add_(0, index, torch.ones_like(index))

    def update_scores(self, scores: torch.Tensor, label: torch.Tensor) -> None:
        """Count the argmax over channels of ``N x C x H x W`` (or ``C x H x W``) scores."""
        pred = predicted_classes(scores)
        self.update(pred, label.reshape(pred.shape))

    def add(self, other: "ConfusionMatrix | torch.Tensor | np.ndarray") -> None:
        """Add another matrix (e.g. another split shard's)."""
        m = other.hist if isinstance(other, ConfusionMatrix) else torch.as_tensor(other)
        self.hist.add_(m.to(self.device, torch.int64))

    def all_reduce(self, group: Any = None) -> "ConfusionMatrix":
        """Sum the matrices of all ranks in place (no-op when torch.distributed is not
        initialised); returns self."""
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self._bins, op=dist.ReduceOp.SUM, group=group)
        return self

    def numpy(self) -> np.ndarray:
        return self.hist.cpu().numpy().copy()

    def compute(self, exclude: Iterable[int] = (), exclude_absent: bool = False) -> dict[str, Any]:
        """The four scores and the per-class IU / accuracy of the matrix (see module doc)."""
        return scores_from_hist(self.numpy(), exclude=exclude, exclude_absent=exclude_absent)


def scores_from_hist(hist: np.ndarray, exclude: Iterable[int] = (),
                     exclude_absent: bool = False) -> dict[str, Any]:
    """score.py's metrics of a confusion matrix (rows ground truth). ``exclude`` / ``exclude_absent``
    leave classes out of the mean accuracy and mean IU (pixel accuracy and f.w. IU are unchanged:
    an absent class has no ground-truth pixels)."""
    hist = np.asarray(hist, dtype=np.float64)
    n = hist.shape[0]
    total = hist.sum()
    diag = np.diag(hist)
    gt = hist.sum(1)
    predicted = hist.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pixel_acc = diag.sum() / total
        acc = diag / gt
        iu = diag / (gt + predicted - diag)
        freq = gt / total
    keep = np.ones(n, dtype=bool)
    for c in exclude:
        if 0 <= int(c) < n:  # a class the matrix does not have is not there to leave out
            keep[int(c)] = False
    if exclude_absent:
        keep &= gt > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        fw_iu = float((freq[freq > 0] * iu[freq > 0]).sum()) if total > 0 else float("nan")
    return {
        "pixel_acc": float(pixel_acc) if total > 0 else float("nan"),
        "mean_acc": _nanmean(acc[keep]),
        "mean_iu": _nanmean(iu[keep]),
        "fw_iu": fw_iu,
        "per_class_iu": [float(v) for v in iu],
        "per_class_acc": [float(v) for v in acc],
        "excluded_classes": [int(c) for c in np.flatnonzero(~keep)],
        "pixels": int(total),
    }


def geometric_accuracy(hist: np.ndarray | ConfusionMatrix) -> float:
    """SIFT Flow's geometric accuracy: the pixel accuracy of the geometric head's matrix."""
    h = hist.numpy() if isinstance(hist, ConfusionMatrix) else np.asarray(hist)
    total = h.sum()
    return float(np.diag(h).sum() / total) if total > 0 else float("nan")


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")
