"""One propagation run as a generator, where the model lives (the model's process, or a script's).

:func:`run_frames` runs the stack driver and yields a :class:`FrameUpdate`
per finished frame. :func:`run_reporting_errors` first loads the model
(kept for the next run) and ends the run on any error with a one-line
message in :class:`RunSummary`; every frame yielded before stays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import torch

from ..engine.cache import EmbeddingCache
from ..engine.pipeline import PipelineOptions
from ..engine.propagate import Progress, ReferenceMemo, run_stack
from ..engine.settings import Settings
from ..engine.stack_job import StackJob
from ..models.loading import CheckpointError, SamModel, load_model
from .messages import FrameUpdate, RunSummary
from .model_choice import ModelChoice

log = logging.getLogger(__name__)

USER_ERRORS = (ValueError, OSError, MemoryError, torch.OutOfMemoryError)
"""Errors with a message for the user (bad files or inputs, disk, memory); others are bugs."""


class LoadedModels:
    """Keeps the last loaded model, so a rerun with the same choice does not load it again."""

    def __init__(self) -> None:
        self._choice: ModelChoice | None = None
        self._model: SamModel | None = None

    def get(self, choice: ModelChoice) -> SamModel:
        """The model of ``choice``; raises :class:`CheckpointError` if its file is not the expected one."""
        if choice != self._choice or self._model is None:
            self._model = None  # free the previous model before loading the next
            model = load_model(
                choice.checkpoint, device=choice.device, normalization=choice.normalization, precision=choice.precision
            )
            if choice.sha256 is not None and model.identity != choice.sha256:
                raise CheckpointError(
                    f"{choice.checkpoint} changed since it was checked (sha256 {model.identity}, expected "
                    f"{choice.sha256}): delete it and download it again (`napari-p2sam models download`)"
                )
            self._model, self._choice = model, choice
        return self._model


def run_frames(
    job: StackJob,
    settings: Settings,
    model: SamModel,
    *,
    cache: EmbeddingCache | None = None,
    memo: ReferenceMemo | None = None,
    should_stop: Callable[[], bool] | None = None,
    summary: RunSummary | None = None,
    batch_size: int | None = None,
) -> Iterator[FrameUpdate]:
    """Yield a :class:`FrameUpdate` per finished frame of the job; returns the :class:`RunSummary`
    (also filled in ``summary`` if given, so a caller sees it even when an error ends the run).

    ``job``: checked by :func:`~napari_p2sam.engine.stack_job.prepare_stack`
    (its object count checked, or confirmed by the user). ``memo``: references
    kept by the caller across runs. ``should_stop`` is checked between frames
    and objects: a stop keeps every frame yielded so far. Errors are raised.
    ``batch_size``: frames per encoder call (None: the engine chooses).
    """
    start = time.perf_counter()
    summary = summary if summary is not None else RunSummary()
    summary.total = len(job.frame_range)
    latest: dict[str, Progress] = {}
    propagation = run_stack(
        model,
        job,
        settings,
        cache=cache,
        progress=lambda progress: latest.update(now=progress),
        should_stop=should_stop,
        memo=memo,
        pipeline=PipelineOptions(batch_size=batch_size),
    )
    try:
        for result in propagation:
            summary.done += 1
            yield FrameUpdate(result, latest["now"])
    finally:
        summary.encoded = propagation.encoded
        summary.cancelled = propagation.cancelled
        summary.seconds = time.perf_counter() - start
    return summary


def run_reporting_errors(
    job: StackJob,
    settings: Settings,
    model: ModelChoice,
    *,
    models: LoadedModels,
    threads: int | None = None,
    **options,
) -> Iterator[FrameUpdate]:
    """Load the model (or reuse it), then :func:`run_frames`: any error ends the run with a message in
    the returned summary.

    Errors the user can fix get their own message; anything else is logged
    with its traceback and summed up in one line. ``threads``: torch's CPU
    threads during the run (restored afterwards).
    """
    summary = RunSummary(total=len(job.frame_range))
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        sam = models.get(model)
        yield from run_frames(job, settings, sam, summary=summary, **options)
    except USER_ERRORS as err:
        summary.error = str(err) or type(err).__name__
    except Exception as err:  # a bug: keep the traceback in the log, tell the user in one line
        log.exception("P²SAM run failed")
        summary.error = f"unexpected {type(err).__name__}: {err} (the traceback is in the terminal)"
    finally:
        torch.set_num_threads(previous_threads)
    return summary
