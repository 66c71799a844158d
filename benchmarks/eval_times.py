"""Seconds per image of ``napari-p2sam eval``, for estimating how long PerSeg and CVC-ClinicDB take.

Prints two tables (medians):

1. per model shape (SAM ViT-B/L/H, random weights) and frame size (PerSeg-like
   1024×768, CVC-like 384×288): the shared encoder pass, P²SAM's prompts and
   decoder cascade (all candidates), and PerSAM's whole segmentation;
2. P²SAM's retrieval: POT's exact EMD on the CPU between two sets of N
   256-d patch features, per candidate.

Random weights do not find real objects, so retrieval time on real data
cannot be read off a random model's masks; it is taken from table 2 at the
objects' size in patches (one patch = 16×16 pixels of SAM's 1024-px frame).
The timing runs themselves use sampled retrieval to stay short.

    python benchmarks/eval_times.py --device cuda [--models vit_b vit_l vit_h] [--frames 6]
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import numpy as np
import torch
from segment_anything import sam_model_registry

from napari_p2sam.engine.predictor import P2SAM
from napari_p2sam.engine.retrieval import emd_score
from napari_p2sam.engine.settings import PRESETS, preset
from napari_p2sam.models.allocator import keep_freed_memory
from napari_p2sam.models.loading import SamModel

FRAME_SIZES = {"PerSeg-like 1024x768": ((768, 1024), "photos"), "CVC-like 384x288": ((288, 384), "endoscopy-video")}
EMD_PATCHES = (100, 300, 1000, 2000, 3000)


def random_model(name: str, device: str) -> SamModel:
    torch.manual_seed(0)
    sam = sam_model_registry[name](checkpoint=None).to(device).eval()
    return SamModel(sam=sam, identity=f"random-{name}", normalization="sam", source="random weights")


def frame(seed: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Noisy RGB frame with a bright rectangle covering about a ninth of it, and its mask."""
    rng = np.random.default_rng(seed)
    h, w = size
    image = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    mask[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] = True
    image[mask] = (200, 150, 90)
    return np.roll(image, seed * 7, axis=1), np.roll(mask, seed * 7, axis=1)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_model(model: SamModel, size: tuple[int, int], preset_name: str, frames: int, device: str) -> dict[str, float]:
    p2sam = P2SAM(model, preset(preset_name, retrieval="sampled"))
    persam = P2SAM(model, PRESETS["persam"])
    image, mask = frame(0, size)
    embedding = p2sam.encode(image)
    p2sam.set_reference(image, mask, embedding=embedding)
    persam.set_reference(image, mask, embedding=embedding)
    times: dict[str, list[float]] = {"encoder": [], "p2sam": [], "persam": []}
    for i in range(frames + 1):  # the first frame warms up and is not counted
        target, _ = frame(i + 1, size)
        start = time.perf_counter()
        embedding = p2sam.encode(target)
        synchronize(device)
        encoded = time.perf_counter()
        result = p2sam.segment_embedding(embedding)
        start_persam = time.perf_counter()
        persam.segment_embedding(embedding)
        done = time.perf_counter()
        if i:
            times["encoder"].append(encoded - start)
            times["p2sam"].append(result.timings["prompts"] + result.timings["decoder"])
            times["persam"].append(done - start_persam)
    return {k: median(v) for k, v in times.items()}


def time_emd(patches: int, repeats: int = 3) -> float:
    rng = np.random.default_rng(patches)
    reference = torch.from_numpy(rng.normal(size=(patches, 256)).astype(np.float32))
    target = torch.from_numpy(rng.normal(0.3, 1.0, size=(patches, 256)).astype(np.float32))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        emd_score(reference, target)
        seconds.append(time.perf_counter() - start)
    return median(seconds)


def main() -> None:
    keep_freed_memory()  # as the command line and the widget's model process do
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=["vit_b", "vit_l", "vit_h"], choices=["vit_b", "vit_l", "vit_h"])
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"device: {args.device} ({name}), torch {torch.__version__}, float32")
    print("\nmodel  frames                encoder s  p2sam prompts+decoder s  persam s")
    for model_name in args.models:
        model = random_model(model_name, args.device)
        for label, (size, preset_name) in FRAME_SIZES.items():
            t = time_model(model, size, preset_name, args.frames, args.device)
            print(f"{model_name:5}  {label:20}  {t['encoder']:9.3f}  {t['p2sam']:23.3f}  {t['persam']:8.3f}")
        del model
        if args.device == "cuda":
            torch.cuda.empty_cache()
    print("\nexact EMD per candidate (CPU), N patches on each side")
    print("N       seconds")
    for patches in EMD_PATCHES:
        print(f"{patches:<6}  {time_emd(patches, repeats=1 if patches >= 2000 else 3):7.3f}")


if __name__ == "__main__":
    main()
