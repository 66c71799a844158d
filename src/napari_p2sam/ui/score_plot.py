"""The score plot: retrieval score against frame, one line per object, the frames that stand out ringed in red.

A frame stands out by :func:`napari_p2sam.engine.quality.outlier_frames`
(an empty mask, or a score above Q3 + 1.5 × IQR of its object's scores).
Empty masks have no score to draw: they are red crosses along the top
edge. The frames that stand out are also listed under the plot. Clicking
near a point, a cross or a listed frame emits ``frame_clicked(frame)``.
"""

from __future__ import annotations

import math

import matplotlib
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory
from qtpy.QtCore import QEvent, QTimer, Signal
from qtpy.QtGui import QPalette
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..engine.quality import outlier_frames
from ..score_figure import OUTLIER_COLOUR, draw_scores

REDRAW_INTERVAL_MS = 500  # new scores are drawn at most twice a second: a redraw takes 50-90 ms of napari's thread
CLICK_RADIUS_PX = 10  # a click this close to a point (screen pixels) goes to its frame


class ScorePlot(QWidget):
    """Scores of the latest run as a picture; ``frame_clicked(frame)`` when a point or a listed frame is clicked."""

    frame_clicked = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._scores: dict[int, dict[int, float]] = {}  # label → frame → score
        self._points: list[tuple[int, float]] = []  # (frame, score) of every drawn point; inf: a cross on top
        self.figure = Figure(figsize=(4, 2.5), layout="constrained")
        self.axes = self.figure.add_subplot()
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(120)
        self.canvas.setToolTip(
            "retrieval score of each object on each frame (higher = less alike); click a point to go to its frame"
        )
        self.canvas.mpl_connect("button_press_event", self._clicked)
        self.outliers = QLabel()
        self.outliers.setWordWrap(True)
        self.outliers.setToolTip(
            "a frame stands out when its mask is empty or its score is above Q3 + 1.5 × IQR of its object's "
            "scores; click one to go to it"
        )
        self.outliers.linkActivated.connect(lambda frame: self.frame_clicked.emit(int(frame)))
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_INTERVAL_MS)
        self._redraw_timer.timeout.connect(self.redraw)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas, stretch=1)
        layout.addWidget(self.outliers)
        self.redraw()

    def add_score(self, frame: int, label: int, score: float) -> None:
        """Add one object's score on one frame; drawn within ``REDRAW_INTERVAL_MS``."""
        self._scores.setdefault(label, {})[frame] = score
        self._redraw_soon()

    def changeEvent(self, event) -> None:
        """Follow napari's theme: redraw in the new colours."""
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._redraw_soon()

    def _redraw_soon(self) -> None:
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def clear(self) -> None:
        self._scores.clear()
        self.redraw()

    def redraw(self) -> None:
        """Draw every score now."""
        self._redraw_timer.stop()
        outliers = {label: outlier_frames(scores) for label, scores in self._scores.items()}
        with matplotlib.rc_context(plot_style(self.palette())):
            self._draw_scores(outliers)
            self.canvas.draw()
        self.outliers.setText(outlier_text(outliers))

    def _draw_scores(self, outliers: dict[int, list[int]]) -> None:
        """Draw ``self._scores`` with ``outliers`` (label → frames that stand out) marked."""
        axes = self.axes
        axes.clear()
        style = matplotlib.rcParams  # clear() keeps the first background and frame colours: set them again
        self.figure.set_facecolor(style["figure.facecolor"])
        axes.set_facecolor(style["axes.facecolor"])
        for spine in axes.spines.values():
            spine.set_edgecolor(style["axes.edgecolor"])
        self._points = draw_scores(axes, self._scores, outliers)

    def _position(self, frame: int, score: float) -> tuple[float, float]:
        """Where the point of (frame, score) is drawn, in the canvas's pixels from its bottom-left corner."""
        transform = self.axes.transData
        if score == math.inf:
            transform, score = blended_transform_factory(self.axes.transData, self.axes.transAxes), 1.0
        x, y = transform.transform((frame, score))
        return float(x), float(y)

    def _clicked(self, event) -> None:
        radius = CLICK_RADIUS_PX * self.canvas.device_pixel_ratio
        distances = [
            (math.dist(self._position(frame, score), (event.x, event.y)), frame) for frame, score in self._points
        ]
        distance, frame = min(distances, default=(math.inf, None))
        if distance <= radius:
            self.frame_clicked.emit(frame)


def plot_style(palette: QPalette) -> dict[str, object]:
    """Matplotlib settings that draw in the dock's colours (napari's theme) with small text."""
    background = palette.color(QPalette.ColorRole.Window).name()
    text = palette.color(QPalette.ColorRole.WindowText).name()
    colours = ("text.color", "axes.edgecolor", "axes.labelcolor", "xtick.color", "ytick.color")
    return {
        "font.size": 8,
        "figure.facecolor": background,
        "axes.facecolor": background,
        **{key: text for key in colours},
    }


def outlier_text(outliers: dict[int, list[int]]) -> str:
    """Label → frames that stand out as rich text: each run of consecutive frames links to its first frame."""
    if not outliers:
        return ""
    parts = []
    for label, frames in sorted(outliers.items()):
        runs = frame_runs(frames)
        if runs:
            parts.append(f"label {label}: " + ", ".join(map(run_link, runs)))
    return "Stand out: " + "; ".join(parts) if parts else "No frame stands out."


def run_link(run: list[int]) -> str:
    """``[7, 8, 9]`` → a link to frame 7 that reads 7–9."""
    text = str(run[0]) if len(run) == 1 else f"{run[0]}–{run[-1]}"
    return f'<a href="{run[0]}" style="color: {OUTLIER_COLOUR}">{text}</a>'


def frame_runs(frames: list[int]) -> list[list[int]]:
    """Sorted frames cut into runs of consecutive frames: ``[1, 2, 3, 7]`` → ``[[1, 2, 3], [7]]``."""
    runs: list[list[int]] = []
    for frame in frames:
        if runs and frame == runs[-1][-1] + 1:
            runs[-1].append(frame)
        else:
            runs.append([frame])
    return runs
