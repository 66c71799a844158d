"""Run checked items on a Dask cluster: chunks of frames as tasks, outputs as items finish, resumable.

:func:`run_batch` is the whole batch: it settles the model on this side
(a registry name is downloaded here, so workers only load files), finds
each item's unfinished chunks (:mod:`napari_p2sam.batch.records`), sends
them to the cluster as tasks (:func:`napari_p2sam.batch.tasks.run_chunk`),
has each item's output made as soon as its last chunk is recorded
(:func:`napari_p2sam.batch.store.assemble`, also a task), and writes the
report. Dask does the scheduling, the retries after a lost worker and the
spreading of one long video over every worker; nothing here queues or
pools work.

Items fail alone: a chunk that raises (an unreadable frame, a bad
reference) or that killed :data:`~napari_p2sam.batch.cluster.ALLOWED_FAILURES`
workers fails its item, whose other chunks are cancelled; the rest go on.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..io.paths import user_path
from .cluster import Sizing, connected, local_sizing
from .manifest import ItemPlan
from .records import chunk_record_path, read_item_record, recorded_chunks, write_item_record
from .store import assemble, create_work_array, work_array
from .tasks import PROGRESS_TOPIC, Chunk, ModelSpec, batch_key, run_chunk

FORMATS = ("tif", "zarr")


@dataclass
class ItemWork:
    """One item's part of this run: its ``chunks`` to compute, and whether its output is still to be made."""

    plan: ItemPlan
    chunks: list[range]
    resumed_frames: int
    assemble: bool
    error: str | None = None


@dataclass
class BatchSummary:
    """What a batch did: items ``done`` and ``failed`` (name → message), chunks computed and found done."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    chunks_computed: int = 0
    chunks_resumed: int = 0
    frames: int = 0
    seconds: float = 0.0

    @property
    def exit_status(self) -> int:
        """0 if every item is done, 1 if some failed."""
        return 1 if self.failed else 0

    def line(self) -> str:
        """The one-line summary printed at the end."""
        rate = f" ({self.frames / self.seconds:.1f} frames/s)" if self.seconds > 0 and self.frames else ""
        failed = f", {len(self.failed)} failed" if self.failed else ""
        return (
            f"{len(self.done) + len(self.failed)} item(s): {len(self.done)} done{failed}; {self.frames} frame(s) "
            f"segmented in {self.seconds:.1f} s{rate}; {self.chunks_computed} chunk(s) computed, "
            f"{self.chunks_resumed} already done"
        )


def run_batch(
    plans: Sequence[ItemPlan],
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    client=None,
    scheduler: str | None = None,
    scheduler_file: str | Path | None = None,
    device: str | None = None,
    workers: int | None = None,
    normalization: str | None = None,
    chunk_frames: int = 64,
    fmt: str = "tif",
    cache: str | Path | None = None,
    progress: bool = True,
) -> BatchSummary:
    """Segment every item of ``plans`` (from :func:`~napari_p2sam.batch.manifest.check_items`) and write the report.

    ``client``: a ``distributed.Client`` to run on (left open); else
    ``scheduler`` (an address) or ``scheduler_file`` to join, else a
    ``LocalCluster`` of ``workers`` processes (default: sized to this
    machine, :mod:`napari_p2sam.batch.cluster`). ``checkpoint``: a file or a
    registry name; ``device``: "cpu", "cuda", "mps" or None (GPUs if any).
    Each task segments ``chunk_frames`` frames. ``fmt``: "tif" or "zarr"
    outputs. ``cache``: an embedding cache folder shared by all workers.
    ``progress``: the dashboard address and a bar over all frames on stderr.
    Returns the summary (:meth:`BatchSummary.line` says it in one line).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be at least 1, got {chunk_frames}")
    out_dir = user_path(out_dir)
    cache = user_path(cache) if cache is not None else None
    checkpoint_file = checkpoint_path(checkpoint)
    sizing = None if client or scheduler or scheduler_file else local_sizing(device, workers, checkpoint_file)
    model = ModelSpec(
        checkpoint=str(checkpoint),
        identity=file_identity(checkpoint, checkpoint_file),
        device=device,
        normalization=normalization,
        torch_threads=sizing.torch_threads if sizing else None,
    )
    target = Target(out_dir, model, cache, fmt, chunk_frames)
    if client is not None:
        return run_on(client, plans, target, progress, sizing)
    scheduler_file = user_path(scheduler_file) if scheduler_file is not None else None
    with connected(scheduler=scheduler, scheduler_file=scheduler_file, sizing=sizing) as own_client:
        return run_on(own_client, plans, target, progress, sizing)


