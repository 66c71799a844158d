"""Overlap scores of a predicted mask against its ground truth (docs/algorithm.md §9).

All scores are fractions in [0, 1]. The published formulas:

- Dice = 2TP / (2TP + FP + FN), per frame (CVC-ClinicDB);
- IoU = TP / (TP + FP + FN), per frame;
- pooled IoU of a set of frames = Σ TP / Σ (TP + FP + FN), the PerSeg
  per-object score: large and small frames weigh by their pixel counts, which
  is *not* the mean of the per-frame IoUs.

Empty against empty (no object in the ground truth and none predicted) scores
1.0: nothing was to be found and nothing was found. The authors' code adds
1e-10 to the denominator and so scores that case 0.0; their datasets have the
object in every ground-truth mask, where both rules agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Overlap:
    """Pixel counts of one prediction against its ground truth.

    ``tp``: object in both; ``fp``: predicted only; ``fn``: ground truth only.
    """

    tp: int
    fp: int
    fn: int

    @property
    def intersection(self) -> int:
        return self.tp

    @property
    def union(self) -> int:
        return self.tp + self.fp + self.fn


def overlap(prediction: np.ndarray, truth: np.ndarray) -> Overlap:
    """Count TP, FP and FN of two ``(H, W)`` masks (non-zero = object)."""
    prediction = np.asarray(prediction).astype(bool)
    truth = np.asarray(truth).astype(bool)
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction {prediction.shape} and ground truth {truth.shape} differ in size")
    tp = int(np.count_nonzero(prediction & truth))
    return Overlap(tp=tp, fp=int(np.count_nonzero(prediction)) - tp, fn=int(np.count_nonzero(truth)) - tp)


def dice(counts: Overlap) -> float:
    """2TP / (2TP + FP + FN); 1.0 when both masks are empty."""
    denominator = 2 * counts.tp + counts.fp + counts.fn
    return 2 * counts.tp / denominator if denominator else 1.0


def iou(counts: Overlap) -> float:
    """TP / (TP + FP + FN); 1.0 when both masks are empty."""
    return counts.tp / counts.union if counts.union else 1.0


def pooled_iou(counts: Iterable[Overlap]) -> float:
    """Σ intersections / Σ unions over frames; 1.0 when every mask is empty."""
    counts = list(counts)
    if not counts:
        raise ValueError("pooled IoU of no frames is undefined")
    union = sum(c.union for c in counts)
    return sum(c.intersection for c in counts) / union if union else 1.0
