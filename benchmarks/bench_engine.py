"""Time per image, split by step, for a vit_b-sized SAM with random weights.

Prints a Markdown table: encoder / reference / prompts / decoder / retrieval
seconds (medians over ``--repeats`` targets), the non-encoder share, and
peak memory. Speed does not depend on the weights' values, so random weights
stand in for Meta's checkpoint.

    python benchmarks/bench_engine.py --model vit_b --repeats 3 --device cpu

Objects: ``small`` = the real CT pair (tumour < 0.5% of the slice);
``large`` = a disc covering 30% of the same slice.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from segment_anything import sam_model_registry

from napari_p2sam import P2SAM, Settings
from napari_p2sam.models.allocator import keep_freed_memory
from napari_p2sam.models.loading import SamModel, choose_device

CT = Path(__file__).resolve().parents[2] / "shared" / "cases" / "lung-ct"
STEPS = ("encoder", "reference", "prompts", "decoder", "retrieval")


def random_model(name: str, device: str | None) -> SamModel:
    torch.manual_seed(0)
    sam = sam_model_registry[name]().eval().to(choose_device(device))
    return SamModel(sam, identity=f"random-{name}", normalization="sam", source="random weights")


def large_mask(shape: tuple[int, int], fraction: float = 0.30) -> np.ndarray:
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    radius = np.sqrt(fraction * shape[0] * shape[1] / np.pi)
    return ((rows - shape[0] / 2) ** 2 + (cols - shape[1] / 2) ** 2 <= radius**2).astype(np.uint8)


def peak_gpu_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def bench(model: SamModel, mask: np.ndarray, settings: Settings, repeats: int) -> dict[str, float]:
    ref = np.array(Image.open(CT / "ref_image.png"))
    target = np.array(Image.open(CT / "test_image.png"))
    p2sam = P2SAM(model, settings)
    start = time.perf_counter()
    p2sam.set_reference(ref, mask)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    reference_total = time.perf_counter() - start
    p2sam.segment(target)  # warm-up
    runs = []
    for _ in range(repeats):
        result = p2sam.segment(target)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        runs.append(result.timings)
    timings = {step: statistics.median(r.get(step, 0.0) for r in runs) for step in STEPS if step != "reference"}
    # the reference step = its encoding (one more encoder run) + patches and k-means, done once per reference
    timings["reference"] = max(0.0, reference_total - timings["encoder"])
    timings["chosen_k"] = result.k
    timings["object_patches"] = int(p2sam.reference.foreground.shape[0])
    return timings


def main() -> None:
    keep_freed_memory()  # as the command line and the widget's model process do
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_b", choices=sorted(sam_model_registry))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--retrieval", default="exact", choices=("exact", "sampled"))
    args = parser.parse_args()
    model = random_model(args.model, args.device)
    small = np.array(Image.open(CT / "ref_mask.png"))
    rows = []
    for object_name, mask in (("small (CT tumour)", small), ("large (30% disc)", large_mask(small.shape))):
        for variant in ("natural", "medical"):
            settings = Settings(variant=variant, parts=(1, 5), retrieval=args.retrieval)
            rows.append((object_name, variant, bench(model, mask, settings, args.repeats)))
    device = choose_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"model {args.model} (random weights), device {name}, 512×512 target, k = 1..5, "
        f"retrieval {args.retrieval}, medians of {args.repeats}\n"
    )
    print(
        "| object | variant | patches | encoder s | reference s (once) | prompts s | decoder s | retrieval s "
        "| non-encoder / encoder | chosen k |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for object_name, variant, t in rows:
        rest = t["prompts"] + t["decoder"] + t["retrieval"]
        print(
            f"| {object_name} | {variant} | {t['object_patches']} | {t['encoder']:.3f} | {t['reference']:.3f} | "
            f"{t['prompts']:.3f} | {t['decoder']:.3f} | {t['retrieval']:.3f} | {100 * rest / t['encoder']:.1f}% "
            f"| {t['chosen_k']} |"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = peak_gpu_mb(device)
    print(f"\npeak resident memory {rss:.0f} MiB" + (f", peak GPU memory {gpu:.0f} MiB" if gpu else ""))


if __name__ == "__main__":
    main()
