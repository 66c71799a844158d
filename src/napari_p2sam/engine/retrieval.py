"""Distribution-based retrieval: how far a candidate's features are from the reference's.

Score = earth mover's distance (POT's exact ``emd2``, squared-Euclidean
ground cost) between uniform weights on the reference's foreground patch
features and on the patches the candidate's final logits cover. Lower is
better; an empty candidate scores ``inf``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import ot
import torch
import torch.nn.functional as F

from .settings import RETRIEVAL_METHODS

EMPTY_SCORE = float("inf")


def candidate_patches(logits: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Patches covered by a candidate: the ``(g, g)`` bool map, their raw features ``(N_t, C)`` and logits ``(N_t,)``.

    ``logits``: ``(256, 256)`` low-res logits in the padded frame, bilinearly
    resized to the feature grid; patches with logit > 0 count.
    ``features``: ``(1, C, g, g)`` raw target features.
    """
    grid = features.shape[-1]
    coarse = F.interpolate(logits[None, None].float(), size=(grid, grid), mode="bilinear")[0, 0]
    keep = coarse > 0
    return keep, features[0].permute(1, 2, 0)[keep], coarse[keep]


def _subsample(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if x.shape[0] <= limit:
        return x
    return x[np.sort(rng.choice(x.shape[0], size=limit, replace=False))]


def emd_score(
    reference: torch.Tensor,
    target: torch.Tensor,
    *,
    target_logits: torch.Tensor | None = None,
    method: str = "exact",
    max_patches: int = 512,
) -> float:
    """Earth mover's distance between patch feature sets ``(N_r, C)`` and ``(N_t, C)``.

    ``target_logits`` given: target weights = normalised sigmoid of the
    logits (the authors' weighted option), else uniform. ``method="sampled"``
    solves the exact problem on at most ``max_patches`` patches drawn from
    each side with a fixed seed (uniform weights only), an estimate whose
    cost is bounded whatever the object's size.
    """
    if method not in RETRIEVAL_METHODS:
        raise ValueError(f"retrieval method must be one of {RETRIEVAL_METHODS}, got {method!r}")
    if target.shape[0] == 0:
        return EMPTY_SCORE
    a_feats = reference.detach().cpu().numpy()
    b_feats = target.detach().cpu().numpy()
    if target_logits is not None:
        b = torch.sigmoid(target_logits).double().cpu().numpy()
        b = b / b.sum()
    else:
        if method == "sampled":
            rng = np.random.default_rng(0)
            a_feats = _subsample(a_feats, max_patches, rng)
            b_feats = _subsample(b_feats, max_patches, rng)
        b = ot.unif(b_feats.shape[0])
    cost = ot.dist(a_feats, b_feats)
    # POT warns by itself if it stops at numItermax before the optimum; we never silence it.
    return float(ot.emd2(ot.unif(a_feats.shape[0]), b, cost, numItermax=10_000_000))


def candidate_scores(
    reference: torch.Tensor,
    logits: torch.Tensor,
    features: torch.Tensor,
    *,
    weighted: bool = False,
    method: str = "exact",
    max_patches: int = 512,
) -> list[float]:
    """Retrieval score of each candidate's final logits ``(B, 256, 256)``.

    Candidates covering the same patches share one solve; distinct solves run
    in parallel threads (POT's solver releases the GIL), largest first, so the
    scores are exactly those of one solve per candidate.
    """
    keys, problems = [], {}
    for candidate_logits in logits:
        keep, patches, values = candidate_patches(candidate_logits, features)
        key = keep.cpu().numpy().tobytes() + (values.cpu().numpy().tobytes() if weighted else b"")
        keys.append(key)
        problems.setdefault(key, (patches, values if weighted else None))

    def solve(problem: tuple[torch.Tensor, torch.Tensor | None]) -> float:
        patches, values = problem
        return emd_score(reference, patches, target_logits=values, method=method, max_patches=max_patches)

    # Largest problems first: with few threads the last solve to start is then
    # a short one, which shortens the wait for all (longest-processing-time rule).
    order = sorted(problems, key=lambda key: -problems[key][0].shape[0])
    with ThreadPoolExecutor(max_workers=min(len(problems), os.cpu_count() or 1)) as pool:
        solved = dict(zip(order, pool.map(solve, (problems[key] for key in order))))
    return [solved[key] for key in keys]
