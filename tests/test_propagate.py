"""The stack driver: objects, nearest references, painted frames, overlaps, progress, stop, bad inputs."""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest
import tifffile

import napari_p2sam.engine.propagate as propagate_module
from napari_p2sam import P2SAM, ReferenceInputError, Settings
from napari_p2sam.engine.cache import EmbeddingCache
from napari_p2sam.engine.propagate import (
    Progress,
    PropagationCancelled,
    ReferenceMemo,
    combine,
    nearest_painted,
    propagate,
)
from napari_p2sam.engine.segment import Segmentation
from napari_p2sam.engine.sources import SourceError

FAST = Settings(method="persam")
P2 = Settings(variant="medical", parts=(1, 2), background_parts=(1, 1))


@pytest.fixture
def frames():
    return np.random.default_rng(11).integers(0, 255, (6, 48, 64, 3), dtype=np.uint8)


def labels_like(frames, dtype=np.uint16):
    return np.zeros(frames.shape[:3], dtype)


def test_one_object_matches_the_single_image_api(small_model, frames):
    references = labels_like(frames)
    references[2, 10:30, 15:45] = 4
    results = list(propagate(small_model, frames, references, P2))
    assert [r.index for r in results] == list(range(6))
    p2sam = P2SAM(small_model, P2)
    p2sam.set_reference(frames[2], references[2] != 0)
    for result in results:
        assert result.labels.dtype == np.uint16
        if result.index == 2:
            assert result.painted and result.segmentations == {} and result.reference_frame is None
            np.testing.assert_array_equal(result.labels, references[2])
            continue
        expected = p2sam.segment(frames[result.index])
        assert result.reference_frame == 2 and not result.painted
        np.testing.assert_array_equal(result.segmentations[4].mask, expected.mask)
        assert result.segmentations[4].score == expected.score
        np.testing.assert_array_equal(result.labels, np.where(expected.mask, 4, 0))


def test_each_label_is_its_own_object(small_model, frames):
    references = labels_like(frames, np.uint8)
    references[0, 5:20, 5:25] = 2
    references[0, 25:45, 30:60] = 9
    both = list(propagate(small_model, frames[:3], references[:3], FAST))
    only_two = list(propagate(small_model, frames[:3], np.where(references[:3] == 2, 2, 0).astype(np.uint8), FAST))
    for result, alone in zip(both[1:], only_two[1:], strict=True):
        assert set(result.segmentations) == {2, 9}
        assert result.labels.dtype == np.uint8
        np.testing.assert_array_equal(result.segmentations[2].mask, alone.segmentations[2].mask)
        two, nine = result.segmentations[2].mask, result.segmentations[9].mask
        assert set(np.unique(result.labels)) <= {0, 2, 9}
        np.testing.assert_array_equal(result.labels == 0, ~(two | nine))
        np.testing.assert_array_equal(result.labels[two & ~nine], 2)
        np.testing.assert_array_equal(result.labels[nine & ~two], 9)


def segmentation(mask, score):
    return Segmentation(np.asarray(mask, bool), np.zeros((0, 2)), np.zeros(0), score, 1, [])


def test_overlaps_go_to_the_lowest_score_then_the_lower_label():
    left = np.zeros((2, 4), bool)
    left[:, :3] = True
    right = np.zeros((2, 4), bool)
    right[:, 1:] = True
    dtype = np.dtype(np.uint16)
    out = combine((2, 4), dtype, {1: segmentation(left, 0.9), 7: segmentation(right, 0.2)})
    np.testing.assert_array_equal(out[0], [1, 7, 7, 7])
    out = combine((2, 4), dtype, {1: segmentation(left, 0.2), 7: segmentation(right, 0.9)})
    np.testing.assert_array_equal(out[0], [1, 1, 1, 7])
    out = combine((2, 4), dtype, {1: segmentation(left, math.nan), 7: segmentation(right, 5.0)})
    np.testing.assert_array_equal(out[0], [1, 7, 7, 7])
    out = combine((2, 4), dtype, {7: segmentation(right, math.nan), 1: segmentation(left, math.nan)})
    np.testing.assert_array_equal(out[0], [1, 1, 1, 7])
    out = combine((2, 4), dtype, {7: segmentation(right, math.inf), 3: segmentation(left, math.inf)})
    np.testing.assert_array_equal(out[0], [3, 3, 3, 7])
    assert out.dtype == dtype


