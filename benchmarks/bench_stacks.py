"""Stacks: time per frame with a cold vs a warm embedding cache, and peak memory vs stack length.

``cache``: a synthetic 512×512 RGB video (a disc moving over texture,
painted on frame 0) through :func:`~napari_p2sam.engine.propagate.propagate`
with a SAM ViT-B of random weights (speed does not depend on the values),
first with an empty cache, then again with the warm cache, then with other
P²SAM settings. Prints the median seconds per segmented frame of each run,
and the arithmetic of one frame (torch's FLOP counter): its encoding, which
the warm cache removes, against its P²SAM work, which every run does. Their
ratio bounds the rerun's speed-up when both run equally fast per FLOP.

``verify``: one 512×512 frame encoded by that ViT-B, then read back from
the cache many times: the median seconds of a verified read (``load``), of
its checksum alone, and of the same zarr read without the checksum, against
the seconds of encoding the frame.

``memory``: ``napari-p2sam segment`` on uint16 TIFF stacks of 50 and 500
frames (256×256) with a small random SAM, ``--cache`` and TIFF output, each
in its own process; prints each process's peak resident memory.

    python benchmarks/bench_stacks.py cache --frames 20        # a subset of the 200
    python benchmarks/bench_stacks.py verify --reads 50
    python benchmarks/bench_stacks.py memory --counts 50 500 [--method p2sam]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_p2sam import SamModel, Settings, preset
from napari_p2sam.engine.cache import EmbeddingCache, encoder_key, entry_checksum
from napari_p2sam.engine.embeddings import encode_image
from napari_p2sam.engine.pixels import image_key
from napari_p2sam.engine.propagate import propagate
from napari_p2sam.models.allocator import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]


def random_vit_b() -> SamModel:
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"]().eval()
    return SamModel(sam=sam, identity="random-vit_b-seed0", normalization="sam", source="random")


def moving_disc(count: int, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """``(count, size, size, 3)`` uint8 frames of a disc drifting right, and frame 0's mask."""
    rng = np.random.default_rng(0)
    background = rng.integers(40, 90, (size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    frames = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        disc = (yy - size * 0.5) ** 2 + (xx - size * (0.3 + 0.4 * i / max(count - 1, 1))) ** 2 < (size * 0.09) ** 2
        frames[i] = background
        frames[i][disc] = (200, 120, 60)
        if i == 0:
            mask = disc
    return frames, mask.astype(np.uint8)


class TimedCache(EmbeddingCache):
    """An embedding cache that records how long each target's embedding took (encoded and stored, or read)."""

    def __init__(self, folder, painted: np.ndarray) -> None:
        super().__init__(folder)
        self.painted = painted
        self.seconds: list[float] = []

    def embedding(self, model, image_rgb):
        start = time.perf_counter()
        result = super().embedding(model, image_rgb)
        if not np.array_equal(image_rgb, self.painted):  # the painted frame is encoded for its reference only
            self.seconds.append(time.perf_counter() - start)
        return result


def frame_seconds(model, frames, references, settings, cache: TimedCache) -> tuple[list[float], list[float], int]:
    """Seconds of each segmented (not painted) frame, of its embedding step, and the frames encoded."""
    stamps: list[float] = []
    cache.seconds = []
    run = propagate(
        model, frames, references, settings, cache=cache, progress=lambda p: stamps.append(time.perf_counter())
    )
    painted = [r.painted for r in run]
    # stamps[0] is taken before the reference work: frame 1's time starts when frame 0 (painted) is done
    times = [b - a for a, b, was_painted in zip(stamps[1:], stamps[2:], painted[1:]) if not was_painted]
    return times, cache.seconds, run.encoded


def bench_cache(count: int, settings_name: str) -> None:
    model = random_vit_b()
    frames, mask = moving_disc(count)
    settings = preset(settings_name)
    other = Settings(method="persam")
    with tempfile.TemporaryDirectory() as folder:
        cache = TimedCache(folder, frames[0])
        rows = [
            ("first run (empty cache)", settings_name, *frame_seconds(model, frames, {0: mask}, settings, cache)),
            ("rerun (warm cache)", settings_name, *frame_seconds(model, frames, {0: mask}, settings, cache)),
            ("rerun, other settings", "persam", *frame_seconds(model, frames, {0: mask}, other, cache)),
        ]
    first, first_embedding = statistics.median(rows[0][2]), statistics.median(rows[0][3])
    print(
        f"{count} frames of 512×512 (medians over the {count - 1} segmented frames), SAM ViT-B (random weights), "
        f"{machine()}\n"
    )
    print(
        "| run | settings | s / frame | speed-up | s / frame for the embedding (encode or cache read) | speed-up "
        "| frames encoded |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, settings_label, times, embedding_times, encoded in rows:
        total, embedding = statistics.median(times), statistics.median(embedding_times)
        print(
            f"| {name} | {settings_label} | {total:.2f} | {first / total:.1f}× | {embedding:.3f} "
            f"| {first_embedding / embedding:.0f}× | {encoded} |"
        )
    encode, segment = frame_flops(model, frames, mask, settings)
    print(
        f"\nArithmetic of one frame ({settings_name}): encoding {encode / 1e9:.1f} GFLOP, P²SAM on the embedding "
        f"{segment / 1e9:.1f} GFLOP; a rerun does {segment / (encode + segment):.1%} of a first run's arithmetic, "
        f"so at equal speed per FLOP its speed-up is {(encode + segment) / segment:.1f}×"
    )


def frame_flops(model: SamModel, frames: np.ndarray, mask: np.ndarray, settings: Settings) -> tuple[float, float]:
    """Floating-point operations (torch's count) to encode frame 1, and to segment it once encoded."""
    from torch.utils.flop_counter import FlopCounterMode

    from napari_p2sam import P2SAM

    predictor = P2SAM(model, settings)
    predictor.set_reference(frames[0], mask)
    with FlopCounterMode(display=False) as encoding:
        embedding = predictor.encode(frames[1])
    with FlopCounterMode(display=False) as segmenting:
        predictor.segment_embedding(embedding)
    return encoding.get_total_flops(), segmenting.get_total_flops()


def bench_verify(reads: int) -> None:
    import zarr

    model = random_vit_b()
    frames, _ = moving_disc(1)
    start = time.perf_counter()
    embedding = encode_image(model, frames[0])
    encode = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        cache = EmbeddingCache(folder)
        cache.save(model, frames[0], embedding)
        entry = Path(folder) / encoder_key(model) / image_key(frames[0])
        verified, plain, checksum = [], [], []
        for _ in range(reads):
            start = time.perf_counter()
            cache.load(model, frames[0])
            verified.append(time.perf_counter() - start)
            start = time.perf_counter()
            array = zarr.open_array(str(entry), mode="r")
            record = dict(array.attrs["napari_p2sam"])
            features = np.asarray(array[...])
            plain.append(time.perf_counter() - start)
            record.pop("checksum")
            start = time.perf_counter()
            entry_checksum(record, features)
            checksum.append(time.perf_counter() - start)
    ms = {
        name: statistics.median(times) * 1e3
        for name, times in (("verified", verified), ("plain", plain), ("checksum", checksum))
    }
    print(
        f"one 512×512 frame, SAM ViT-B (random weights), features {tuple(features.shape)} float32 "
        f"({features.nbytes / 2**20:.0f} MiB), medians of {reads} reads, {machine()}\n"
    )
    print(f"encode the frame: {encode * 1e3:.0f} ms")
    print(
        f"verified read (EmbeddingCache.load): {ms['verified']:.1f} ms; the same zarr read without the checksum: "
        f"{ms['plain']:.1f} ms; the checksum alone: {ms['checksum']:.1f} ms"
    )
    print(
        f"the checksum adds {ms['checksum'] / ms['plain']:.0%} to a read and is {ms['checksum'] / (encode * 1e3):.3%} "
        "of encoding the frame"
    )


def bench_memory(counts: list[int], method: str) -> None:
    sys.path.insert(0, str(ROOT))
    import tifffile

    from tests.conftest import save_tiny_sam

    print(
        f"napari-p2sam segment --method {method}, 256×256 uint16 frames, small random SAM (256-px input), {machine()}\n"
    )
    print("| frames | peak RSS (MiB) | wall (s) |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        checkpoint = save_tiny_sam(folder / "small.pth", img_size=256, window_size=4)
        mask = np.zeros((256, 256), np.uint8)
        mask[80:160, 90:170] = 1
        tifffile.imwrite(folder / "mask.tif", mask)
        peaks = []
        for count in counts:
            rng = np.random.default_rng(count)
            with tifffile.TiffWriter(folder / f"stack{count}.tif") as tiff:
                pages = (rng.integers(0, 4000, (256, 256), dtype=np.uint16) for _ in range(count))
                tiff.write(pages, shape=(count, 256, 256), dtype=np.uint16, photometric="minisblack")
            command = [
                sys.executable,
                "-c",
                "import sys; from napari_p2sam.cli import main; sys.exit(main())",
                "segment",
                str(folder / f"stack{count}.tif"),
                "--checkpoint",
                str(checkpoint),
                "--reference-mask",
                str(folder / "mask.tif"),
                "--out",
                str(folder / f"out{count}.tif"),
                "--cache",
                str(folder / "cache"),
                "--method",
                method,
                "--quiet",
            ]
            start = time.perf_counter()
            pid = os.spawnv(os.P_NOWAIT, sys.executable, command)
            _, status, usage = os.wait4(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"segment failed on {count} frames")
            peaks.append(usage.ru_maxrss / 1024)
            print(f"| {count} | {peaks[-1]:.0f} | {time.perf_counter() - start:.0f} |")
        print(f"\nlargest / smallest peak: {max(peaks) / min(peaks):.3f}")


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main() -> None:
    keep_freed_memory()  # as the command line and the widget's model process do
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="bench", required=True)
    cache = sub.add_parser("cache", help="cold vs warm cache, ViT-B, 512×512")
    cache.add_argument("--frames", type=int, default=200)
    cache.add_argument("--preset", default="endoscopy-video")
    verify = sub.add_parser("verify", help="a verified cache read vs a plain read vs encoding, ViT-B, 512×512")
    verify.add_argument("--reads", type=int, default=50)
    memory = sub.add_parser("memory", help="peak RSS vs stack length")
    memory.add_argument("--counts", type=int, nargs="+", default=[50, 500])
    memory.add_argument("--method", choices=("persam", "p2sam"), default="persam")
    args = parser.parse_args()
    if args.bench == "cache":
        bench_cache(args.frames, args.preset)
    elif args.bench == "verify":
        bench_verify(args.reads)
    else:
        bench_memory(args.counts, args.method)


if __name__ == "__main__":
    main()
