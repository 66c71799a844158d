"""``napari-p2sam batch``: overhead against ``segment``, scaling over workers, and memory per worker vs item length.

``overhead``: ``--items`` uint8 TIFF stacks of ``--frames`` frames (a disc
drifting over texture, 96×128, painted on frame 0) with the small random
SAM of the tests (256-px input), ``--preset`` (default persam: the least
work per frame, so the batch's own costs weigh the most). Timed, one after
another, each as wall-clock seconds of the whole thing:

- ``segment`` on each item, one process per item, one after another (what
  a shell loop does: each process imports torch and loads the model);
- ``segment`` on each item in this one process (``cli.main``), so process
  start-up is not counted;
- ``napari-p2sam batch --workers 1`` (one process: the cluster's start,
  its worker's torch import and model load, every chunk, the report);
- ``napari-p2sam batch --workers 2``.

``memory``: one item of each of ``--counts`` frames through ``run_batch``
on a fresh LocalCluster of one worker (persam preset, 64-frame chunks);
prints the worker process's peak resident memory (``ru_maxrss``).

    python benchmarks/bench_batch.py overhead --items 8 --frames 48
    python benchmarks/bench_batch.py memory --counts 100 2000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.conftest: the small random SAM

CLI = [sys.executable, "-c", "import sys; from napari_p2sam.cli import main; sys.exit(main())"]


def drifting_disc(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(count, 96, 128)`` uint8 frames of a bright disc drifting right over texture, and frame 0's mask."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:96, :128]
    frames = rng.integers(30, 90, (count, 96, 128), dtype=np.uint8)
    for index in range(count):
        centre = 30 + (index * 60) // max(count - 1, 1)
        frames[index][(rows - 48) ** 2 + (cols - centre) ** 2 < 15**2] = 200
    mask = ((rows - 48) ** 2 + (cols - 30) ** 2 < 15**2).astype(np.uint8)
    return frames, mask


def write_items(folder: Path, items: int, frames: int) -> Path:
    """``item<i>.tif`` + ``mask<i>.png`` in ``folder``, and the manifest listing them."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["input,reference_mask,reference_frame"]
    for index in range(items):
        stack, mask = drifting_disc(frames, seed=index)
        tifffile.imwrite(folder / f"item{index}.tif", stack)
        Image.fromarray(mask).save(folder / f"mask{index}.png")
        rows.append(f"item{index}.tif,mask{index}.png,0")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


def segment_args(folder: Path, index: int, checkpoint: Path, out: Path, preset: str) -> list[str]:
    return [
        "segment",
        str(folder / f"item{index}.tif"),
        "--checkpoint",
        str(checkpoint),
        "--reference-mask",
        str(folder / f"mask{index}.png"),
        "--out",
        str(out / f"item{index}.tif"),
        "--device",
        "cpu",
        "--preset",
        preset,
        "--quiet",
    ]


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def overhead(args: argparse.Namespace, work: Path, checkpoint: Path) -> None:
    from napari_p2sam.cli import main

    folder = work / "data"
    manifest = write_items(folder, args.items, args.frames)
    print(f"{args.items} items × {args.frames} frames (96×128), small random SAM, {args.preset}; load {load()}")

    def segment_processes():
        out = work / "seg-processes"
        out.mkdir()
        for index in range(args.items):
            subprocess.run(
                [*CLI, *segment_args(folder, index, checkpoint, out, args.preset)], check=True, capture_output=True
            )

    def segment_in_process():
        out = work / "seg-in-process"
        out.mkdir()
        for index in range(args.items):
            assert main(segment_args(folder, index, checkpoint, out, args.preset)) == 0

    def batch(workers: int):
        out = work / f"batch-{workers}"
        command = [*CLI, "batch", str(manifest), "--checkpoint", str(checkpoint), "--out", str(out)]
        command += ["--workers", str(workers), "--device", "cpu", "--chunk-frames", str(args.chunk_frames)]
        command += ["--preset", args.preset, "--quiet"]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        print(f"  batch --workers {workers}: {done.stdout.strip()}")

    times = {
        "segment, a process per item": timed(segment_processes),
        "segment, in this process": timed(segment_in_process),
        "batch --workers 1": timed(lambda: batch(1)),
        "batch --workers 2": timed(lambda: batch(2)),
    }
    for name, seconds in times.items():
        print(f"  {name:30s} {seconds:7.1f} s")
    one = times["batch --workers 1"]
    print(f"  batch 1 worker / segment processes:  {one / times['segment, a process per item']:.2f}")
    print(f"  batch 1 worker / segment in-process: {one / times['segment, in this process']:.2f}")
    print(f"  batch 2 workers / batch 1 worker:    {times['batch --workers 2'] / one:.2f}")
    same = all(
        np.array_equal(tifffile.imread(work / "seg-processes" / f"item{i}.tif"), tifffile.imread(path))
        for i in range(args.items)
        for path in (work / f"batch-{w}" / f"item{i}_labels.tif" for w in (1, 2))
    )
    print(f"  outputs identical to segment's: {same}")


def memory(args: argparse.Namespace, work: Path, checkpoint: Path) -> None:
    import resource

    from distributed import Client, LocalCluster

    from napari_p2sam.batch import run_batch
    from napari_p2sam.batch.manifest import check_items, read_manifest

    print(f"one item per run, persam preset, 64-frame chunks, 1 worker; load {load()}")
    for count in args.counts:
        folder = work / f"memory-{count}"
        manifest = write_items(folder, 1, count)
        out = folder / "out"
        plans = check_items(read_manifest(manifest, out), out, overwrite=False, preset="persam")
        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster) as c:
            start = time.perf_counter()
            run_batch(plans, checkpoint, out, client=c, device="cpu", progress=False)
            seconds = time.perf_counter() - start
            peak_kib = next(iter(c.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).values()))
        print(f"  {count:5d} frames: worker peak {peak_kib / 1024:7.1f} MiB, {seconds:6.1f} s")


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    from tests.conftest import save_tiny_sam

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    over = sub.add_parser("overhead")
    over.add_argument("--items", type=int, default=8)
    over.add_argument("--frames", type=int, default=48)
    over.add_argument("--chunk-frames", type=int, default=16)
    over.add_argument("--preset", default="persam")
    mem = sub.add_parser("memory")
    mem.add_argument("--counts", type=int, nargs="+", default=[100, 2000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        checkpoint = save_tiny_sam(work / "small_sam.pth", img_size=256, window_size=4)
        {"overhead": overhead, "memory": memory}[args.what](args, work, checkpoint)


if __name__ == "__main__":
    main()
