"""P²SAM on one target: candidates → batched cascade → retrieval → best mask."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..models.guidance import Guidance
from ..models.loading import SamModel
from .decode import Prompt, cascade, to_original
from .embeddings import ImageEmbedding
from .prompts import (
    NEGATIVE,
    POSITIVE,
    attention_bias,
    mean_map,
    normalize_target,
    peak_xy,
    positive_points,
    similarity_maps,
)
from .reference import Reference
from .results import Candidate, Segmentation
from .retrieval import candidate_scores
from .settings import Settings


def build_candidates(
    model: SamModel, reference: Reference, embedding: ImageEmbedding, settings: Settings
) -> tuple[list[Candidate], torch.Tensor | None]:
    """Every (k, n) candidate's points, in the authors' order, and the natural variant's attention biases ``(B, 1, 1, g²)``."""
    target = normalize_target(embedding)
    sam = model.sam
    # Medical variant: one negative point per background part, for each n;
    # n = 0 (or no background patch at all: the mask covers the whole frame)
    # means no negative point.
    no_negative = (0, np.zeros((0, 2), dtype=np.int64))
    negatives = [no_negative] if settings.background_parts[0] == 0 else []
    negatives += [
        (n, positive_points(similarity_maps(sam, protos, target, embedding)))
        for n, protos in sorted(reference.background_parts.items())
    ]
    negatives = negatives or [no_negative]
    candidates, biases = [], []
    lo, hi = settings.part_range
    for k in range(lo, hi + 1):
        if k not in reference.parts:
            continue
        maps = similarity_maps(sam, reference.parts[k], target, embedding)
        positives = positive_points(maps)
        if settings.variant == "natural":
            mean = mean_map(maps)
            points = np.concatenate([positives, peak_xy(mean, largest=False)])
            candidates.append(Candidate(k, 0, points, np.array([POSITIVE] * k + [NEGATIVE])))
            biases.append(attention_bias(mean, target.grid))
            continue
        for n, negative in negatives:
            points = np.concatenate([positives, negative])
            candidates.append(Candidate(k, n, points, np.array([POSITIVE] * k + [NEGATIVE] * n)))
    return candidates, (torch.cat(biases) if biases else None)


def lowest_score(scores: list[float]) -> int:
    """Index of the lowest score; ties keep the earliest (smallest k). All ``inf``: the first."""
    best = 0
    for i, score in enumerate(scores):
        if score < scores[best]:
            best = i
    return best


class _Stopwatch:
    """Adds the seconds since the last lap to ``timings[step]``."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.timings[step] = self.timings.get(step, 0.0) + now - self.last
        self.last = now


@dataclass
class Decoded:
    """One target after the device's work: its candidates, their final low-res logits ``(B, 256, 256)`` and the
    seconds spent so far per step."""

    candidates: list[Candidate]
    logits: torch.Tensor
    timings: dict[str, float]


def segment_embedding(
    model: SamModel, reference: Reference, embedding: ImageEmbedding, settings: Settings
) -> Segmentation:
    """Segment one encoded target with a prepared reference."""
    return choose_candidate(
        model, reference, embedding, settings, decode_candidates(model, reference, embedding, settings)
    )


@torch.inference_mode()
def decode_candidates(model: SamModel, reference: Reference, embedding: ImageEmbedding, settings: Settings) -> Decoded:
    """The first phase of :func:`segment_embedding`: every candidate's points, then the batched cascade."""
    timings: dict[str, float] = {}
    clock = _Stopwatch(timings)
    candidates, biases = build_candidates(model, reference, embedding, settings)
    clock.lap("prompts")
    natural = settings.variant == "natural"
    guidance = Guidance(biases, reference.semantic_prompt) if natural else None
    prompts = [Prompt(c.points, c.labels) for c in candidates]
    result = cascade(model, embedding, prompts, multimask=natural, guidance=guidance)
    clock.lap("decoder")
    return Decoded(candidates, result.logits, timings)


@torch.inference_mode()
def choose_candidate(
    model: SamModel, reference: Reference, embedding: ImageEmbedding, settings: Settings, decoded: Decoded
) -> Segmentation:
    """The second phase of :func:`segment_embedding`: retrieval scores (P²SAM), the lowest kept, its mask.

    Thread-safe for different targets, so a pool thread can run it while the device works on the next frames.
    """
    clock = _Stopwatch(decoded.timings)
    candidates = decoded.candidates
    best = 0
    if settings.method == "p2sam":
        scores = candidate_scores(
            reference.foreground,
            decoded.logits,
            embedding.features,
            weighted=settings.weighted_retrieval,
            method=settings.retrieval,
            max_patches=settings.retrieval_patches,
        )
        for cand, score in zip(candidates, scores):
            cand.score = score
        best = lowest_score([c.score for c in candidates])
    clock.lap("retrieval")
    mask = to_original(model, embedding, decoded.logits[best : best + 1])[0].cpu().numpy()
    clock.lap("decoder")
    chosen = candidates[best]
    return Segmentation(mask, chosen.points, chosen.labels, chosen.score, chosen.k, candidates, decoded.timings)
