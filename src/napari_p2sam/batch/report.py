"""What a batch reports: ``frames.csv`` (a row per frame and object), ``report.csv`` (a row per item), ``report.html``.

QC: within each item, a frame is flagged when, for any of its objects, it
stands out by :func:`napari_p2sam.engine.quality.outlier_frames` (an empty
mask, or a score above Q3 + 1.5 × IQR of that object's finite scores in the
item), the rule the scores dock uses. The records of each finished chunk are
kept with its chunk record (:func:`write_chunk_records`), so the report of a
resumed batch covers every frame.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median

import numpy as np

from ..engine.quality import outlier_frames
from ..engine.results import FrameResult
from ..io.tables import read_csv, write_csv
from .records import chunk_record_path, recorded_chunks, write_json

FRAME_COLUMNS = ("item", "frame", "label", "score", "k", "reference_frame", "seconds")
ITEM_COLUMNS = (
    "item", "input", "output", "frames", "seconds", "status", "error", "median_score", "flagged_frames",
)  # fmt: skip
STATUSES = ("done", "failed", "cancelled")
FRAMES_CSV, REPORT_CSV, REPORT_HTML = "frames.csv", "report.csv", "report.html"


@dataclass(frozen=True)
class FrameRecord:
    """One object on one frame of an item.

    ``score``: its retrieval distance (higher = less alike; ``inf`` = empty
    mask; ``nan`` = none: PerSAM, or a painted frame). ``k``: the part count
    kept (None on a painted frame). ``reference_frame``: the painted frame
    used (a painted frame names itself). ``seconds``: the whole frame's time.
    """

    item: str
    frame: int
    label: int
    score: float
    k: int | None
    reference_frame: int
    seconds: float


@dataclass(frozen=True)
class ItemOutcome:
    """How an item ended: ``status`` one of :data:`STATUSES`; ``seconds`` of work; ``error`` for a failed item.

    ``input`` and ``output`` are written as absolute paths, so ``open-results`` finds them from any folder.
    """

    name: str
    input: Path
    output: Path
    status: str
    seconds: float
    error: str = ""


def frame_records(item_name: str, result: FrameResult, seconds: float) -> list[FrameRecord]:
    """The records of one engine frame result, one per object (painted frames: each painted label, unscored)."""
    if result.painted:
        labels = [int(v) for v in np.unique(result.labels) if v != 0]
        return [FrameRecord(item_name, result.index, label, math.nan, None, result.index, seconds) for label in labels]
    return [
        FrameRecord(item_name, result.index, label, float(seg.score), int(seg.k), result.reference_frame, seconds)
        for label, seg in sorted(result.segmentations.items())
    ]


def write_chunk_records(path: Path, records: Iterable[FrameRecord]) -> None:
    """Store a chunk's records as JSON at ``path``, atomically (``inf``/``nan`` kept as JSON's Infinity/NaN)."""
    write_json(path, [asdict(record) for record in records])


def read_chunk_records(path: Path) -> list[FrameRecord]:
    """The records :func:`write_chunk_records` stored at ``path``."""
    return [FrameRecord(**fields) for fields in json.loads(path.read_text())]


def item_records(out_dir: Path, name: str) -> list[FrameRecord]:
    """Every record of the finished chunks of item ``name`` in ``out_dir``, in frame order."""
    return [
        record
        for start, stop in recorded_chunks(out_dir, name)
        for record in read_chunk_records(chunk_record_path(out_dir, name, start, stop))
    ]


def object_scores(records: Iterable[FrameRecord]) -> dict[str, dict[int, dict[int, float]]]:
    """item → label → frame → score."""
    scores: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for record in records:
        scores[record.item][record.label][record.frame] = record.score
    return scores


def flagged_frames(records: Iterable[FrameRecord]) -> dict[str, list[int]]:
    """item → its flagged frames, in order: those where any object stands out (see the module's QC rule)."""
    return {
        item: sorted({frame for by_frame in labels.values() for frame in outlier_frames(by_frame)})
        for item, labels in object_scores(records).items()
    }


def write_frames_csv(path: Path, records: Iterable[FrameRecord]) -> None:
    """``frames.csv``: one row per record (empty score or k where there is none)."""
    write_csv(path, FRAME_COLUMNS, (frame_row(record) for record in records))


def frame_row(record: FrameRecord) -> list[object]:
    score = "" if math.isnan(record.score) else record.score
    k = "" if record.k is None else record.k
    return [record.item, record.frame, record.label, score, k, record.reference_frame, f"{record.seconds:.4f}"]


def read_frames_csv(path: Path) -> list[FrameRecord]:
    """The records of a ``frames.csv`` that :func:`write_frames_csv` wrote."""
    return [
        FrameRecord(
            item=row["item"],
            frame=int(row["frame"]),
            label=int(row["label"]),
            score=float(row["score"]) if row["score"] else math.nan,
            k=int(row["k"]) if row["k"] else None,
            reference_frame=int(row["reference_frame"]),
            seconds=float(row["seconds"]),
        )
        for row in read_csv(path)
    ]


def item_rows(outcomes: Sequence[ItemOutcome], records: Sequence[FrameRecord]) -> list[list[object]]:
    """``report.csv``'s rows: one per outcome; median of the item's finite scores, number of flagged frames."""
    flags = flagged_frames(records)
    frames: dict[str, set[int]] = defaultdict(set)
    finite: dict[str, list[float]] = defaultdict(list)
    for record in records:
        frames[record.item].add(record.frame)
        if math.isfinite(record.score):
            finite[record.item].append(record.score)
    return [
        [
            outcome.name,
            outcome.input.absolute(),
            outcome.output.absolute(),
            len(frames[outcome.name]),
            f"{outcome.seconds:.1f}",
            outcome.status,
            outcome.error,
            f"{median(finite[outcome.name]):.4f}" if finite[outcome.name] else "",
            len(flags.get(outcome.name, [])),
        ]
        for outcome in outcomes
    ]


def write_report_csv(path: Path, outcomes: Sequence[ItemOutcome], records: Sequence[FrameRecord]) -> None:
    """``report.csv``: one row per item (see :data:`ITEM_COLUMNS`)."""
    write_csv(path, ITEM_COLUMNS, item_rows(outcomes, records))


def read_report_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a ``report.csv`` as ``{column: text}``."""
    return read_csv(path)


def write_report_html(path: Path, outcomes: Sequence[ItemOutcome], records: Sequence[FrameRecord]) -> None:
    """``report.html``: the item table, then per item its score plot (PNG inline) and flagged frames; one file."""
    rows = item_rows(outcomes, records)
    scores, flags = object_scores(records), flagged_frames(records)
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>\n" for row in rows)
    sections = []
    for outcome in outcomes:
        flagged = flags.get(outcome.name, [])
        listed = ", ".join(map(str, flagged)) if flagged else "none"
        error = f"<p class=error>{html.escape(outcome.error)}</p>" if outcome.error else ""
        plot = score_png(scores.get(outcome.name, {}))
        sections.append(
            f"<h2 id='{html.escape(outcome.name, quote=True)}'>{html.escape(outcome.name)} ({outcome.status})</h2>\n"
            f"{error}<p>Flagged frames: {listed}</p>\n"
            f"<img alt='score against frame for {html.escape(outcome.name, quote=True)}' "
            f"src='data:image/png;base64,{plot}'>\n"
        )
    header = "".join(f"<th>{name}</th>" for name in ITEM_COLUMNS)
    path.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>napari-p2sam batch report</title>\n"
        "<style>body{font-family:sans-serif} td,th{border:1px solid #ccc;padding:2px 6px} "
        "table{border-collapse:collapse} .error{color:#d62728}</style></head><body>\n"
        "<h1>napari-p2sam batch report</h1>\n"
        "<p>A frame is flagged when one of its objects has an empty mask, or a retrieval score above "
        "Q3 + 1.5 × IQR of that object's scores in the item (higher = less alike): review those first.</p>\n"
        f"<table><tr>{header}</tr>\n{cells}</table>\n" + "".join(sections) + "</body></html>\n"
    )


def score_png(scores: dict[int, dict[int, float]]) -> str:
    """The score plot of one item (label → frame → score) as base64 PNG text."""
    from matplotlib.figure import Figure

    from ..score_figure import draw_scores

    figure = Figure(figsize=(8, 2.5), layout="constrained")
    draw_scores(figure.add_subplot(), scores, {label: outlier_frames(by_frame) for label, by_frame in scores.items()})
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_reports(out_dir: Path, outcomes: Sequence[ItemOutcome], records: Sequence[FrameRecord]) -> None:
    """Write ``frames.csv``, ``report.csv`` and ``report.html`` into ``out_dir``."""
    write_frames_csv(out_dir / FRAMES_CSV, records)
    write_report_csv(out_dir / REPORT_CSV, outcomes, records)
    write_report_html(out_dir / REPORT_HTML, outcomes, records)


@dataclass(frozen=True)
class ItemResults:
    """One item of a finished (or stopped) batch: its paths, its frame records and its flagged frames."""

    name: str
    input: Path
    output: Path
    status: str
    records: list[FrameRecord]
    flagged: list[int]


def read_item_results(out_dir: Path, name: str) -> ItemResults:
    """Item ``name`` of the batch whose ``--out`` was ``out_dir``, from its ``report.csv`` and ``frames.csv``.

    Raises ``FileNotFoundError`` without the report, ``ValueError`` for an unknown item (naming the known ones).
    """
    report = out_dir / REPORT_CSV
    if not report.is_file():
        raise FileNotFoundError(f"{out_dir} has no {REPORT_CSV}: give the --out folder of a napari-p2sam batch")
    rows = {row["item"]: row for row in read_report_csv(report)}
    if name not in rows:
        known = ", ".join(sorted(rows)[:20]) + (", ..." if len(rows) > 20 else "")
        raise ValueError(f"{report} has no item {name!r}; its items: {known or 'none'}")
    row = rows[name]
    frames = out_dir / FRAMES_CSV
    records = [r for r in read_frames_csv(frames) if r.item == name] if frames.is_file() else []
    return ItemResults(
        name=name,
        input=Path(row["input"]),
        output=Path(row["output"]),
        status=row["status"],
        records=records,
        flagged=flagged_frames(records).get(name, []),
    )
