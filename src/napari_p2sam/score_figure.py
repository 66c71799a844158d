"""Scores against frames on matplotlib axes (no Qt): the scores dock and the batch report draw the same plot.

One line per object; the frames that stand out (:func:`napari_p2sam.engine.quality.outlier_frames`)
ringed in red; empty masks, which have no score to draw, as red crosses along the top edge.
"""

from __future__ import annotations

import math

from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

# one colour per object, in label order; no red, which marks the frames that stand out
LINE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
OUTLIER_COLOUR = "#d62728"  # matplotlib's tab:red


def draw_scores(axes, scores: dict[int, dict[int, float]], outliers: dict[int, list[int]]) -> list[tuple[int, float]]:
    """Draw ``scores`` (label → frame → score) on empty ``axes``, ``outliers`` (label → frames) marked.

    Returns every drawn (frame, score), with ``inf`` for a cross on the top edge.
    """
    points: list[tuple[int, float]] = []
    axes.set_xlabel("frame")
    axes.set_ylabel("score")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    rings, crosses = [], []
    for index, (label, object_scores) in enumerate(sorted(scores.items())):
        drawn = sorted((frame, score) for frame, score in object_scores.items() if math.isfinite(score))
        if drawn:
            colour = LINE_COLOURS[index % len(LINE_COLOURS)]
            axes.plot(*zip(*drawn), marker="o", markersize=3, linewidth=1, color=colour, label=f"label {label}")
        rings += [(frame, object_scores[frame]) for frame in outliers[label] if math.isfinite(object_scores[frame])]
        crosses += [frame for frame in outliers[label] if object_scores[frame] == math.inf]
        points += drawn + [(frame, math.inf) for frame in sorted(object_scores) if object_scores[frame] == math.inf]
    if rings:
        axes.plot(
            *zip(*rings),
            linestyle="",
            marker="o",
            markersize=9,
            markerfacecolor="none",
            markeredgecolor=OUTLIER_COLOUR,
            markeredgewidth=1.5,
            label="stands out",
        )
    if crosses:
        top = blended_transform_factory(axes.transData, axes.transAxes)
        axes.plot(
            crosses,
            [1.0] * len(crosses),
            transform=top,
            clip_on=False,
            linestyle="",
            marker="x",
            markersize=7,
            color=OUTLIER_COLOUR,
            label="empty mask",
        )
    if scores and not points:
        axes.text(
            0.5,
            0.5,
            "no scores: PerSAM does not score its masks",
            ha="center",
            va="center",
            transform=axes.transAxes,
        )
    if points:
        axes.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncols=2, borderaxespad=0, frameon=False)
    return points
