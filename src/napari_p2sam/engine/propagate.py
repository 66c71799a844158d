"""Run P²SAM over a whole stack: painted frames in, one labelled frame at a time out.

Rules
-----
- **Objects.** Each non-zero label value of a painted frame is its own
  object, segmented on its own; the output keeps the label values.
- **Which reference.** A frame with any non-zero pixel is painted. Every
  other frame uses the nearest painted frame (ties: the earlier one) and
  every object painted there. An object missing from that painted frame is
  not looked for, so painting a later frame without an object ends it.
- **Painted frames** keep their paint unchanged in the output.
- **Overlaps.** Where objects' masks overlap, the pixel goes to the object
  whose retrieval score is lowest (closest to its reference); objects
  without a score (PerSAM) come after scored ones, and equal scores go to
  the lower label value.
- **Work done once.** Each frame is encoded once (with an
  :class:`~napari_p2sam.engine.cache.EmbeddingCache`, once per model and
  preprocessing across runs). The reference of each (painted frame, label)
  is built once per run; with a :class:`ReferenceMemo` that the caller keeps
  (the widget's model process does), later runs reuse it while its pixels,
  mask, model and part settings stay the same.
- **Pipeline.** Frames are read ahead in a thread, encoded ``batch_size``
  at a time, and each frame's retrieval runs in a pool thread while the
  next frames are encoded and decoded (:mod:`~napari_p2sam.engine.pipeline`);
  the results are those of one frame after the other, bitwise.
- **Memory.** Only a bounded window of frames (read ahead, one batch, the
  frames waiting for retrieval), their embeddings and the references are
  held; results are yielded one frame at a time.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, replace

import numpy as np

from ..models.loading import SamModel
from .cache import EmbeddingCache, encoder_key
from .embeddings import ImageEmbedding, encode_images
from .objects import MAX_OBJECTS, ReferenceInputError
from .pipeline import PipelineOptions, Stage, default_batch_size, pipelined
from .pixels import image_key, warn_blank
from .reference import Reference, prepare_reference
from .results import FrameResult, Progress, Segmentation
from .segment import Decoded, choose_candidate, decode_candidates
from .settings import Settings
from .stack_job import StackJob, prepare_stack


class PropagationCancelled(Exception):
    """Raise it from a ``progress`` or ``should_stop`` callback to stop at once; the run ends quietly."""


def propagate(
    model: SamModel,
    frames,
    references,
    settings: Settings,
    *,
    frame_range: range | None = None,
    cache: EmbeddingCache | None = None,
    limits: tuple[float, float] | None = None,
    channel: int | tuple[int, ...] | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_objects: int | None = MAX_OBJECTS,
    memo: ReferenceMemo | None = None,
    pipeline: PipelineOptions | None = None,
) -> Propagation:
    """Segment every frame of ``frame_range`` from the painted ``references``.

    ``frames``: a :class:`~napari_p2sam.engine.sources.FrameSource`, a path,
    or an array-like ``(T, Y, X)`` / ``(T, Y, X, C)`` (numpy, dask, zarr).
    ``references``: labels ``(T, H, W)`` (frames with any non-zero pixel are
    painted) or ``{frame_index: (H, W) labels}``. ``limits``: intensity
    mapping of non-uint8 frames (default: 0.5–99.5 percentiles over the
    stack). ``channel``: one channel, or three as R, G, B, of multi-channel
    frames. ``progress`` is called once before the first frame and after
    each frame; ``should_stop`` is checked before each frame's work (each
    batch's) and between objects: a stop keeps every frame whose objects
    were all decoded before it (their retrieval is awaited) and drops a
    frame stopped half-way. ``max_objects``: more
    objects than this raise :class:`~napari_p2sam.engine.objects.TooManyObjectsError`
    (None: any number). ``memo``: references built by earlier runs, kept by
    the caller for the next (default: none kept beyond this run).
    ``pipeline``: batch size, read-ahead and overlap of the work
    (:class:`~napari_p2sam.engine.pipeline.PipelineOptions`; on the CPU no option changes a result).

    Returns an iterator of :class:`FrameResult`, one per frame of
    ``frame_range`` in order. Bad inputs raise (``ValueError`` subclasses with
    user-facing messages) here, before any work: this is
    :func:`~napari_p2sam.engine.stack_job.prepare_stack` then :func:`run_stack`.
    """
    job = prepare_stack(
        frames, references, frame_range=frame_range, limits=limits, channel=channel, max_objects=max_objects
    )
    return run_stack(
        model, job, settings, cache=cache, progress=progress, should_stop=should_stop, memo=memo, pipeline=pipeline
    )


def run_stack(
    model: SamModel,
    job: StackJob,
    settings: Settings,
    *,
    cache: EmbeddingCache | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    memo: ReferenceMemo | None = None,
    pipeline: PipelineOptions | None = None,
) -> Propagation:
    """Run a job that :func:`~napari_p2sam.engine.stack_job.prepare_stack` checked; the options are
    :func:`propagate`'s. Reference problems (an object too small for the part counts) raise when the
    iteration starts, before the first frame."""
    return Propagation(
        model,
        job,
        settings,
        cache,
        progress,
        should_stop,
        memo if memo is not None else ReferenceMemo(),
        pipeline or PipelineOptions(),
    )


def nearest_painted(index: int, painted: list[int]) -> int:
    """The painted frame nearest to ``index`` (``painted`` sorted); ties: the earlier one."""
    return min(painted, key=lambda p: (abs(p - index), p))


def combine(shape: tuple[int, int], dtype: np.dtype, segmentations: Mapping[int, Segmentation]) -> np.ndarray:
    """Paint each object's mask into one ``(H, W)`` label image; overlaps follow the module's rule."""

    def priority(label: int) -> tuple[float, int]:
        score = segmentations[label].score
        return (score if np.isfinite(score) else np.inf, label)

    labels = np.zeros(shape, dtype=dtype)
    for label in sorted(segmentations, key=priority):
        labels[segmentations[label].mask & (labels == 0)] = label
    return labels


class ReferenceMemo:
    """A few recently built references, keyed by everything that decides them."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._entries: OrderedDict[tuple, Reference] = OrderedDict()

    def get(self, key: tuple) -> Reference | None:
        if key in self._entries:
            self._entries.move_to_end(key)
        return self._entries.get(key)

    def put(self, key: tuple, reference: Reference) -> None:
        self._entries[key] = reference
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class Propagation:
    """The iterator :func:`propagate` returns.

    After (or during) the iteration: ``encoded`` counts frames run through
    the image encoder in this run, ``cancelled`` tells whether a stop ended it.
    """

    def __init__(
        self,
        model: SamModel,
        job: StackJob,
        settings: Settings,
        cache: EmbeddingCache | None,
        progress: Callable[[Progress], None] | None,
        should_stop: Callable[[], bool] | None,
        memo: ReferenceMemo,
        pipeline: PipelineOptions,
    ) -> None:
        self.model = model
        self.source = job.source
        self.painted = job.painted
        self.settings = settings
        self.frame_range = job.frame_range
        self.pixels = job.pixels
        self.cache = cache
        self.encoded = 0
        self.cancelled = False
        self.label_dtype = job.label_dtype
        self._progress = progress or (lambda _: None)
        self._should_stop = should_stop or (lambda: False)
        self._job = job
        self._references: dict[tuple[int, int], Reference] = {}
        self._memo = memo
        self.pipeline = pipeline
        self._frames = self._run()

    def __iter__(self) -> Iterator[FrameResult]:
        return self

    def __next__(self) -> FrameResult:
        return next(self._frames)

    def close(self) -> None:
        """Stop early from outside the loop (closes the source if propagate opened it)."""
        self._frames.close()

    def _run(self) -> Iterator[FrameResult]:
        try:
            yield from self._frames_in_order()
        except PropagationCancelled:
            self.cancelled = True
        finally:
            self._job.close()

    def _stop_requested(self) -> bool:
        if self._should_stop():
            self.cancelled = True
        return self.cancelled

    def _frames_in_order(self) -> Iterator[FrameResult]:
        start = time.perf_counter()
        total = len(self.frame_range)
        painted_list = list(self.painted)
        remaining_targets = sum(i not in self.painted for i in self.frame_range)
        segmented, segment_time = 0, 0.0
        self._progress(Progress(0, total, 0.0, None))
        for frame in sorted({nearest_painted(i, painted_list) for i in self.frame_range if i not in self.painted}):
            if self._stop_requested():
                return
            self._references_of(frame)  # every reference problem shows before the first frame
        targets = [i for i in self.frame_range if i not in self.painted]
        options = self.pipeline
        if options.batch_size is None:
            options = replace(options, batch_size=default_batch_size(self.model) if targets else 1)
        stage = Stage(self._embeddings, self._decode, self._finish)
        results = pipelined(stage, self.source, self.pixels, targets, options, self._stop_requested)
        with closing(results):
            for done, index in enumerate(self.frame_range, 1):
                if index in self.painted:
                    if self._stop_requested():
                        return
                    result = FrameResult(index, self.painted[index].astype(self.label_dtype), {}, None, True)
                else:
                    frame_start = time.perf_counter()
                    segmented_frame = next(results, None)
                    if segmented_frame is None:  # stopped
                        return
                    result, blank_note = segmented_frame
                    warn_blank(f"frame {index} of {self.source.name}", blank_note)
                    segmented += 1
                    remaining_targets -= 1
                    segment_time += time.perf_counter() - frame_start
                elapsed = time.perf_counter() - start
                eta = segment_time / segmented * remaining_targets if segmented else None
                self._progress(Progress(done, total, elapsed, eta))
                yield result

    def _decode(self, index: int, _rgb: np.ndarray, embedding: ImageEmbedding) -> _FrameJob | None:
        """The device's part of frame ``index``: every object's cascade; None if stopped half-way."""
        reference_frame = nearest_painted(index, list(self.painted))
        references = self._references_of(reference_frame)
        decoded = {}
        for label, reference in references.items():
            if self._stop_requested():
                return None
            decoded[label] = decode_candidates(self.model, reference, embedding, self.settings)
        return _FrameJob(index, reference_frame, references, embedding, decoded)

    def _finish(self, job: _FrameJob) -> FrameResult:
        """The CPU's part of a frame (a pool thread): every object's retrieval and mask, then the labels."""
        segmentations = {
            label: choose_candidate(self.model, job.references[label], job.embedding, self.settings, decoded)
            for label, decoded in job.decoded.items()
        }
        labels = combine(self.source.frame_shape, self.label_dtype, segmentations)
        return FrameResult(job.index, labels, segmentations, job.reference_frame, False)

    def _rgb(self, index: int) -> np.ndarray:
        """Frame ``index`` as SAM's RGB, with a warning if SAM sees nothing in it (each frame is read once a run)."""
        return self.pixels.rgb(self.source.read(index), name=f"frame {index} of {self.source.name}")

    def _embeddings(self, rgbs: list[np.ndarray]) -> list[ImageEmbedding]:
        """Each frame's embedding (one encoder call for those not cached), counted in ``encoded``."""
        if self.cache is None:
            self.encoded += len(rgbs)
            return encode_images(self.model, rgbs)
        misses = self.cache.stats.misses
        embeddings = self.cache.embeddings(self.model, rgbs)
        self.encoded += self.cache.stats.misses - misses
        return embeddings

    def _references_of(self, frame: int) -> dict[int, Reference]:
        """label → Reference of painted ``frame``, built once per (frame, label)."""
        paint = self.painted[frame]
        labels = [int(v) for v in np.unique(paint) if v != 0]
        if all((frame, label) in self._references for label in labels):
            return {label: self._references[frame, label] for label in labels}
        rgb = self._rgb(frame)
        frame_key = (encoder_key(self.model), image_key(rgb), self._reference_settings())
        embedding = None
        for label in labels:
            mask = paint == label
            key = frame_key + (hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16).hexdigest(),)
            reference = self._memo.get(key)
            if reference is None:
                if embedding is None:
                    embedding = self._embeddings([rgb])[0]
                reference = self._build_reference(embedding, mask, frame, label)
                self._memo.put(key, reference)
            self._references[frame, label] = reference
        return {label: self._references[frame, label] for label in labels}

    def _reference_settings(self) -> tuple:
        s = self.settings
        return (s.part_range, s.background_parts if s.uses_background_parts else None)

    def _build_reference(self, embedding: ImageEmbedding, mask: np.ndarray, frame: int, label: int) -> Reference:
        try:
            return prepare_reference(self.model, embedding, mask, self.settings)
        except ReferenceInputError as err:
            raise ReferenceInputError(f"object {label} on frame {frame}: {err}") from None


@dataclass(frozen=True)
class _FrameJob:
    """One frame between its cascade (device) and its retrieval (pool thread)."""

    index: int
    reference_frame: int
    references: dict[int, Reference]
    embedding: ImageEmbedding
    decoded: dict[int, Decoded]
