"""Which frames of a run stand out: the one outlier rule for the scores dock and any report of a run."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def outlier_frames(scores: Mapping[int, float]) -> list[int]:
    """The frames of one object whose retrieval score stands out, in frame order.

    ``scores``: frame index → that object's retrieval score on the frame (the
    optimal-transport distance to its reference; higher = less alike).

    A frame stands out when its mask is empty (score ``+inf``) or its score
    is strictly above Tukey's upper fence ``Q3 + 1.5 × (Q3 − Q1)`` of the
    object's finite scores, Q1 and Q3 being their quartiles by linear
    interpolation (NumPy's default). NaN scores (PerSAM does not score its
    masks) never stand out and take no part in the quartiles. With three
    finite scores or fewer no finite score can pass the fence, so only empty
    masks stand out.
    """
    finite = [score for score in scores.values() if math.isfinite(score)]
    fence = math.inf
    if finite:
        q1, q3 = np.percentile(finite, [25, 75])
        fence = q3 + 1.5 * (q3 - q1)
    return sorted(frame for frame, score in scores.items() if score == math.inf or score > fence)
