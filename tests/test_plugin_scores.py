"""The frame scores dock on its own (under Xvfb): the score plot, its marks and clicks, and the table below it."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.colors import to_hex
from qtpy.QtCore import QPoint, Qt
from qtpy.QtGui import QColor, QPalette, QTextDocument

from napari_p2sam.engine.propagate import FrameResult
from napari_p2sam.engine.segment import Segmentation
from napari_p2sam.ui.score_plot import REDRAW_INTERVAL_MS
from napari_p2sam.ui.scores import FrameScores

EMPTY = math.inf
# label 1: frame 6 is far above the rest (1.0-1.4: Q1 = 1.125, Q3 = 1.375, fence 1.75);
# label 2: frame 3's mask is empty, its other scores are 2.0-2.4 (fence 2.6)
SCORES = {
    1: {1: 1.0, 2: 1.1, 3: 1.2, 4: 1.3, 5: 1.4, 6: 5.0},
    2: {1: 2.0, 2: 2.1, 3: EMPTY, 4: 2.2, 5: 2.3, 6: 2.4},
}


def frame_result(frame: int, scores: dict[int, float]) -> FrameResult:
    """Frame ``frame`` as propagate yields it, with one segmentation per label of ``scores`` (label → score)."""
    segmentations = {
        label: Segmentation(np.zeros((8, 8), bool), np.zeros((0, 2)), np.zeros(0), score, 2, [])
        for label, score in scores.items()
    }
    return FrameResult(frame, np.zeros((8, 8), np.uint8), segmentations, reference_frame=0, painted=False)


def add_run(dock: FrameScores, scores: dict[int, dict[int, float]]) -> None:
    """Add label → frame → score to ``dock`` one frame at a time, as a run does."""
    for frame in sorted({frame for by_frame in scores.values() for frame in by_frame}):
        by_label = {label: by_frame[frame] for label, by_frame in scores.items() if frame in by_frame}
        dock.add(frame_result(frame, by_label))


@pytest.fixture
def dock(qtbot) -> FrameScores:
    dock = FrameScores()
    qtbot.addWidget(dock)
    dock.resize(500, 700)
    dock.show()
    qtbot.waitExposed(dock)
    return dock


def drawn(dock: FrameScores) -> dict[str, list[list[float]]]:
    """Each line of the plot by its legend name: its (frame, score) points; empty masks at y = 1 (the top edge)."""
    return {line.get_label(): line.get_xydata().tolist() for line in dock.plot.axes.get_lines()}


def listed(dock: FrameScores) -> tuple[str, list[int]]:
    """The list of frames that stand out under the plot: the text it reads, and the frame each link goes to."""
    document = QTextDocument()
    document.setHtml(dock.plot.outliers.text())
    return document.toPlainText(), [int(frame) for frame in re.findall(r'href="(\d+)"', dock.plot.outliers.text())]


def wait_for_points(qtbot, dock: FrameScores) -> None:
    qtbot.waitUntil(lambda: "label 1" in drawn(dock), timeout=2000)


def click_point(qtbot, dock: FrameScores, name: str, index: int) -> None:
    """Click with the mouse where point ``index`` of the line ``name`` is drawn."""
    line = next(line for line in dock.plot.axes.get_lines() if line.get_label() == name)
    x, y = line.get_transform().transform(line.get_xydata()[index])  # pixels from the bottom left
    click_pixel(qtbot, dock, x, y)


def click_pixel(qtbot, dock: FrameScores, x: float, y: float) -> None:
    canvas = dock.plot.canvas
    ratio = canvas.device_pixel_ratio
    position = QPoint(round(x / ratio), round(canvas.height() - y / ratio))  # Qt counts from the top left
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=position)


def test_one_line_per_label_with_its_frames_and_scores(qtbot, dock):
    add_run(dock, SCORES)
    wait_for_points(qtbot, dock)
    lines = drawn(dock)
    assert lines["label 1"] == [[frame, score] for frame, score in SCORES[1].items()]
    assert lines["label 2"] == [[1, 2.0], [2, 2.1], [4, 2.2], [5, 2.3], [6, 2.4]]  # an empty mask has no score
    assert sorted(dock.frames()) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]  # and a table row per label and frame


def test_frames_that_stand_out_are_ringed_crossed_and_listed(qtbot, dock):
    add_run(dock, SCORES)
    wait_for_points(qtbot, dock)
    lines = drawn(dock)
    assert lines["stands out"] == [[6, 5.0]]  # a red ring around label 1's frame 6
    assert lines["empty mask"] == [[3, 1.0]]  # a red cross on the top edge at label 2's frame 3
    assert listed(dock) == ("Stand out: label 1: 6; label 2: 3", [6, 3])


def test_consecutive_frames_that_stand_out_are_listed_as_a_range(qtbot, dock):
    add_run(dock, {1: {1: 1.0, 2: 1.1, 3: 1.2, 4: EMPTY, 5: EMPTY, 6: EMPTY, 7: 1.3, 9: EMPTY}})
    wait_for_points(qtbot, dock)
    assert listed(dock) == ("Stand out: label 1: 4–6, 9", [4, 9])
    with qtbot.waitSignal(dock.frame_clicked) as clicked:
        dock.plot.outliers.linkActivated.emit("4")
    assert clicked.args == [4]


def test_clicking_a_point_emits_its_frame(qtbot, dock):
    add_run(dock, SCORES)
    wait_for_points(qtbot, dock)
    with qtbot.waitSignal(dock.frame_clicked) as clicked:
        click_point(qtbot, dock, "label 1", 3)  # frame 4
    assert clicked.args == [4]
    with qtbot.waitSignal(dock.frame_clicked) as clicked:
        click_point(qtbot, dock, "label 2", 0)  # frame 1
    assert clicked.args == [1]
    with qtbot.waitSignal(dock.frame_clicked) as clicked:
        click_point(qtbot, dock, "empty mask", 0)
    assert clicked.args == [3]


def test_clicking_away_from_every_point_emits_nothing(qtbot, dock):
    add_run(dock, SCORES)
    wait_for_points(qtbot, dock)
    x, y = dock.plot.axes.transData.transform((3.5, 1.7))  # half a frame and 0.3 score from every point
    with qtbot.assertNotEmitted(dock.frame_clicked):
        click_pixel(qtbot, dock, x, y)


def test_a_run_of_frames_arriving_together_is_drawn_once(qtbot, dock):
    draws = []
    dock.plot.canvas.mpl_connect("draw_event", draws.append)
    add_run(dock, {1: {frame: 1.0 + frame % 3 for frame in range(1, 51)}})
    qtbot.wait(2 * REDRAW_INTERVAL_MS)
    assert len(draws) == 1
    assert len(drawn(dock)["label 1"]) == 50


def test_unscored_masks_are_not_plotted_and_nothing_stands_out(qtbot, dock):
    add_run(dock, {1: {1: math.nan, 2: math.nan}})  # PerSAM scores nothing
    qtbot.waitUntil(lambda: dock.plot.outliers.text() != "", timeout=2000)
    assert drawn(dock) == {}
    assert [text.get_text() for text in dock.plot.axes.texts] == ["no scores: PerSAM does not score its masks"]
    assert listed(dock) == ("No frame stands out.", [])


def test_a_new_run_starts_from_an_empty_plot_and_table(qtbot, dock):
    add_run(dock, SCORES)
    wait_for_points(qtbot, dock)
    dock.clear_rows()
    assert drawn(dock) == {} and dock.frames() == [] and listed(dock) == ("", [])
    add_run(dock, {2: {7: 3.0}})
    qtbot.waitUntil(lambda: "label 2" in drawn(dock), timeout=2000)
    assert drawn(dock) == {"label 2": [[7, 3.0]]}


def test_the_plot_is_drawn_in_the_docks_colours(qtbot, dock):
    palette = dock.plot.palette()  # as napari's dark theme sets it
    palette.setColor(QPalette.ColorRole.Window, QColor("#23242b"))
    palette.setColor(QPalette.ColorRole.WindowText, QColor("#f0f1f2"))
    dock.plot.setPalette(palette)
    add_run(dock, SCORES)
    wait_for_points(qtbot, dock)
    axes = dock.plot.axes
    assert to_hex(dock.plot.figure.get_facecolor()) == to_hex(axes.get_facecolor()) == "#23242b"
    assert to_hex(axes.xaxis.label.get_color()) == to_hex(axes.spines["left"].get_edgecolor()) == "#f0f1f2"


def test_clicking_a_table_row_emits_its_frame(qtbot, dock):
    add_run(dock, SCORES)
    row = dock.frames().index(5)
    with qtbot.waitSignal(dock.frame_clicked) as clicked:
        dock.table.cellClicked.emit(row, 2)
    assert clicked.args == [5]


def test_the_scores_dock_does_not_import_torch():
    """The model will run in another process: napari's process must not pay for importing torch."""
    script = "import sys, napari_p2sam.ui.scores; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