def run_on(client, plans: Sequence[ItemPlan], target: Target, progress: bool, sizing: Sizing | None) -> BatchSummary:
    """:func:`run_batch` once the cluster answers: resume or start each item, run what is left, write the report."""
    out_dir = target.out_dir
    run = {"model": target.model.identity, "normalization": target.model.normalization, "format": target.fmt}
    works = [prepare(plan, out_dir, run, target.chunk_frames) for plan in plans]
    summary = BatchSummary(
        done=[w.plan.item.name for w in works if not (w.error or w.chunks or w.assemble)],
        failed={w.plan.item.name: w.error for w in works if w.error},
        chunks_resumed=sum(len(recorded_chunks(out_dir, w.plan.item.name)) for w in works),
    )
    start = time.perf_counter()
    execute(client, [w for w in works if not w.error and (w.chunks or w.assemble)], target, summary, progress, sizing)
    summary.seconds = time.perf_counter() - start
    write_report(out_dir, plans, summary.failed)
    return summary


def write_report(out_dir: Path, plans: Sequence[ItemPlan], failed: dict[str, str]) -> None:
    """``frames.csv``, ``report.csv`` and ``report.html`` from every recorded chunk of ``plans``' items."""
    from .report import ItemOutcome, item_records, write_reports

    records, outcomes = [], []
    for plan in plans:
        item = plan.item
        found = item_records(out_dir, item.name)
        seconds = sum({record.frame: record.seconds for record in found}.values())
        status = "failed" if item.name in failed else "done"
        outcomes.append(ItemOutcome(item.name, item.input, item.output, status, seconds, failed.get(item.name, "")))
        records += found
    write_reports(out_dir, outcomes, records)


def checkpoint_path(checkpoint: str | Path) -> Path:
    """The checkpoint's file: a registry model is downloaded (and checked) here, once, before any worker starts."""
    from ..models.download import download
    from ..models.loading import CheckpointError
    from ..models.registry import registry_name

    name = registry_name(checkpoint)
    if name is not None:
        return download(name)
    path = user_path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (neither a file nor a model name)")
    return path


def file_identity(checkpoint: str | Path, path: Path) -> str:
    """The sha256 naming the model's weights (the registry's for a named model), as the loader computes it."""
    from ..models.checksums import remembered_sha256, sha256_of
    from ..models.registry import MODELS, registry_name

    name = registry_name(checkpoint)
    return MODELS[name].sha256 if name else remembered_sha256(path) or sha256_of(path)


def prepare(plan: ItemPlan, out_dir: Path, run: dict, chunk_frames: int) -> ItemWork:
    """What is left of ``plan``'s item: the chunks of its unrecorded frames, and whether its output is to be made.

    Records of an earlier run with other settings, model or format, or whose
    labels are gone, are discarded (the item starts over).
    """
    item = plan.item
    run = json_form({**run, "settings": asdict(plan.settings), "pixels": asdict(plan.pixels)})
    array = work_array(out_dir, item.name)
    record = read_item_record(out_dir, item.name)
    recorded = recorded_chunks(out_dir, item.name)
    finished = sum(stop - start for start, stop in recorded) == plan.frames
    stale = record is None or record.get("run") != run
    lost = not array.exists() and not (finished and item.output.exists())
    try:
        if stale or lost:
            discard(out_dir, item.name, recorded)
            recorded, finished = [], False
            write_item_record(out_dir, item, run)
        if not array.exists() and not finished:
            dtype = np.result_type(*plan.painted.values())
            create_work_array(array, plan.frames, plan.frame_shape, dtype)
    except OSError as err:
        return ItemWork(plan, [], 0, False, error=f"cannot write its records in {out_dir} ({err})")
    done = np.zeros(plan.frames, bool)
    for start, stop in recorded:
        done[start:stop] = True
    return ItemWork(plan, pending_chunks(done, chunk_frames), int(done.sum()), array.exists())


def json_form(value: dict) -> dict:
    """``value`` as it reads back from JSON (tuples become lists), so a stored record compares equal."""
    return json.loads(json.dumps(value))


def discard(out_dir: Path, name: str, recorded: list[tuple[int, int]]) -> None:
    """Delete item ``name``'s chunk records and work array."""
    for start, stop in recorded:
        chunk_record_path(out_dir, name, start, stop).unlink(missing_ok=True)
    shutil.rmtree(work_array(out_dir, name), ignore_errors=True)


def pending_chunks(done: np.ndarray, chunk_frames: int) -> list[range]:
    """The frames not ``done``, as ranges of at most ``chunk_frames`` that start on multiples of it."""
    chunks = []
    for start in range(0, len(done), chunk_frames):
        todo = np.flatnonzero(~done[start : start + chunk_frames]) + start
        for run in np.split(todo, np.flatnonzero(np.diff(todo) > 1) + 1):
            if len(run):
                chunks.append(range(int(run[0]), int(run[-1]) + 1))
    return chunks


