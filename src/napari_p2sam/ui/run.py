"""One propagation run as a generator, for a napari thread worker or a plain loop (no Qt here).

:func:`run_job` runs the stack driver and yields a :class:`FrameUpdate` per
finished frame. :func:`run_job_reporting_errors` first downloads (once) and
loads the model (kept for the next run), and ends the run on any error with
a one-line message in :class:`RunSummary`; every frame yielded before stays.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ..engine.cache import EmbeddingCache
from ..engine.propagate import FrameResult, Progress, propagate
from ..engine.settings import Settings
from ..models.download import download, model_path
from ..models.loading import SamModel, load_model
from ..models.registry import MODELS
from .job import LayerJob

log = logging.getLogger(__name__)

USER_ERRORS = (ValueError, OSError, MemoryError, torch.OutOfMemoryError)
"""Errors with a message for the user (bad files or inputs, disk, memory); others are bugs."""


@dataclass(frozen=True)
class ModelChoice:
    """Which model to run: a checkpoint path (or registry name), a device (None: fastest), the input normalisation."""

    checkpoint: str
    device: str | None = None
    normalization: str = "sam"


class DownloadMeter:
    """Bytes of a model download so far, written by the download (any thread), read by the UI.

    The tqdm-like object :func:`napari_p2sam.models.download.download` reports to.
    """

    def __init__(self) -> None:
        self.model: str | None = None
        self.total: int | None = None
        self.done = 0

    def update(self, count: int) -> None:
        self.done += count

    def close(self) -> None:
        self.model = None


class LoadedModels:
    """Keeps the last loaded model, so a rerun with the same choice does not load it again."""

    def __init__(self) -> None:
        self._choice: ModelChoice | None = None
        self._model: SamModel | None = None

    def get(self, choice: ModelChoice, meter: DownloadMeter | None = None) -> SamModel:
        """The model; a registry model not downloaded yet is downloaded first (verified), reporting to ``meter``."""
        if choice != self._choice or self._model is None:
            self._model = None  # free the previous model before loading the next
            name = choice.checkpoint
            if name in MODELS and not model_path(name).is_file():
                if meter is not None:
                    meter.model, meter.done = name, 0
                download(name, progressbar=meter if meter is not None else False)
            self._model = load_model(name, device=choice.device, normalization=choice.normalization)
            self._choice = choice
        return self._model


@dataclass
class FrameUpdate:
    """A finished frame and the run's progress after it."""

    result: FrameResult
    progress: Progress


@dataclass
class RunSummary:
    """How a run ended: frames ``done`` of ``total``, frames ``encoded`` by SAM (not from the cache),
    ``cancelled``, or ``error`` (a message for the user)."""

    done: int = 0
    total: int = 0
    encoded: int = 0
    cancelled: bool = False
    error: str | None = None
    seconds: float = 0.0


def run_job(
    job: LayerJob,
    settings: Settings,
    model: SamModel,
    *,
    cache: EmbeddingCache | None = None,
    should_stop: Callable[[], bool] | None = None,
    summary: RunSummary | None = None,
) -> Iterator[FrameUpdate]:
    """Yield a :class:`FrameUpdate` per finished frame; returns the :class:`RunSummary` (also filled in
    ``summary`` if given, so a caller sees it even when an error ends the run).

    ``should_stop`` is checked between frames and objects: a stop keeps every
    frame yielded so far. Errors are raised.
    """
    start = time.perf_counter()
    summary = summary if summary is not None else RunSummary()
    summary.total = len(job.frame_range)
    latest: dict[str, Progress] = {}
    propagation = propagate(
        model,
        job.frames,
        job.references,
        settings,
        frame_range=job.frame_range,
        cache=cache,
        progress=lambda progress: latest.update(now=progress),
        should_stop=should_stop,
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


def run_job_reporting_errors(
    job: LayerJob,
    settings: Settings,
    model: ModelChoice,
    *,
    models: LoadedModels,
    meter: DownloadMeter | None = None,
    threads: int | None = None,
    **options,
) -> Iterator[FrameUpdate]:
    """Download and load the model (or reuse it), then :func:`run_job`, for a thread worker: any error
    ends the run with a message in the returned summary.

    Errors the user can fix get their own message; anything else is logged
    with its traceback and summed up in one line. ``threads``: torch's CPU
    threads during the run (restored afterwards).
    """
    summary = RunSummary(total=len(job.frame_range))
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield from run_job(job, settings, models.get(model, meter), summary=summary, **options)
    except USER_ERRORS as err:
        summary.error = str(err) or type(err).__name__
    except Exception as err:  # a bug: keep the traceback in the log, tell the user in one line
        log.exception("P²SAM run failed")
        summary.error = f"unexpected {type(err).__name__}: {err} (the traceback is in the terminal)"
    finally:
        torch.set_num_threads(previous_threads)
    return summary
