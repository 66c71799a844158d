"""The batch's records and reports: flagged frames by the documented rule, frames.csv, report.csv, report.html,
chunk records, and ``napari-p2sam open-results`` in a fresh napari process."""

from __future__ import annotations

import base64
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile

from napari_p2sam._reader import get_reader, read_batch_output
from napari_p2sam.batch.records import chunk_record_path, recorded_chunks
from napari_p2sam.batch.report import (
    FrameRecord,
    ItemOutcome,
    flagged_frames,
    frame_records,
    item_records,
    read_chunk_records,
    read_frames_csv,
    write_chunk_records,
    write_reports,
)
from napari_p2sam.cli import main
from napari_p2sam.engine.results import FrameResult, Segmentation
from napari_p2sam.io.label_files import create_label_zarr, write_label_tiff
from napari_p2sam.io.tables import read_csv

INF, NAN = math.inf, math.nan


def records(item: str, label: int, scores: list[float], first_frame: int = 0) -> list[FrameRecord]:
    """One object's records on consecutive frames (k 2, reference frame 0, 0.5 s each)."""
    return [FrameRecord(item, first_frame + i, label, s, 2, 0, 0.5) for i, s in enumerate(scores)]


# Worked by hand. "cells", label 1, frames 0-7: finite scores sorted 1.0 1.0 1.1 1.1 1.2 1.3 5.0 (n = 7);
# Q1 at position 1.5 = 1.05, Q3 at 4.5 = 1.25, fence 1.25 + 1.5 × 0.2 = 1.55: frame 6 (5.0) and frame 7 (empty).
# Label 2, frames 0-4: finite 2.0 2.0 2.0 2.1; Q1 = 2.0, Q3 at 2.25 = 2.025, fence 2.0625: frame 3 (2.1);
# frame 4 has no score (NaN) and is never flagged. "video": three finite scores, none can pass its fence.
CELLS = records("cells", 1, [1.0, 1.1, 1.2, 1.3, 1.0, 1.1, 5.0, INF]) + records("cells", 2, [2.0, 2.0, 2.0, 2.1, NAN])
VIDEO = records("video", 1, [1.0, 100.0, 1.0])


def test_flagged_frames_follow_the_documented_rule():
    assert flagged_frames(CELLS + VIDEO) == {"cells": [3, 6, 7], "video": []}
    assert flagged_frames(records("one", 1, [3.0, INF, NAN, 3.0])) == {"one": [1]}  # an empty mask always
    # per item: the same scores beside an item of larger ones are judged within their own item
    assert flagged_frames(records("a", 1, [1.0, 1.0, 1.0, 1.0, 1.5]) + records("b", 1, [9.0] * 4)) == {
        "a": [4],
        "b": [],
    }


def test_frame_records_of_engine_results():
    painted_labels = np.zeros((4, 4), np.uint16)
    painted_labels[0, 0], painted_labels[1, 1] = 3, 5
    painted = FrameResult(2, painted_labels, {}, None, True)
    unscored = [
        (r.item, r.frame, r.label, math.isnan(r.score), r.k, r.reference_frame, r.seconds)
        for r in frame_records("cells", painted, 0.01)
    ]
    assert unscored == [("cells", 2, 3, True, None, 2, 0.01), ("cells", 2, 5, True, None, 2, 0.01)]
    empty = np.zeros((4, 4), bool)
    segmented = FrameResult(
        7,
        np.zeros((4, 4), np.uint16),
        {5: Segmentation(empty, empty, empty, INF, 1, []), 3: Segmentation(empty, empty, empty, 0.25, 4, [])},
        2,
        False,
    )
    assert frame_records("cells", segmented, 1.5) == [
        FrameRecord("cells", 7, 3, 0.25, 4, 2, 1.5),
        FrameRecord("cells", 7, 5, INF, 1, 2, 1.5),
    ]


def test_chunk_records_round_trip_atomically(tmp_path):
    path = chunk_record_path(tmp_path, "cells", 8, 16)
    write_chunk_records(path, CELLS)
    write_chunk_records(chunk_record_path(tmp_path, "cells", 0, 8), VIDEO)
    back = read_chunk_records(path)
    assert [(r.item, r.frame, r.label, r.k) for r in back] == [(r.item, r.frame, r.label, r.k) for r in CELLS]
    assert [r.score for r in back][6:9] == [5.0, INF, 2.0] and math.isnan(back[-1].score)
    assert recorded_chunks(tmp_path, "cells") == [(0, 8), (8, 16)]
    assert [r.item for r in item_records(tmp_path, "cells")] == ["video"] * 3 + ["cells"] * 13
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "chunk-000000000-000000008.json",
        "chunk-000000008-000000016.json",
    ]  # no temporary left


def outcomes(tmp_path: Path) -> list[ItemOutcome]:
    return [
        ItemOutcome("cells", tmp_path / "cells.tif", tmp_path / "out" / "cells_labels.tif", "done", 12.31),
        ItemOutcome("video", tmp_path / "video.mp4", tmp_path / "out" / "video_labels.tif", "done", 3.0),
        ItemOutcome("=bad", tmp_path / "bad.tif", tmp_path / "out" / "bad_labels.tif", "failed", 0.0, "unreadable"),
    ]


