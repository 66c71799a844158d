"""The frame scores table: one row per segmented object and frame; click a row to go to its frame.

Columns: frame, label, retrieval score (the optimal-transport distance
between the kept mask's features and the reference's: higher = less like
the reference, so sort it descending to find the worst frames first), the
chosen part count k, and the painted frame used as reference.
"""

from __future__ import annotations

import math

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

COLUMNS = ("frame", "label", "score", "k", "reference")


class ScoreTable(QTableWidget):
    """One row per (frame, label); ``frame_clicked(frame)`` is emitted when a row is clicked."""

    frame_clicked = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setVisible(False)
        self.setSortingEnabled(True)
        self.sortItems(0, Qt.SortOrder.AscendingOrder)  # by frame until the user sorts otherwise
        self.setToolTip(
            "score: retrieval distance to the reference (higher = less alike); sort by it to find the worst "
            "frames, click a row to go to its frame"
        )
        self.cellClicked.connect(self._row_clicked)

    def add_rows(self, rows: list[tuple]) -> None:
        """Add rows of ``COLUMNS`` values: (frame, label, score, k, reference frame)."""
        self.setSortingEnabled(False)  # rows inserted while sorted would scatter their cells
        for values in rows:
            row = self.rowCount()
            self.insertRow(row)
            for column, value in enumerate(values):
                self.setItem(row, column, NumberItem(value))
        self.setSortingEnabled(True)

    def frames(self) -> list[int]:
        """The frame of each row, top to bottom."""
        return [int(self.item(row, 0).data(Qt.ItemDataRole.UserRole)) for row in range(self.rowCount())]

    def _row_clicked(self, row: int, _column: int) -> None:
        self.frame_clicked.emit(int(self.item(row, 0).data(Qt.ItemDataRole.UserRole)))


class NumberItem(QTableWidgetItem):
    """A cell shown as text and sorted by number: a missing score (PerSAM) sorts first, an empty mask last."""

    def __init__(self, value) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            text, key = ("empty", math.inf) if value > 0 else ("–", -math.inf)
        else:
            text, key = (f"{value:.4g}" if isinstance(value, float) else str(value)), float(value)
        super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole, key)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.data(Qt.ItemDataRole.UserRole) < other.data(Qt.ItemDataRole.UserRole)