def test_nearest_painted_frame_ties_to_the_earlier():
    painted = [1, 5]
    assert [nearest_painted(i, painted) for i in range(8)] == [1, 1, 1, 1, 5, 5, 5, 5]
    assert nearest_painted(3, [0, 6]) == 0


def test_several_painted_frames(small_model):
    frames = np.random.default_rng(2).integers(0, 255, (8, 40, 40, 3), dtype=np.uint8)
    references = labels_like(frames)
    references[1, 5:20, 5:20] = 3
    references[1, 22:38, 20:38] = 4
    references[5, 8:24, 8:24] = 3  # object 4 is not painted on frame 5: it ends there
    results = list(propagate(small_model, frames, references, FAST))
    assert [r.reference_frame for r in results] == [1, None, 1, 1, 5, None, 5, 5]
    for index in (1, 5):
        assert results[index].painted
        np.testing.assert_array_equal(results[index].labels, references[index])
    assert all(set(results[i].segmentations) == {3, 4} for i in (0, 2, 3))
    assert all(set(results[i].segmentations) == {3} for i in (4, 6, 7))


def test_frame_range_uses_painted_frames_outside_it(small_model, frames):
    references = labels_like(frames)
    references[0, 10:30, 10:30] = 1
    results = list(propagate(small_model, frames, references, FAST, frame_range=range(3, 5)))
    assert [(r.index, r.reference_frame) for r in results] == [(3, 0), (4, 0)]


def test_reference_work_is_done_once_per_frame_and_label(small_model, frames, monkeypatch):
    built = []
    real = propagate_module.prepare_reference

    def counting(model, embedding, mask, settings):
        built.append(int(mask.sum()))
        return real(model, embedding, mask, settings)

    monkeypatch.setattr(propagate_module, "prepare_reference", counting)
    references = labels_like(frames)
    references[0, 5:20, 5:25] = 1
    references[0, 25:45, 30:60] = 2
    references[4, 5:25, 5:25] = 1
    memo = ReferenceMemo()  # kept by the caller, as the widget's model process keeps one
    list(propagate(small_model, frames, references, FAST, memo=memo))
    assert sorted(built) == [300, 400, 600]  # (0, 1), (4, 1), (0, 2): three references for five targets
    list(propagate(small_model, frames, references, Settings(method="persam", retrieval="sampled"), memo=memo))
    assert len(built) == 3  # same references: reused across runs
    references[4, 5, 5] = 0  # repainting one frame rebuilds only its objects
    list(propagate(small_model, frames, references, FAST, memo=memo))
    assert sorted(built[3:]) == [399]
    list(propagate(small_model, frames, references, FAST))
    assert len(built) == 7, "without a memo of the caller's, nothing is kept from run to run"


def test_progress_reports_every_frame_and_an_eta(small_model, frames):
    references = labels_like(frames)
    references[1, 10:30, 10:30] = 1
    reports: list[Progress] = []
    list(propagate(small_model, frames, references, FAST, progress=reports.append))
    assert [(p.done, p.total) for p in reports] == [(i, 6) for i in range(7)]
    assert reports[0].eta_s is None and reports[0].elapsed_s == 0.0
    assert reports[1].eta_s is not None and reports[1].eta_s > 0  # frame 0 was segmented
    assert reports[-1].eta_s == 0.0
    assert all(b.elapsed_s >= a.elapsed_s for a, b in zip(reports, reports[1:]))


def test_stop_keeps_finished_frames(small_model, frames, tmp_path):
    references = labels_like(frames)
    references[0, 10:30, 10:30] = 1
    cache = EmbeddingCache(tmp_path)
    kept = []
    run = propagate(small_model, frames, references, FAST, cache=cache, should_stop=lambda: len(kept) >= 3)
    for result in run:
        kept.append(result)
    # frames 0..2, and any frame the pipeline had finished ahead (its objects decoded before the stop)
    assert [r.index for r in kept] == list(range(len(kept))) and 3 <= len(kept) < len(frames) and run.cancelled
    resumed = propagate(small_model, frames, references, FAST, cache=cache)
    rest = list(resumed)
    # every frame the stopped run encoded comes from the cache
    assert resumed.encoded == len(frames) - run.encoded and not resumed.cancelled
    for before, after in zip(kept, rest[: len(kept)], strict=True):
        np.testing.assert_array_equal(before.labels, after.labels)


