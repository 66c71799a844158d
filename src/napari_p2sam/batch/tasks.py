"""What a Dask worker runs: one chunk of one item's frames, and the assembly of a finished item's output.

Each worker process keeps, for all its tasks, the models it loaded (keyed
by checkpoint, sha256, device and normalisation), one
:class:`~napari_p2sam.engine.propagate.ReferenceMemo` per thread (so each
reference is built once per worker) and one
:class:`~napari_p2sam.engine.cache.EmbeddingCache` per cache folder. These
are per-process caches, filled by the first task that needs them, rather
than a ``WorkerPlugin``: they work the same on a user's own cluster (nothing
to register, nothing left installed on it afterwards), a worker that never
gets a task never loads a model, and a worker the nanny restarts after a
crash loads it again on its first task.

Outputs: a chunk writes its labels frame by frame into the item's work
array (a zarr array with one zarr chunk per frame, so concurrent writers
never share a zarr chunk and a task never holds more than one frame's
labels), then its frame records (after the labels, atomically), so a chunk
with a record is complete on disk.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.settings import Settings
from ..engine.sources import Pixels
from .manifest import Item

PROGRESS_TOPIC = "napari-p2sam-batch-frames"
"""Dask event topic of per-frame progress: ``(chunk key, frames of the chunk done)``."""


@dataclass(frozen=True)
class ModelSpec:
    """The model every worker loads: ``checkpoint`` (a file path or registry name) whose sha256 is ``identity``.

    ``device``: "cpu", "cuda", "mps" or None (cuda, then mps, then cpu).
    ``torch_threads``: torch's thread count in each worker (None: as the worker has it).
    """

    checkpoint: str
    identity: str
    device: str | None
    normalization: str | None
    torch_threads: int | None


@dataclass(frozen=True)
class Chunk:
    """Frames ``frames`` of ``item``, to segment from ``painted`` into the zarr array ``store``; records in ``out_dir``."""

    item: Item
    frames: range
    painted: dict[int, np.ndarray]
    settings: Settings
    pixels: Pixels
    store: Path
    out_dir: Path
    model: ModelSpec
    cache: Path | None

    @property
    def key(self) -> str:
        """The chunk's Dask key, unique on a cluster that runs several batches."""
        return f"{batch_key(self.out_dir)}-{self.item.name}-{self.frames.start}-{self.frames.stop}"


def batch_key(out_dir: Path) -> str:
    """The start of the Dask keys of the batch writing into ``out_dir``."""
    return "napari-p2sam-" + hashlib.blake2b(str(out_dir.resolve()).encode(), digest_size=6).hexdigest()


_lock = threading.Lock()
_models: dict[tuple, object] = {}
_caches: dict[Path, object] = {}
_memos = threading.local()


def worker_device(device: str | None):
    """The torch device of this worker: ``device``, with plain ``cuda`` spread over GPUs by worker name.

    A ``LocalCluster`` names its workers 0, 1, ...; worker ``i`` of a machine
    with several GPUs takes ``cuda:i`` (modulo the GPU count). Workers with
    other names (a jobqueue cluster: one GPU per job) use the default GPU.
    """
    import torch
    from distributed import get_worker

    from ..models.loading import choose_device

    chosen = choose_device(device)
    gpus = torch.cuda.device_count() if chosen.type == "cuda" else 0
    if chosen.index is None and gpus > 1:
        name = get_worker().name
        if isinstance(name, int):
            return torch.device("cuda", name % gpus)
    return chosen


def worker_model(spec: ModelSpec):
    """The model of ``spec``, loaded once per worker process; refused if its file is not the client's."""
    import torch

    from ..models.allocator import keep_freed_memory
    from ..models.loading import load_model

    keep_freed_memory()  # as the command line does (a no-op where the cluster's nannies tuned malloc)
    if spec.torch_threads is not None and torch.get_num_threads() != spec.torch_threads:
        torch.set_num_threads(spec.torch_threads)
    with _lock:
        device = worker_device(spec.device)
        key = (spec.checkpoint, spec.identity, str(device), spec.normalization)
        if key not in _models:
            model = load_model(
                spec.checkpoint, device=device, normalization=spec.normalization, download_progress=False
            )
            if model.identity != spec.identity:
                raise ValueError(
                    f"the checkpoint {spec.checkpoint} on this worker is not the file the batch was started with "
                    f"(sha256 {model.identity[:12]}… instead of {spec.identity[:12]}…): give every worker the same file"
                )
            _models[key] = model
        return _models[key]


def worker_cache(folder: Path | None):
    """This process's :class:`~napari_p2sam.engine.cache.EmbeddingCache` on ``folder`` (None: no cache)."""
    from ..engine.cache import EmbeddingCache

    if folder is None:
        return None
    with _lock:
        if folder not in _caches:
            _caches[folder] = EmbeddingCache(folder)
        return _caches[folder]


def worker_memo():
    """This thread's :class:`~napari_p2sam.engine.propagate.ReferenceMemo` (kept for all its tasks)."""
    from ..engine.propagate import ReferenceMemo

    if not hasattr(_memos, "memo"):
        _memos.memo = ReferenceMemo()
    return _memos.memo


def run_chunk(chunk: Chunk) -> int:
    """Segment ``chunk.frames``, write their labels, then their record; returns the frames run through the encoder.

    Exactly what ``napari-p2sam segment`` computes for those frames of the
    item: the same painted frames, settings and intensity limits, and the
    nearest painted frame per frame.
    """
    import zarr
    from distributed import get_worker

    from ..engine.propagate import propagate
    from .records import chunk_record_path
    from .report import frame_records, write_chunk_records

    worker = get_worker()
    model = worker_model(chunk.model)
    propagation = propagate(
        model,
        chunk.item.input,
        chunk.painted,
        chunk.settings,
        frame_range=chunk.frames,
        cache=worker_cache(chunk.cache),
        limits=chunk.pixels.limits,
        channel=chunk.pixels.channel,
        max_objects=None,
        memo=worker_memo(),
    )
    labels = zarr.open_array(str(chunk.store), mode="r+")
    records = []
    start = time.perf_counter()
    for done, result in enumerate(propagation, 1):
        labels[result.index] = result.labels.astype(labels.dtype, copy=False)
        now = time.perf_counter()
        records += frame_records(chunk.item.name, result, now - start)
        start = now
        worker.log_event(PROGRESS_TOPIC, (chunk.key, done))
    write_chunk_records(
        chunk_record_path(chunk.out_dir, chunk.item.name, chunk.frames.start, chunk.frames.stop), records
    )
    return propagation.encoded
