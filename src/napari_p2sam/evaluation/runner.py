"""Run several methods, in one or several precisions, over an evaluation dataset, each image encoded once per precision.

For every sequence the reference image is encoded once per precision and
shared by every method (``set_reference(..., embedding=...)``); every scored
image is then encoded once per precision and each method segments that same
embedding. So a comparison of methods costs one encoder pass per image and
precision, and the methods see identical features. With several precisions
each (method, precision) is scored as a method of its own, ``p2sam-bf16``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..engine.embeddings import ImageEmbedding
from ..engine.predictor import P2SAM
from ..engine.settings import Settings
from ..engine.sources import sampled_limits
from ..io.images import read_image
from ..models.loading import SamModel, as_model
from .datasets import Frame, Sequence, persam_mask_values, read_mask
from .metrics import Overlap, dice, iou, overlap


@dataclass(frozen=True)
class FrameScore:
    """One method's result on one scored frame.

    ``retrieval``: the kept candidate's distance (nan for PerSAM), ``k``: its
    part count, ``seconds``: time to segment the shared embedding (encoder excluded).
    """

    sequence: str
    frame: str
    method: str
    counts: Overlap
    k: int
    retrieval: float
    seconds: float

    @property
    def dice(self) -> float:
        return dice(self.counts)

    @property
    def iou(self) -> float:
        return iou(self.counts)


@dataclass
class Evaluation:
    """Every method's scores, in dataset order, and the encoder's seconds per image in each precision."""

    methods: tuple[str, ...]
    frames: list[FrameScore] = field(default_factory=list)
    encoder_seconds: dict[str, list[float]] = field(default_factory=dict)

    def scores(self, method: str, sequence: str | None = None) -> list[FrameScore]:
        """The frames of one method (optionally of one sequence), in dataset order."""
        return [f for f in self.frames if f.method == method and sequence in (None, f.sequence)]

    @property
    def sequences(self) -> list[str]:
        return list(dict.fromkeys(f.sequence for f in self.frames))


ProgressCallback = Callable[[int, int, str], None]
"""``progress(frames_done, frames_total, sequence_name)``."""


def _synchronize(model: SamModel) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


def sequence_limits(sequence: Sequence) -> tuple[float, float] | None:
    """One intensity mapping for a sequence of non-8-bit images, sampled from all its frames as
    :func:`~napari_p2sam.engine.sources.stack_limits` samples a stack (None for uint8)."""
    first = read_image(sequence.reference.image)
    if first.dtype == np.uint8:
        return None
    frames = (sequence.reference, *sequence.targets)
    return sampled_limits((read_image(f.image) for f in frames), len(frames))


def save_prediction(path: Path, mask: np.ndarray) -> None:
    """Write a predicted mask as an 8-bit PNG, 255 = object."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def run_name(method: str, precision: str, precisions: tuple[str, ...]) -> str:
    """``method`` alone for one precision, ``method-precision`` (``p2sam-bf16``) for several."""
    return method if len(precisions) == 1 else f"{method}-{precision}"


def evaluate(
    model: SamModel,
    sequences: list[Sequence],
    methods: dict[str, Settings],
    *,
    precisions: tuple[str, ...] | None = None,
    threshold: float = 0,
    out: Path | None = None,
    progress: ProgressCallback | None = None,
    persam_file_values: bool = False,
) -> Evaluation:
    """Segment every scored frame with every method and precision and score it against its mask.

    ``methods``: name → settings. ``precisions``: the encoder's number formats
    compared (default: the model's own); each is checked before any work.
    ``threshold``: ground truth = gray > threshold (see :mod:`.datasets`).
    ``out``: if given, each prediction is saved as
    ``out/<method>/<sequence>/<frame>.png``. ``persam_file_values``: PerSAM's
    patch rule reads the reference mask file's channel 0, as ``persam.py``
    does (PerSeg), instead of the binarised mask.
    """
    if not methods:
        raise ValueError("choose at least one method")
    precisions = tuple(dict.fromkeys(precisions or (model.precision,)))
    models = {precision: as_model(model, precision=precision) for precision in precisions}
    runs = {
        precision: {run_name(name, precision, precisions): P2SAM(models[precision], s) for name, s in methods.items()}
        for precision in precisions
    }
    result = Evaluation(tuple(name for predictors in runs.values() for name in predictors))
    persam_file_values = persam_file_values and any(s.method == "persam" for s in methods.values())
    total = sum(len(s.targets) for s in sequences)
    done = 0

    def encode(precision: str, frame: Frame, limits) -> tuple[np.ndarray, ImageEmbedding]:
        image = read_image(frame.image)
        start = time.perf_counter()
        embedding = next(iter(runs[precision].values())).encode(image, limits=limits, name=str(frame.image))
        _synchronize(model)
        result.encoder_seconds.setdefault(precision, []).append(time.perf_counter() - start)
        return image, embedding

    for sequence in sequences:
        limits = sequence_limits(sequence)
        reference_mask = read_mask(sequence.reference.mask, threshold)
        persam_mask = persam_mask_values(sequence.reference.mask) if persam_file_values else None
        for precision, predictors in runs.items():
            image, embedding = encode(precision, sequence.reference, limits)
            for predictor in predictors.values():
                predictor.set_reference(
                    image, reference_mask, limits=limits, embedding=embedding, persam_mask=persam_mask
                )
        for frame in sequence.targets:
            truth = read_mask(frame.mask, threshold)
            for precision, predictors in runs.items():
                _, embedding = encode(precision, frame, limits)
                for name, predictor in predictors.items():
                    start = time.perf_counter()
                    segmentation = predictor.segment_embedding(embedding)
                    seconds = time.perf_counter() - start
                    result.frames.append(
                        FrameScore(
                            sequence.name,
                            frame.name,
                            name,
                            overlap(segmentation.mask, truth),
                            segmentation.k,
                            segmentation.score,
                            seconds,
                        )
                    )
                    if out is not None:
                        save_prediction(Path(out) / name / sequence.name / f"{frame.name}.png", segmentation.mask)
            done += 1
            if progress is not None:
                progress(done, total, sequence.name)
    return result
