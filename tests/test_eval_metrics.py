"""Metric functions against hand-computed cases, and the published summaries (pooled IoU, Video/Image Dice)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_p2sam.evaluation.metrics import Overlap, dice, iou, overlap, pooled_iou
from napari_p2sam.evaluation.protocols import cvc_summary, folder_summary, perseg_summary
from napari_p2sam.evaluation.runner import Evaluation, FrameScore


def test_overlap_counts_by_hand():
    prediction = np.array([[1, 1, 0], [0, 1, 0]])
    truth = np.array([[0, 1, 1], [0, 1, 0]])
    # TP at (0,1), (1,1); FP at (0,0); FN at (0,2).
    assert overlap(prediction, truth) == Overlap(tp=2, fp=1, fn=1)
    assert dice(Overlap(2, 1, 1)) == pytest.approx(4 / 6)
    assert iou(Overlap(2, 1, 1)) == pytest.approx(2 / 4)


def test_any_nonzero_value_is_object():
    assert overlap(np.array([[255, 0]]), np.array([[1, 7]])) == Overlap(tp=1, fp=0, fn=1)


def test_empty_cases():
    assert dice(Overlap(0, 0, 0)) == 1.0 and iou(Overlap(0, 0, 0)) == 1.0
    assert dice(Overlap(0, 5, 0)) == 0.0 and iou(Overlap(0, 0, 3)) == 0.0
    assert pooled_iou([Overlap(0, 0, 0), Overlap(0, 0, 0)]) == 1.0
    with pytest.raises(ValueError, match="no frames"):
        pooled_iou([])


def test_sizes_must_match():
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(2, 3\)"):
        overlap(np.zeros((2, 2)), np.zeros((2, 3)))


def test_pooled_iou_is_not_the_mean_of_per_image_ious():
    small = Overlap(tp=1, fp=0, fn=1)  # IoU 1/2
    large = Overlap(tp=90, fp=10, fn=0)  # IoU 90/100
    assert (iou(small) + iou(large)) / 2 == pytest.approx(0.70)
    assert pooled_iou([small, large]) == pytest.approx(91 / 102)  # 0.892: the published per-object IoU


def scores(method: str, rows: list[tuple[str, str, Overlap]]) -> list[FrameScore]:
    return [FrameScore(seq, frame, method, counts, 1, 0.0, 0.0) for seq, frame, counts in rows]


def test_perseg_summary_pools_per_object_then_averages_objects():
    rows = [
        ("cat", "01", Overlap(1, 0, 1)),
        ("cat", "02", Overlap(90, 10, 0)),
        ("dog", "01", Overlap(3, 1, 0)),
    ]
    evaluation = Evaluation(("p2sam",), scores("p2sam", rows))
    summary = perseg_summary(evaluation)
    assert [label for label, _ in summary.rows] == ["cat", "dog"]
    assert summary.rows[0][1][0] == pytest.approx(91 / 102)
    assert summary.rows[1][1][0] == pytest.approx(3 / 4)
    assert summary.totals == [("mIoU", pytest.approx(((91 / 102 + 3 / 4) / 2,)))]


def test_cvc_summary_video_dice_and_image_dice_differ_as_published():
    # video_01: two frames, Dice 1 and 0; video_02: one frame, Dice 1.
    rows = [
        ("video_01", "4", Overlap(5, 0, 0)),
        ("video_01", "5", Overlap(0, 3, 2)),
        ("video_02", "29", Overlap(7, 0, 0)),
    ]
    summary = cvc_summary(Evaluation(("p2sam",), scores("p2sam", rows)))
    totals = dict(summary.totals)
    assert totals["Video Dice"] == pytest.approx((0.75,))  # mean of per-video means (0.5, 1)
    assert totals["Image Dice"] == pytest.approx((2 / 3,))  # mean over the three frames


def test_methods_side_by_side():
    rows_a = [("seq", "1", Overlap(1, 1, 0)), ("seq", "2", Overlap(2, 0, 0))]
    rows_b = [("seq", "1", Overlap(0, 1, 1)), ("seq", "2", Overlap(1, 0, 1))]
    evaluation = Evaluation(("p2sam", "persam"), scores("p2sam", rows_a) + scores("persam", rows_b))
    summary = folder_summary(evaluation)
    assert summary.columns == (("p2sam", "Dice"), ("p2sam", "IoU"), ("persam", "Dice"), ("persam", "IoU"))
    assert summary.rows[0] == ("1", pytest.approx((2 / 3, 1 / 2, 0.0, 0.0)))
    assert dict(summary.totals)["IoU"] == pytest.approx(((0.5 + 1) / 2, (0 + 0.5) / 2))
