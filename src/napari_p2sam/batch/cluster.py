"""The Dask cluster a batch runs on: a ``LocalCluster`` sized to this machine, or an existing scheduler.

Sizing a ``LocalCluster`` (:func:`local_sizing`), without importing torch:

- GPUs (counted from ``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``): one
  worker process per GPU; the worker named ``i`` uses ``cuda:i``
  (:func:`napari_p2sam.batch.tasks.worker_device`).
- CPU only: each worker process holds its own model, which needs about
  :data:`MODEL_MEMORY_FACTOR` times its checkpoint's size plus
  :data:`WORKER_BASE_MEMORY` while it runs (vit_h: 2.6 GB file → about 8.5 GiB;
  vit_b: about 2 GiB). Workers = as many as fit in 80% of the memory, at
  most one per :data:`CORES_PER_CPU_WORKER` cores (torch spreads one
  frame's encoding over a worker's cores; more processes than that only
  add models to memory).

Every worker runs one task at a time (one Dask thread: the model is not
shared between threads) and torch gets ``cores // workers`` threads.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..engine.sources import physical_memory

CONNECT_TIMEOUT_S = 5
"""How long joining an existing scheduler may take before the batch gives up, naming the address."""
MODEL_MEMORY_FACTOR = 3
"""A loaded model's weights (the checkpoint's size) plus the encoder's activations, as a multiple of the file."""
WORKER_BASE_MEMORY = 1 << 30
"""A worker process's own memory (Python, torch, one chunk's frames) in bytes."""
CORES_PER_CPU_WORKER = 2
ALLOWED_FAILURES = 3
"""Workers a chunk may take down (killed, out of memory) before its item is given up as failed.

One worker lost to a fault costs one retry; a chunk that kills three in a
row is the cause, not the victim, and fails its item alone."""


class ClusterError(OSError):
    """A scheduler that cannot be joined, with the address and what to check."""


@dataclass(frozen=True)
class Sizing:
    """A ``LocalCluster``'s shape: ``workers`` processes, each with ``torch_threads`` for torch; ``gpus`` found."""

    workers: int
    torch_threads: int
    gpus: int
    why: str


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def gpu_count() -> int:
    """NVIDIA GPUs visible to this process, without importing torch (0 if none or unknown)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listing.splitlines())


def local_sizing(device: str | None, workers: int | None, checkpoint: Path) -> Sizing:
    """How many workers a ``LocalCluster`` on this machine gets for ``device`` (None: GPUs if any, else CPU)."""
    cores = cpu_cores()
    gpus = gpu_count() if device in (None, "cuda") else 0
    if workers is not None:
        why = "as asked (--workers)"
    elif gpus:
        workers, why = gpus, f"one per GPU ({gpus} found)"
    else:
        need = MODEL_MEMORY_FACTOR * checkpoint.stat().st_size + WORKER_BASE_MEMORY
        by_memory = int(0.8 * physical_memory() // need)
        by_cores = cores // CORES_PER_CPU_WORKER
        workers = max(1, min(by_memory, by_cores))
        why = (
            f"{cores} cores at {CORES_PER_CPU_WORKER} per worker, memory for {by_memory} model(s) "
            f"of {need / 2**30:.1f} GiB each"
        )
    return Sizing(workers=workers, torch_threads=max(1, cores // workers), gpus=gpus, why=why)


@contextmanager
def connected(
    *, scheduler: str | None = None, scheduler_file: Path | None = None, sizing: Sizing | None = None
) -> Iterator:
    """A ``distributed.Client`` of the scheduler at ``scheduler`` / in ``scheduler_file``, else of a new ``LocalCluster``.

    A scheduler nobody answers raises :class:`ClusterError` within
    :data:`CONNECT_TIMEOUT_S` seconds, naming the address. The client, and the
    local cluster if one was started, are closed on leaving; a joined cluster runs on.
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler or scheduler_file:
        with join(scheduler, scheduler_file) as client:
            yield client
        return
    config = {
        "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
        "distributed.nanny.pre-spawn-environ": worker_environment(sizing.torch_threads),
    }
    with (
        dask.config.set(config),
        LocalCluster(
            n_workers=sizing.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def worker_environment(threads: int) -> dict[str, str | None]:
    """What the nannies of our ``LocalCluster`` set before starting a worker (None: leave unset).

    Dask's defaults pin every numeric library to one thread and make glibc
    return freed memory at once (``MALLOC_TRIM_THRESHOLD_``), which slows
    torch down (each temporary page-faulted again, see
    :mod:`napari_p2sam.models.allocator`, which the worker applies instead);
    here each library gets the worker's share of the cores.
    """
    return {
        "MALLOC_TRIM_THRESHOLD_": None,
        **{name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }


def join(scheduler: str | None, scheduler_file: Path | None):
    """A client of an existing scheduler (see :func:`connected`)."""
    from distributed import Client

    where = f"the scheduler at {scheduler}" if scheduler else f"the scheduler named in {scheduler_file}"
    if scheduler_file is not None and not scheduler_file.is_file():
        raise ClusterError(
            f"--scheduler-file {scheduler_file} does not exist: start the scheduler first, or fix the path"
        )
    try:
        if scheduler:
            return Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        return Client(scheduler_file=str(scheduler_file), timeout=CONNECT_TIMEOUT_S)
    except (OSError, ValueError, TypeError) as err:
        raise ClusterError(
            f"cannot reach {where} ({err}): check that it is running and that this machine can reach it"
        ) from None
