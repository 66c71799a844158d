"""The pipelined stack driver: the same results as one frame after the other, stops and errors that end it cleanly."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
import tifffile

import napari_p2sam.engine.propagate as propagate_module
from napari_p2sam import P2SAM, Settings
from napari_p2sam.cli import main
from napari_p2sam.engine.embeddings import encode_image, encode_images
from napari_p2sam.engine.pipeline import PipelineOptions
from napari_p2sam.engine.propagate import nearest_painted, propagate
from napari_p2sam.engine.sources import ArrayFrames, SourceError
from napari_p2sam.scripting import segment_stack

P2 = Settings(variant="medical", parts=(1, 2), background_parts=(1, 1))
NATURAL = Settings(variant="natural", parts=(1, 2))


@pytest.fixture(scope="module")
def stack():
    """Seven 48×64 RGB frames; objects 3 and 7 painted on frame 0, object 3 alone on frame 5."""
    frames = np.random.default_rng(5).integers(0, 255, (7, 48, 64, 3), dtype=np.uint8)
    references = np.zeros(frames.shape[:3], np.uint8)
    references[0, 8:30, 6:30] = 3
    references[0, 20:44, 34:60] = 7
    references[5, 12:36, 20:50] = 3
    return frames, references


def sequential(model, frames, references, settings) -> dict[int, dict[int, tuple]]:
    """frame → label → (mask, score, k), each target segmented alone through the single-image API."""
    painted = [i for i in range(len(frames)) if references[i].any()]
    predictors = {}
    expected = {}
    for index in range(len(frames)):
        if index in painted:
            continue
        source = nearest_painted(index, painted)
        expected[index] = {}
        for label in (int(v) for v in np.unique(references[source]) if v):
            if (source, label) not in predictors:
                predictor = P2SAM(model, settings)
                predictor.set_reference(frames[source], references[source] == label)
                predictors[source, label] = predictor
            result = predictors[source, label].segment(frames[index])
            expected[index][label] = (result.mask, result.score, result.k)
    return expected


@pytest.fixture(scope="module")
def expected(small_model, stack):
    return {name: sequential(small_model, *stack, settings) for name, settings in (("p2", P2), ("natural", NATURAL))}


THREADS_BEFORE: set[threading.Thread] = set()


@pytest.fixture(autouse=True)
def threads_before_the_test():
    """The threads alive before each test: runs left unfinished by other test files end only when
    garbage-collected, so each test counts only the pipeline threads it started itself."""
    gc.collect()
    THREADS_BEFORE.clear()
    THREADS_BEFORE.update(threading.enumerate())


def pipeline_threads() -> list[str]:
    """The pipeline threads this test started that are still running."""
    return [t.name for t in threading.enumerate() if t.name.startswith("p2sam-") and t not in THREADS_BEFORE]


def assert_same(results, expected, references) -> None:
    for result in results:
        if result.painted:
            np.testing.assert_array_equal(result.labels, references[result.index])
            continue
        want = expected[result.index]
        assert set(result.segmentations) == set(want)
        for label, (mask, score, k) in want.items():
            got = result.segmentations[label]
            np.testing.assert_array_equal(got.mask, mask)
            assert got.k == k
            assert got.score == score or (np.isinf(got.score) and np.isinf(score))


def test_a_batched_encoder_call_gives_each_image_its_own_features(small_model, tiny_model, stack):
    frames, _ = stack
    for model in (small_model, tiny_model):
        batch = encode_images(model, list(frames[:3]))
        for frame, embedding in zip(frames[:3], batch, strict=True):
            alone = encode_image(model, frame)
            assert embedding.features.shape == alone.features.shape
            assert embedding.input_size == alone.input_size and embedding.original_size == alone.original_size
            assert np.array_equal(embedding.features.numpy(), alone.features.numpy())  # bitwise


@pytest.mark.parametrize(
    ("batch_size", "read_ahead", "overlap", "settings"),
    [(1, 1, False, "p2"), (1, 1, True, "p2"), (2, 1, True, "natural"), (3, 5, True, "p2"), (4, None, False, "natural")],
)
def test_every_pipeline_gives_the_sequential_results(
    small_model, stack, expected, batch_size, read_ahead, overlap, settings
):
    frames, references = stack
    options = PipelineOptions(batch_size=batch_size, read_ahead=read_ahead, overlap_retrieval=overlap)
    chosen = P2 if settings == "p2" else NATURAL
    run = propagate(small_model, frames, references, chosen, pipeline=options)
    results = list(run)
    assert [r.index for r in results] == list(range(len(frames)))
    assert_same(results, expected[settings], references)
    assert run.encoded == len(frames)  # each frame once: the painted ones for their references
    assert pipeline_threads() == []


@pytest.mark.parametrize("overlap", [True, False])
def test_a_stop_in_the_middle_of_a_batch_keeps_the_finished_frames(small_model, stack, expected, overlap):
    frames, references = stack
    checks = []
    # checks: the references of frames 0 and 5 (2), painted frame 0 (1), the batch of frames 1..4 (1),
    # frame 1's objects 3 and 7 (2), frame 2's object 3 (1): the stop comes half-way through frame 2
    run = propagate(
        small_model,
        frames,
        references,
        P2,
        should_stop=lambda: checks.append(1) or len(checks) >= 7,
        pipeline=PipelineOptions(batch_size=4, overlap_retrieval=overlap),
    )
    kept = list(run)
    assert [r.index for r in kept] == [0, 1] and run.cancelled
    assert_same(kept, expected["p2"], references)
    assert pipeline_threads() == []


def test_closing_a_run_half_way_ends_its_threads(small_model, stack):
    frames, references = stack
    run = propagate(small_model, frames, references, P2, pipeline=PipelineOptions(batch_size=2, read_ahead=2))
    assert [next(run).index, next(run).index] == [0, 1]
    assert pipeline_threads() != []
    run.close()
    assert pipeline_threads() == []


def test_a_failed_retrieval_is_the_runs_error_after_the_frames_before_it(small_model, stack, expected, monkeypatch):
    frames, references = stack
    real = propagate_module.Propagation._finish

    def fails_on_frame_4(self, job):  # a fault injected into frame 4's retrieval, run in the pool thread
        if job.index == 4:
            raise RuntimeError("retrieval failed on purpose")
        return real(self, job)

    monkeypatch.setattr(propagate_module.Propagation, "_finish", fails_on_frame_4)
    kept = []
    run = propagate(small_model, frames, references, P2, pipeline=PipelineOptions(batch_size=3))
    with pytest.raises(RuntimeError, match="retrieval failed on purpose"):
        for result in run:
            kept.append(result)
    assert [r.index for r in kept] == [0, 1, 2, 3]
    assert_same(kept, expected["p2"], references)
    assert pipeline_threads() == []


class BrokenFrames(ArrayFrames):
    """An array whose frame ``broken`` cannot be read."""

    def __init__(self, array, broken: int) -> None:
        super().__init__(array, axes="TYXC")
        self.broken = broken

    def read(self, index: int) -> np.ndarray:
        if index == self.broken:
            raise SourceError(f"frame {index} of {self.name} is damaged")
        return super().read(index)


def test_an_unreadable_frame_is_the_runs_error_after_the_frames_before_it(small_model, stack, expected):
    frames, references = stack
    kept = []
    run = propagate(small_model, BrokenFrames(frames, broken=4), references, P2, pipeline=PipelineOptions(batch_size=4))
    with pytest.raises(SourceError, match="frame 4 of the array is damaged"):
        for result in run:
            kept.append(result)
    assert [r.index for r in kept] == [0, 1, 2, 3]
    assert_same(kept, expected["p2"], references)
    assert pipeline_threads() == []


@pytest.mark.parametrize("field", ["batch_size", "read_ahead"])
@pytest.mark.parametrize("value", [0, -2, 1.5, True])
def test_pipeline_options_are_checked(field, value):
    with pytest.raises(ValueError, match=f"{field.replace('_', ' ')} must be a whole number of frames ≥ 1, got"):
        PipelineOptions(**{field: value})


def test_the_command_line_and_the_python_api_take_a_batch_size(small_checkpoint, small_model, stack, tmp_path):
    frames, references = stack
    tifffile.imwrite(tmp_path / "stack.tif", frames[:5], photometric="rgb")
    tifffile.imwrite(tmp_path / "labels.tif", references[:5])
    one_at_a_time = np.stack([r.labels for r in propagate(small_model, frames[:5], references[:5], P2)])
    code = main(
        [
            "segment",
            str(tmp_path / "stack.tif"),
            "--checkpoint",
            str(small_checkpoint),
            "--reference-mask",
            str(tmp_path / "labels.tif"),
            "--out",
            str(tmp_path / "out.tif"),
            "--variant",
            "medical",
            "--parts",
            "1",
            "2",
            "--batch-size",
            "3",
            "--quiet",
        ]
    )
    assert code == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), one_at_a_time)
    from_api = segment_stack(frames[:5], references[:5], model=small_model, settings=P2, batch_size=2)
    np.testing.assert_array_equal(from_api, one_at_a_time)
    with pytest.raises(ValueError, match="batch size must be a whole number of frames ≥ 1, got 0"):
        segment_stack(frames[:5], references[:5], model=small_model, settings=P2, batch_size=0)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_the_command_line_refuses_a_bad_batch_size(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as stopped:
        main(
            [
                "segment",
                "in.tif",
                "--checkpoint",
                "x.pth",
                "--reference-mask",
                "m.tif",
                "--out",
                "o.tif",
                "--batch-size",
                value,
            ]
        )
    assert stopped.value.code == 2
    assert f"--batch-size: expected a whole number of frames ≥ 1, got '{value}'" in capsys.readouterr().err


def test_a_run_of_painted_frames_only_starts_no_work(small_model, stack):
    frames, references = stack
    run = propagate(small_model, frames[:1], references[:1], P2)
    assert [r.painted for r in run] == [True] and run.encoded == 0
    assert pipeline_threads() == []
