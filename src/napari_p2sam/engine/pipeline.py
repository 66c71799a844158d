"""The stack driver's pipeline: frames read ahead, encoded in batches, retrieval beside the device.

Three kinds of work overlap, each in frame order:

- a reader thread reads frames and converts them to SAM's RGB, at most
  ``read_ahead`` frames ahead (a bounded queue, so memory does not grow
  with the stack's length);
- the calling thread encodes ``batch_size`` frames at a time, then runs
  each frame's decoder cascade;
- one pool thread runs each frame's retrieval and keeps its mask, while
  the calling thread encodes and decodes the next frames (at most
  ``batch_size`` frames wait for it).

Results come out in frame order, one at a time. What goes wrong for a frame
(reading it, its retrieval) is raised when that frame's turn comes, after
every earlier frame; the threads are shut down whenever the iteration ends.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch

from ..models.loading import SamModel
from .sources import FrameSource, Pixels

Job = TypeVar("Job")
Result = TypeVar("Result")

MAX_AUTO_BATCH = 16
"""The largest batch chosen from free device memory."""
POLL_S = 0.05
"""How often a reader waiting for room in its queue checks whether it should stop (seconds)."""


@dataclass(frozen=True)
class PipelineOptions:
    """How a stack run overlaps its work (see the module docstring); on the CPU none of it changes a result.

    ``batch_size``: frames per encoder call; None: :func:`default_batch_size`.
    ``read_ahead``: frames read and converted ahead of the encoder; None: twice the batch.
    ``overlap_retrieval``: retrieval in a pool thread beside the encoder (True) or after each
    frame's cascade in the calling thread (False).
    """

    batch_size: int | None = None
    read_ahead: int | None = None
    overlap_retrieval: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_size", "read_ahead"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name.replace('_', ' ')} must be a whole number of frames ≥ 1, got {value!r}")


def default_batch_size(model: SamModel) -> int:
    """Frames per batch when none is given: from free device memory on CUDA, 1 elsewhere (where each frame
    has its own encoder call anyway, see :func:`~napari_p2sam.engine.embeddings.encode_images`)."""
    return cuda_batch_size(model) if model.device.type == "cuda" else 1


@torch.inference_mode()
def cuda_batch_size(model: SamModel) -> int:
    """As many frames as half the free device memory holds (at most :data:`MAX_AUTO_BATCH`), from the peak
    memory of one encoder call (in the model's precision) on a blank input."""
    device = model.device
    size = model.sam.image_encoder.img_size
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    model.encode(torch.zeros(1, 3, size, size, device=device))
    per_frame = max(1, torch.cuda.max_memory_allocated(device) - before)
    free, _total = torch.cuda.mem_get_info(device)
    return max(1, min(MAX_AUTO_BATCH, int(free // 2 // per_frame)))


class FrameReader:
    """Reads ``indices`` of ``source`` in a thread and converts them with ``pixels``, at most ``depth`` ahead.

    :meth:`next` gives ``(index, rgb, note)`` in order (``note``: why SAM sees
    nothing in the frame, or None), or raises what reading that frame raised.
    Holds no reference to its consumer, so an abandoned run can be collected.
    """

    def __init__(self, source: FrameSource, pixels: Pixels, indices: Sequence[int], depth: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(source, pixels, list(indices)), name="p2sam-frame-reader", daemon=True
        )
        self._thread.start()

    def _read(self, source: FrameSource, pixels: Pixels, indices: list[int]) -> None:
        for index in indices:
            try:
                item = (index, *pixels.rgb_and_note(source.read(index)), None)
            except BaseException as err:  # handed to the consumer, raised at this frame's turn
                item = (index, None, None, err)
            if not self._put(item) or item[-1] is not None:
                return

    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> tuple[int, np.ndarray, str | None]:
        index, rgb, note, error = self._queue.get()
        if error is not None:
            raise error
        return index, rgb, note

    def close(self) -> None:
        """Stop reading and wait for the thread (at most the frame it is reading)."""
        self._stop.set()
        self._thread.join()


@dataclass
class Stage(Generic[Job, Result]):
    """What the pipeline does with each frame, besides reading it.

    ``encode``: RGB frames → their embeddings, one encoder call (calling thread).
    ``decode``: ``(index, rgb, embedding)`` → a job for ``finish``, or None when a stop came half-way
    (calling thread). ``finish``: job → result (a pool thread; must be thread-safe).
    """

    encode: Callable[[list[np.ndarray]], list]
    decode: Callable[[int, np.ndarray, object], Job | None]
    finish: Callable[[Job], Result]


def pipelined(
    stage: Stage,
    source: FrameSource,
    pixels: Pixels,
    indices: Sequence[int],
    options: PipelineOptions,
    should_stop: Callable[[], bool],
) -> Iterator[tuple[Result, str | None]]:
    """``(result, note)`` of each of ``indices``, in order (``note``: why SAM sees nothing in the frame, or None).

    ``options.batch_size`` must be set. Frame ``i`` is given once frame
    ``i + batch_size`` is decoded (or the frames run out), so the order of
    the work does not depend on timing. ``should_stop`` is checked before
    each batch; a stop there, or a ``decode`` that returns None (a stop
    half-way through a frame), ends the iteration: the frames decoded before
    it are finished and given (their retrieval awaited), the others dropped.
    An error (reading a frame, encoding, decoding, a retrieval) is raised
    after every frame before it.
    """
    batch_size = options.batch_size
    pool = None
    if options.overlap_retrieval:
        threads = torch.get_num_threads()  # a new thread would otherwise take torch's default
        pool = ThreadPoolExecutor(1, "p2sam-retrieval", initializer=torch.set_num_threads, initargs=(threads,))
    pending: deque[tuple[Future, str | None]] = deque()
    reader = FrameReader(source, pixels, indices, options.read_ahead or 2 * batch_size)

    def oldest() -> tuple[Result, str | None]:
        future, note = pending.popleft()
        try:
            return future.result(), note
        except BaseException:
            pending.clear()  # later frames: never given after an earlier one failed
            raise

    def frames() -> Iterator[tuple[Result, str | None]]:
        remaining, stopped = len(indices), False
        while remaining and not stopped and not should_stop():
            batch, error = [], None
            try:
                while len(batch) < min(batch_size, remaining):
                    batch.append(reader.next())
            except Exception as err:  # a frame that cannot be read: raised after the frames before it
                error = err
            remaining -= len(batch)
            embeddings = stage.encode([rgb for _, rgb, _ in batch]) if batch else []
            for (index, rgb, note), embedding in zip(batch, embeddings):
                job = stage.decode(index, rgb, embedding)
                if job is None:
                    stopped = True
                    break
                if pool is None:
                    yield stage.finish(job), note
                    continue
                pending.append((pool.submit(stage.finish, job), note))
                if len(pending) > batch_size:
                    yield oldest()
            if error is not None and not stopped:
                raise error
        while pending:
            yield oldest()

    try:
        try:
            yield from frames()
        except Exception:
            while pending:  # the frames before the one that failed
                yield oldest()
            raise
    finally:
        reader.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