@dataclass(frozen=True)
class Target:
    """What every task of the batch shares: ``out_dir``, the model, the embedding cache, output format, chunk size."""

    out_dir: Path
    model: ModelSpec
    cache: Path | None
    fmt: str
    chunk_frames: int

    def chunk(self, plan: ItemPlan, frames: range) -> Chunk:
        """The task of ``frames`` of ``plan``'s item."""
        array = work_array(self.out_dir, plan.item.name)
        return Chunk(
            plan.item, frames, plan.painted, plan.settings, plan.pixels, array, self.out_dir, self.model, self.cache
        )


def execute(
    client, works: list[ItemWork], target: Target, summary: BatchSummary, progress: bool, sizing: Sizing | None
) -> None:
    """Run every chunk, then make each item's output as its last chunk is recorded; fills ``summary``."""
    from distributed import as_completed

    if progress:
        shape = f" ({sizing.workers} worker(s): {sizing.why})" if sizing else ""
        print(f"napari-p2sam batch: Dask dashboard at {client.dashboard_link}{shape}", file=sys.stderr)
    bar = FrameBar(works, progress)
    client.subscribe_topic(PROGRESS_TOPIC, bar.event)
    futures = {}
    for work in works:
        for frames in work.chunks:
            chunk = target.chunk(work.plan, frames)
            futures[client.submit(run_chunk, chunk, key=chunk.key, pure=False)] = (work, chunk)
    running = as_completed(list(futures))
    left = {id(work): len(work.chunks) for work in works}
    for work in works:
        if not work.chunks:
            submit_output(client, work, target, futures, running)
    try:
        for future in running:
            work, chunk = futures.pop(future)
            name = work.plan.item.name
            if name in summary.failed:
                continue
            error = future_error(future, chunk)
            if error:
                summary.failed[name] = error
                client.cancel([f for f, (other, _) in futures.items() if other is work])
            elif chunk is None:
                summary.done.append(name)
            else:
                bar.chunk_done(chunk)
                summary.chunks_computed += 1
                summary.frames += len(chunk.frames)
                left[id(work)] -= 1
                if left[id(work)] == 0:
                    submit_output(client, work, target, futures, running)
    finally:
        client.unsubscribe_topic(PROGRESS_TOPIC)
        bar.close()


def submit_output(client, work: ItemWork, target: Target, futures: dict, running) -> None:
    """Have the item's output made from its complete work array (a task)."""
    item = work.plan.item
    array = work_array(target.out_dir, item.name)
    future = client.submit(
        assemble, array, item.output, target.fmt, key=f"{batch_key(target.out_dir)}-{item.name}-output", pure=False
    )
    futures[future] = (work, None)
    running.add(future)


def future_error(future, chunk: Chunk | None) -> str | None:
    """What went wrong in a finished task (a chunk, or None: the output), in words; None if it succeeded."""
    from distributed import KilledWorker

    if future.status == "finished":
        return None
    if future.status == "cancelled":
        return "cancelled"
    err = future.exception()
    where = "making its output" if chunk is None else f"frames {chunk.frames.start}..{chunk.frames.stop - 1}"
    if isinstance(err, KilledWorker):
        return f"{where}: the worker running them died repeatedly (out of memory?); {err}"
    message = str(err) if isinstance(err, (ValueError, OSError)) else f"{type(err).__name__}: {err}"
    return f"{where}: {message}"


class FrameBar:
    """A tqdm bar over the frames of all items, moved per frame by the workers' events, set per chunk when done.

    Events say how far each chunk got, so a chunk run again after a lost
    worker does not count its frames twice.
    """

    def __init__(self, works: Sequence[ItemWork], enabled: bool) -> None:
        from tqdm import tqdm

        total = sum(work.plan.frames for work in works)
        initial = sum(work.resumed_frames for work in works)
        self._bar = tqdm(total=total, initial=initial, unit="frame", desc="batch", disable=not enabled, smoothing=0.1)
        self._base = initial
        self._chunks: dict[str, int] = {}
        self._lock = threading.Lock()

    def event(self, event) -> None:
        """A worker's ``(chunk key, frames done)``."""
        _, (key, done) = event
        with self._lock:
            self._chunks[key] = max(self._chunks.get(key, 0), done)
            self._show()

    def chunk_done(self, chunk: Chunk) -> None:
        with self._lock:
            self._chunks[chunk.key] = len(chunk.frames)
            self._show()

    def _show(self) -> None:
        self._bar.n = self._base + sum(self._chunks.values())
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
