"""The rule for frames that stand out: an empty mask, or a score above Q3 + 1.5 × IQR of the object's finite scores.

Every expected answer is worked out by hand from the rule; quartiles are
by linear interpolation: of n sorted scores, Q1 sits at position
(n − 1) / 4 and Q3 at 3 (n − 1) / 4, counting from 0.
"""

from __future__ import annotations

import math

from napari_p2sam.engine.quality import outlier_frames

NAN, EMPTY = math.nan, math.inf


def test_a_score_above_the_upper_fence_stands_out():
    # 1, 2, 3, 4, 100: Q1 = 2, Q3 = 4, fence = 4 + 1.5 × 2 = 7
    assert outlier_frames({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 100.0}) == [4]


def test_a_score_on_the_fence_does_not_stand_out_and_one_just_above_does():
    # the highest score does not move the quartiles of five: the fence stays 7
    assert outlier_frames({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 7.0}) == []
    assert outlier_frames({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 7.5}) == [4]


def test_only_high_scores_stand_out():
    # 0.01, 5, 6, 7, 8: Q1 = 5, Q3 = 7, fence = 10; 0.01 is far below Q1 − 1.5 IQR = 2 but a low score is a close match
    assert outlier_frames({0: 0.01, 1: 5.0, 2: 6.0, 3: 7.0, 4: 8.0}) == []


def test_frames_come_back_in_frame_order_whatever_the_order_given():
    # finite 100, 1, 2, 3, 4 sort to 1, 2, 3, 4, 100: fence 7; frame 2's mask is empty
    assert outlier_frames({9: 100.0, 0: 1.0, 5: 2.0, 3: 3.0, 7: 4.0, 2: EMPTY}) == [2, 9]


def test_an_empty_mask_stands_out_and_takes_no_part_in_the_quartiles():
    # finite 1, 2, 3, 4: Q1 = 1.75, Q3 = 3.25, fence = 5.5
    assert outlier_frames({10: 1.0, 11: 2.0, 12: 3.0, 13: 4.0, 14: EMPTY}) == [14]
    # finite 1, 2, 3, 4, 6.5: fence 7, so 6.5 stays in even though an empty mask is there too
    assert outlier_frames({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 6.5, 5: EMPTY}) == [5]
    assert outlier_frames({3: EMPTY}) == [3]


def test_missing_scores_never_stand_out_and_take_no_part_in_the_quartiles():
    assert outlier_frames({0: NAN, 1: NAN, 2: NAN}) == []  # PerSAM: nothing is scored
    assert outlier_frames({0: NAN, 1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: 100.0}) == [5]  # as without frame 0


def test_three_scores_or_fewer_cannot_pass_the_fence():
    # of three sorted scores a <= b <= c, c > Q3 + 1.5 IQR would need 0.75 a > 0.5 b + 0.25 c
    assert outlier_frames({}) == []
    assert outlier_frames({0: 1.0, 1: 1000.0}) == []
    assert outlier_frames({0: 1.0, 1: 2.0, 2: 1000.0}) == []