def test_stop_between_objects_drops_the_unfinished_frame(small_model, frames):
    references = labels_like(frames)
    references[0, 5:20, 5:25] = 1
    references[0, 25:45, 30:60] = 2
    checks = []
    # checks: references (1), frame 0 (1, painted), frame 1 (1 + 2 objects), frame 2 (1 + 1st object, then stop)
    run = propagate(small_model, frames, references, FAST, should_stop=lambda: checks.append(1) or len(checks) >= 7)
    assert [r.index for r in run] == [0, 1] and run.cancelled


def test_cancelled_raised_from_a_callback_ends_quietly(small_model, frames):
    references = labels_like(frames)
    references[0, 10:30, 10:30] = 1

    def progress(report):
        if report.done == 2:
            raise PropagationCancelled

    run = propagate(small_model, frames, references, FAST, progress=progress)
    assert [r.index for r in run] == [0] and run.cancelled


def test_finished_frames_are_not_kept(small_model, frames):
    references = labels_like(frames)
    references[0, 10:30, 10:30] = 1
    run = iter(propagate(small_model, frames, references, FAST))
    first = next(run)
    alive = weakref.ref(first.labels)
    del first
    next(run)
    gc.collect()
    assert alive() is None


def test_reads_a_tiff_path(small_model, frames, tmp_path):
    gray = frames[..., 0]
    tifffile.imwrite(tmp_path / "stack.tif", gray)
    references = {3: np.pad(np.ones((20, 20), np.uint8), ((10, 18), (10, 34)))}
    from_path = [r.labels for r in propagate(small_model, tmp_path / "stack.tif", references, FAST)]
    from_array = [r.labels for r in propagate(small_model, gray, references, FAST)]
    np.testing.assert_array_equal(np.stack(from_path), np.stack(from_array))


# --- bad inputs: refused before any work, nothing written ---------------------------------------


@pytest.mark.parametrize(
    "references, message",
    [
        ({9: np.ones((48, 64), np.uint8)}, r"reference frame 9 is out of range: the array has 6 frame\(s\) \(0\.\.5\)"),
        ({-1: np.ones((48, 64), np.uint8)}, "reference frame -1 is out of range"),
        ({1: np.ones((40, 64), np.uint8)}, r"reference for frame 1 is 40×64 but the frames are 48×64"),
        (np.zeros((6, 48, 64), np.uint8), "no painted pixel in any reference frame"),
        ({2: np.zeros((48, 64), np.uint8)}, "no painted pixel"),
        (np.ones((5, 48, 64), np.uint8), r"shape \(5, 48, 64\) but the array has 6 frame"),
        ({0: np.ones((48, 64), np.float32)}, "labels must be integers"),
    ],
)
def test_bad_references_are_refused_before_any_work(small_model, frames, tmp_path, references, message):
    with pytest.raises(ReferenceInputError, match=message):
        propagate(small_model, frames, references, FAST, cache=EmbeddingCache(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == []


def test_bad_frame_range_and_channel_are_refused(small_model, frames):
    references = {0: np.ones((48, 64), np.uint8)}
    for bad in (range(4, 9), range(-1, 2), range(3, 3)):
        with pytest.raises(ValueError, match=r"the stack has 6 frame\(s\) \(0\.\.5\)"):
            propagate(small_model, frames, references, FAST, frame_range=bad)
    two_channels = np.zeros((6, 48, 64, 2), np.uint8)
    with pytest.raises(SourceError, match="has 2 channels; choose one"):
        propagate(small_model, two_channels, references, FAST)


def test_an_object_too_small_for_the_parts_stops_before_the_first_frame(small_model, frames):
    references = labels_like(frames)
    references[0, 10:12, 10:12] = 5
    run = propagate(small_model, frames, references, Settings(parts=(3, 4)))
    with pytest.raises(ReferenceInputError, match="object 5 on frame 0: .*lower the parts range"):
        next(run)
    assert run.encoded == 1  # only the reference frame