def test_report_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    write_reports(out, outcomes(tmp_path), CELLS + VIDEO)
    frames = read_csv(out / "frames.csv")
    assert list(frames[0]) == ["item", "frame", "label", "score", "k", "reference_frame", "seconds"]
    assert len(frames) == 16
    assert frames[7] == {
        "item": "cells", "frame": "7", "label": "1", "score": "inf", "k": "2", "reference_frame": "0", "seconds": "0.5000",
    }  # fmt: skip
    assert frames[12]["score"] == ""  # no score
    assert read_frames_csv(out / "frames.csv")[:8] == CELLS[:8]
    report = read_csv(out / "report.csv")
    assert [row["item"] for row in report] == ["cells", "video", "=bad"]
    cells, video, bad = report
    # cells: 8 frames; its 11 finite scores 1.0 1.0 1.1 1.1 1.2 1.3 2.0 2.0 2.0 2.1 5.0: median 1.3
    assert (cells["frames"], cells["seconds"], cells["status"], cells["error"]) == ("8", "12.3", "done", "")
    assert (cells["median_score"], cells["flagged_frames"]) == ("1.3000", "3")
    assert (video["frames"], video["median_score"], video["flagged_frames"]) == ("3", "1.0000", "0")
    assert (bad["status"], bad["error"], bad["frames"], bad["median_score"]) == ("failed", "unreadable", "0", "")
    assert "'=bad" in (out / "report.csv").read_text()  # a spreadsheet shows it as text, never runs it
    page = (out / "report.html").read_text()
    assert page.count("<tr>") == 4 and "<td>=bad</td>" in page and "<td>unreadable</td>" in page
    assert "Flagged frames: 3, 6, 7" in page and "Flagged frames: none" in page
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(pngs) == 3 and all(base64.b64decode(png).startswith(b"\x89PNG") for png in pngs)
    assert "src='http" not in page and "<script" not in page  # one self-contained file


def test_open_results_names_what_is_missing(tmp_path, capsys):
    assert main(["open-results", str(tmp_path), "cells"]) == 1
    assert f"napari-p2sam open-results: error: {tmp_path} has no report.csv" in capsys.readouterr().err
    write_reports(tmp_path, outcomes(tmp_path), CELLS)
    assert main(["open-results", str(tmp_path), "cell"]) == 1
    assert "has no item 'cell'; its items: =bad, cells, video" in capsys.readouterr().err


def test_the_plugin_reader_opens_a_batch_output_folder(tmp_path):
    out = tmp_path / "out"
    (out / ".napari-p2sam-batch").mkdir(parents=True)
    write_label_tiff(
        out / "cells_labels.tif", (np.full((24, 32), 2, np.uint8) for _ in range(8)), (8, 24, 32), np.uint8
    )
    (out / "video_labels.tif").write_bytes((out / "cells_labels.tif").read_bytes())
    write_reports(out, outcomes(tmp_path), CELLS + VIDEO)  # =bad failed: no labels
    assert get_reader(str(out)) is read_batch_output
    layers = get_reader(str(out))(str(out))
    assert [(meta["name"], meta["metadata"], kind) for _data, meta, kind in layers] == [
        ("cells", {"flagged_frames": [3, 6, 7]}, "labels"),
        ("video", {"flagged_frames": []}, "labels"),
    ]
    assert layers[0][0].shape == (8, 24, 32) and int(layers[0][0][5].max().compute()) == 2
    assert get_reader(str(tmp_path)) is None  # a folder without images or a batch's report


OPEN_SCRIPT = r"""
import sys
import napari
napari.run = lambda: None  # the command's last step; the test looks at the viewer instead
from napari_p2sam.cli import main
for item in ("cells", "video"):
    assert main(["open-results", OUT, item]) == 0
    viewer = napari.current_viewer()
    labels = viewer.layers[item + " labels"]
    dock = viewer.window._dock_widgets["Frame scores"].inner_widget()
    print(item, [layer.name for layer in viewer.layers], type(labels).__name__, type(labels.data).__name__,
          viewer.dims.current_step[0], dock.plot.outliers.text().startswith("Stand out: label 1: "),
          dock.table.rowCount(), flush=True)
    viewer.close()
print("torch:", "torch" in sys.modules, flush=True)
"""


def test_open_results_in_a_fresh_napari(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("cells", "video"):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.zeros((8, 24, 32), np.uint8), photometric="minisblack")
    write_label_tiff(
        out / "cells_labels.tif", (np.full((24, 32), t, np.uint8) for t in range(8)), (8, 24, 32), np.uint8
    )
    create_label_zarr(out / "video_labels.zarr", (8, 24, 32), 4, np.uint8)[:] = 1
    video_scores = records("video", 1, [1.0, 1.0, 1.0, 1.0, 1.0, INF, 1.0, 1.0])
    items = outcomes(tmp_path)[:2]
    items[1] = ItemOutcome("video", tmp_path / "video.tif", out / "video_labels.zarr", "done", 1.0)
    write_reports(out, items, CELLS + video_scores)
    done = subprocess.run(
        [sys.executable, "-c", f"OUT = {str(out)!r}\n" + OPEN_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "cells: 3 flagged frame(s): 3, 6, 7" in lines
    assert "cells ['cells', 'cells labels'] Labels Array 3 True 13" in lines  # on the first flagged frame
    assert "video: 1 flagged frame(s): 5" in lines
    assert "video ['video', 'video labels'] Labels Array 5 True 8" in lines
    assert "torch: False" in lines
