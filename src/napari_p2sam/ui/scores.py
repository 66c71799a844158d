"""The frame scores dock: the score plot above the score table; clicking either goes to a frame.

Imports no torch: the model runs in another process.
"""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QSplitter, QVBoxLayout, QWidget

from ..engine.results import FrameResult
from .score_plot import ScorePlot
from .score_table import ScoreTable


class FrameScores(QWidget):
    """Scores of the latest run; ``frame_clicked(frame)`` is emitted when a point, listed frame or row is clicked."""

    frame_clicked = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.plot = ScorePlot()
        self.table = ScoreTable()
        splitter = QSplitter(Qt.Orientation.Vertical)
        for view in (self.plot, self.table):
            view.frame_clicked.connect(self.frame_clicked.emit)
            splitter.addWidget(view)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    def add(self, result: FrameResult) -> None:
        """Add each object segmented in ``result`` (painted frames have none) to the table and the plot."""
        rows = [
            (result.index, label, segmentation.score, segmentation.k, result.reference_frame)
            for label, segmentation in sorted(result.segmentations.items())
        ]
        self.add_rows(rows)

    def add_rows(self, rows: list[tuple]) -> None:
        """Add rows (frame, label, score, k, reference frame) to the table and the plot."""
        if not rows:
            return
        self.table.add_rows(rows)
        for frame, label, score, _k, _reference in rows:
            self.plot.add_score(frame, label, score)

    def clear_rows(self) -> None:
        """Forget the previous run's scores."""
        self.table.setRowCount(0)
        self.plot.clear()

    def frames(self) -> list[int]:
        """The frame of each table row, top to bottom."""
        return self.table.frames()
