"""CPU (or GPU) time of each SAM size, with random weights, so a user can choose a model.

For vit_t (MobileSAM's TinyViT), vit_b, vit_l and vit_h:

- encoder: seconds for one 1024×1024 input through the image encoder;
- frame: end-to-end seconds for one 512×512 frame through ``P2SAM.segment``
  (encoding, prompts, decoding and retrieval over k = 1..5, preset "photos"),
  after the reference was set, and its parts as ``Segmentation.timings``
  reports them.

Medians over ``--reps`` runs after one warm-up run (``--reps-vit-h`` for
vit_h, the slowest). Random weights: the encoder's time does not depend on
them; prompts, decoding and retrieval depend on the similarity maps and
masks, so their share here is indicative only. Prints a Markdown table and
the machine it ran on.

    python benchmarks/bench_models.py                   # all four, CPU
    python benchmarks/bench_models.py --models vit_t vit_b --reps 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
from segment_anything import sam_model_registry

from napari_p2sam import P2SAM, SamModel
from napari_p2sam.models.allocator import keep_freed_memory
from napari_p2sam.models.tiny_vit import TinyViT

MODELS = ("vit_t", "vit_b", "vit_l", "vit_h")


def random_model(name: str, device: str) -> SamModel:
    """A SAM of the given size with random weights (vit_t: TinyViT encoder, SAM's decoder)."""
    torch.manual_seed(0)
    sam = sam_model_registry["vit_b" if name == "vit_t" else name]()
    if name == "vit_t":
        sam.image_encoder = TinyViT()
    return SamModel(sam=sam.eval().to(device), identity=f"random-{name}", normalization="sam", source="random")


def frames(size: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A reference image with an elliptical object, its mask, and a shifted target image."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    mask = ((yy - 0.45 * size) / (0.18 * size)) ** 2 + ((xx - 0.5 * size) / (0.25 * size)) ** 2 < 1
    base = rng.integers(40, 90, (size, size, 3)).astype(np.uint8)
    reference = base.copy()
    reference[mask] = (200, 120, 60)
    target = np.roll(reference, (size // 10, -size // 12), axis=(0, 1))
    return reference, mask, target


def median_seconds(run, reps: int, sync) -> dict[str, float]:
    """Median wall time (``"total"``) and median of each entry of the ``timings`` dict ``run`` may return."""
    run()
    sync()
    runs = []
    for _ in range(reps):
        start = time.perf_counter()
        result = run()
        sync()
        runs.append({"total": time.perf_counter() - start, **getattr(result, "timings", {})})
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def machine(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    where = torch.cuda.get_device_name() if device == "cuda" else f"{cpu}, {os.cpu_count()} cores"
    return f"{where}; torch {torch.__version__}, {torch.get_num_threads()} threads"


def main() -> None:
    keep_freed_memory()  # as the command line and the widget's model process do
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--reps", type=int, default=3, help="timed runs per measurement (default 3)")
    parser.add_argument("--reps-vit-h", type=int, default=1, help="timed runs for vit_h (default 1)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--retrieval", default="exact", choices=("exact", "sampled"), help="P²SAM's EMD solver")
    args = parser.parse_args()
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    reference, mask, target = frames()
    x = torch.randn(1, 3, 1024, 1024, device=args.device)

    print(f"machine: {machine(args.device)}; retrieval {args.retrieval}\n")
    print(
        "| model | encoder s / 1024² input | s / 512² frame | of which encode | prompts | decode | retrieval "
        "| frames / s | reps |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        reps = args.reps_vit_h if name == "vit_h" else args.reps
        model = random_model(name, args.device)
        with torch.inference_mode():
            encoder = median_seconds(lambda: model.sam.image_encoder(x), reps, sync)["total"]  # noqa: B023, F821 (timed at once)
        p2sam = P2SAM(model, preset="photos")
        p2sam.update_settings(retrieval=args.retrieval)
        p2sam.set_reference(reference, mask)
        frame = median_seconds(lambda: p2sam.segment(target), reps, sync)  # noqa: B023, F821 (timed at once)
        parts = " | ".join(f"{frame[key]:.2f}" for key in ("encoder", "prompts", "decoder", "retrieval"))
        total = frame["total"]
        print(f"| {name} | {encoder:.2f} | {total:.2f} | {parts} | {1 / total:.2f} | {reps} |", flush=True)
        del model, p2sam


if __name__ == "__main__":
    main()
