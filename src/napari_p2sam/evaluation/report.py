"""Show an evaluation: a terminal table, two CSV files and a PNG plot, methods side by side.

Scores are printed and written in percent with two decimals, as the paper
reports them. ``frames.csv`` keeps the raw pixel counts of every scored frame,
so any other summary can be recomputed from it. CSV files go through
:func:`~napari_p2sam.io.tables.write_csv`, which keeps spreadsheets from
running a name as a formula.
"""

from __future__ import annotations

from pathlib import Path
from statistics import median

from ..io.tables import write_csv
from .protocols import Summary
from .runner import Evaluation, FrameScore

FRAME_COLUMNS = (
    "sequence", "frame", "method", "dice_percent", "iou_percent", "intersection", "union",
    "prediction_pixels", "truth_pixels", "k", "retrieval_distance", "seconds",
)  # fmt: skip


def percent(value: float) -> str:
    return f"{100 * value:.2f}"


def column_titles(summary: Summary) -> list[str]:
    """Method names, with the metric added where a method has several columns."""
    several = len({metric for _, metric in summary.columns}) > 1
    return [f"{method} {metric}" if several else method for method, metric in summary.columns]


def table(summary: Summary) -> str:
    """The per-row table, right-aligned percent, one column per (method, metric)."""
    titles = column_titles(summary)
    label_width = max(len(summary.row_header), *(len(label) for label, _ in summary.rows))
    widths = [max(len(t), 6) for t in titles]
    lines = ["  ".join([summary.row_header.ljust(label_width), *(t.rjust(w) for t, w in zip(titles, widths))])]
    for label, values in summary.rows:
        lines.append("  ".join([label.ljust(label_width), *(percent(v).rjust(w) for v, w in zip(values, widths))]))
    return "\n".join(lines)


def total_lines(summary: Summary) -> list[str]:
    """One line per headline number: ``mIoU: 90.01`` for one method,
    ``mIoU: 90.01 (p2sam)  64.00 (persam)`` for several."""
    if len(summary.methods) == 1:
        return [f"{name}: {percent(values[0])}" for name, values in summary.totals]
    return [
        f"{name}: " + "  ".join(f"{percent(v)} ({m})" for v, m in zip(values, summary.methods))
        for name, values in summary.totals
    ]


def timing_line(evaluation: Evaluation) -> str:
    """Median seconds per image: the shared encoder pass (one per precision), then each method's segmentation."""
    encoders = evaluation.encoder_seconds
    parts = [
        f"encoder {median(seconds):.3f}" if len(encoders) == 1 else f"encoder {precision} {median(seconds):.3f}"
        for precision, seconds in encoders.items()
    ]
    parts += [f"{m} {median(f.seconds for f in evaluation.scores(m)):.3f}" for m in evaluation.methods]
    return "seconds per image (median): " + ", ".join(parts)


def write_frames_csv(path: Path, evaluation: Evaluation) -> None:
    """One row per (scored frame, method), in dataset order."""
    write_csv(path, FRAME_COLUMNS, (frame_row(s) for s in evaluation.frames))


def frame_row(s: FrameScore) -> list:
    """The cells of :data:`FRAME_COLUMNS` for one frame's score."""
    c = s.counts
    return [s.sequence, s.frame, s.method, percent(s.dice), percent(s.iou), c.intersection, c.union,
            c.tp + c.fp, c.tp + c.fn, s.k, f"{s.retrieval:.6g}", f"{s.seconds:.4f}"]  # fmt: skip


def write_summary_csv(path: Path, summary: Summary) -> None:
    """Long format ``row, method, metric, percent``: the table's cells, then the totals (row ``all``)."""
    cells = [
        [label, method, metric, percent(value)]
        for label, values in summary.rows
        for (method, metric), value in zip(summary.columns, values)
    ]
    totals = [
        ["all", method, name, percent(value)]
        for name, values in summary.totals
        for method, value in zip(summary.methods, values)
    ]
    write_csv(path, [summary.row_header, "method", "metric", "percent"], cells + totals)


def plot(path: Path, evaluation: Evaluation, summary: Summary) -> None:
    """Per-frame scores of every method, frames in dataset order, sequences separated by dotted lines."""
    from matplotlib.figure import Figure

    metric = summary.frame_metric
    first = evaluation.scores(evaluation.methods[0])
    count = len(first)
    figure = Figure(figsize=(min(6 + count / 40, 20), 4), layout="constrained")
    axes = figure.add_subplot()
    for method in evaluation.methods:
        values = [100 * getattr(f, metric) for f in evaluation.scores(method)]
        axes.plot(range(count), values, marker="o", markersize=3, linewidth=0.8, label=method)
    boundaries = [i for i in range(1, count) if first[i].sequence != first[i - 1].sequence]
    for x in boundaries:
        axes.axvline(x - 0.5, color="0.8", linestyle=":", linewidth=0.8)
    if len(evaluation.sequences) == 1 and count <= 40:
        axes.set_xticks(range(count), [f.frame for f in first], rotation=90, fontsize=7)
    axes.set_xlabel(
        "scored frame"
        if len(evaluation.sequences) == 1
        else f"scored frame ({summary.row_header}s separated by dotted lines)"
    )
    axes.set_ylabel(f"{'IoU' if metric == 'iou' else 'Dice'} per frame (%)")
    axes.set_ylim(-2, 102)
    axes.set_title(f"{summary.title}\n{'; '.join(total_lines(summary))}", fontsize=9)
    axes.legend(loc="lower left", fontsize=8)
    figure.savefig(path, dpi=120)
