"""The published summaries of each layout (docs/algorithm.md §9), methods side by side.

- PerSeg: per object, the pooled IoU of its scored images; mIoU = mean over objects.
- CVC-ClinicDB: per video, the mean Dice of its scored frames;
  Video Dice = mean of the per-video means; Image Dice = mean over all scored frames.
- folder: Dice and IoU of each scored frame; their means over the frames.

Every number is a fraction in [0, 1]; the report prints percent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import fmean

from .metrics import pooled_iou
from .runner import Evaluation, FrameScore

Row = tuple[str, tuple[float, ...]]
"""(label, one value per column)."""


@dataclass(frozen=True)
class Summary:
    """A table (one row per object, video or frame) and the headline numbers.

    ``columns``: (method, metric) of each table column; ``rows``: (label, one
    value per column). ``totals``: (name, one value per method).
    ``frame_metric``: the per-frame score plotted, ``"iou"`` or ``"dice"``.
    """

    title: str
    row_header: str
    columns: tuple[tuple[str, str], ...]
    rows: list[Row]
    totals: list[Row]
    methods: tuple[str, ...]
    frame_metric: str


def per_sequence(
    evaluation: Evaluation, score: Callable[[list[FrameScore]], float]
) -> tuple[list[Row], tuple[float, ...]]:
    """One row per sequence: each method's ``score`` of its frames; and each method's mean over the rows."""
    methods = evaluation.methods
    rows = [(seq, tuple(score(evaluation.scores(m, seq)) for m in methods)) for seq in evaluation.sequences]
    return rows, tuple(fmean(values[i] for _, values in rows) for i in range(len(methods)))


def perseg_summary(evaluation: Evaluation) -> Summary:
    methods = evaluation.methods
    rows, miou = per_sequence(evaluation, lambda frames: pooled_iou(f.counts for f in frames))
    columns = tuple((m, "IoU") for m in methods)
    return Summary(
        "PerSeg: IoU per object, pooled over its test images", "object", columns, rows, [("mIoU", miou)], methods, "iou"
    )


def cvc_summary(evaluation: Evaluation) -> Summary:
    methods = evaluation.methods
    rows, video_dice = per_sequence(evaluation, lambda frames: fmean(f.dice for f in frames))
    image_dice = tuple(fmean(f.dice for f in evaluation.scores(m)) for m in methods)
    totals = [("Video Dice", video_dice), ("Image Dice", image_dice)]
    columns = tuple((m, "Dice") for m in methods)
    return Summary("CVC-ClinicDB: mean Dice per video", "video", columns, rows, totals, methods, "dice")


def folder_summary(evaluation: Evaluation) -> Summary:
    methods = evaluation.methods
    columns = tuple((m, metric) for m in methods for metric in ("Dice", "IoU"))
    per_method = {m: evaluation.scores(m) for m in methods}
    frames = [f.frame for f in per_method[methods[0]]]
    rows = [
        (frame, tuple(value for m in methods for value in (per_method[m][i].dice, per_method[m][i].iou)))
        for i, frame in enumerate(frames)
    ]
    totals = [
        ("Dice", tuple(fmean(f.dice for f in per_method[m]) for m in methods)),
        ("IoU", tuple(fmean(f.iou for f in per_method[m]) for m in methods)),
    ]
    return Summary("Dice and IoU per scored frame", "frame", columns, rows, totals, methods, "dice")


SUMMARIES = {"perseg": perseg_summary, "cvc": cvc_summary, "folder": folder_summary}
