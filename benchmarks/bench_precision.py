"""The image encoder in bf16 and compiled, against fp32: speed, and agreement on the parity cases.

``speed``: the CT slice (512×512) through a SAM ViT-B of random weights, the
encoder alone, each mode timed in turn (round robin, so a load that comes and
goes on a shared machine hits all modes alike); prints the median seconds of
each, its speed-up over fp32 eager, and the largest difference of its
features from fp32 eager (relative to their largest magnitude). Compiled
modes report their first call (the compilation) separately.

``agree``: every golden row of the parity cases (shared/cases/parity) segmented
by the same random ViT-B with an fp32 and a bf16 encoder: the k each keeps
and the IoU of their masks. Random weights: an indication only; run
``napari-p2sam eval --precision fp32 bf16`` with real weights on your data.

    python benchmarks/bench_precision.py speed --repeats 5 --modes fp32 bf16 fp32-compiled
    python benchmarks/bench_precision.py agree
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from bench_engine import CT, random_model
from PIL import Image

from napari_p2sam import P2SAM, Settings
from napari_p2sam.engine.embeddings import ImageEmbedding, model_input
from napari_p2sam.models.loading import SamModel

PARITY = CT.parent / "parity"


def mode_model(model: SamModel, mode: str) -> SamModel:
    """``fp32``, ``bf16``, ``fp32-compiled``, ``bf16-compiled`` as a model sharing ``model``'s weights."""
    precision, _, compiled = mode.partition("-")
    return replace(model, precision=precision, compile=bool(compiled))


def synchronize(model: SamModel) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


@torch.inference_mode()
def timed_encode(model: SamModel, pixels: torch.Tensor) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    features = model.encode(pixels)
    synchronize(model)
    return time.perf_counter() - start, features


def speed(model: SamModel, modes: list[str], repeats: int) -> None:
    image = np.array(Image.open(CT / "test_image.png").convert("RGB"))
    pixels, _ = model_input(model, image)
    models = {mode: mode_model(model, mode) for mode in ["fp32", *modes]}
    first = {mode: timed_encode(m, pixels) for mode, m in models.items()}  # warm-up; compiles
    reference = first["fp32"][1]
    scale = reference.abs().max().item()
    seconds: dict[str, list[float]] = {mode: [] for mode in models}
    for _ in range(repeats):
        for mode, m in models.items():
            seconds[mode].append(timed_encode(m, pixels)[0])
    base = statistics.median(seconds["fp32"])
    print("| mode | first call (s) | median (s) | speed-up over fp32 | max abs diff / max abs (features) |")
    print("|---|---:|---:|---:|---:|")
    for mode in models:
        median = statistics.median(seconds[mode])
        diff = (first[mode][1] - reference).abs().max().item() / scale
        print(f"| {mode} | {first[mode][0]:.2f} | {median:.3f} | {base / median:.2f}× | {diff:.1e} |")


def read_rgb(relative: str) -> np.ndarray:
    return np.array(Image.open(PARITY / relative).convert("RGB"))


def agree(model: SamModel) -> None:
    cases = {c["name"]: c for c in json.loads((PARITY / "cases.json").read_text())}
    rows = json.loads((PARITY / "golden" / "golden.json").read_text())
    precisions = {p: P2SAM(replace(model, precision=p)) for p in ("fp32", "bf16")}
    embeddings: dict[tuple[str, str], tuple[np.ndarray, ImageEmbedding]] = {}

    def encoded(precision: str, relative: str) -> tuple[np.ndarray, ImageEmbedding]:
        """Each image encoded once per precision."""
        if (precision, relative) not in embeddings:
            image = read_rgb(relative)
            embeddings[precision, relative] = image, precisions[precision].encode(image)
        return embeddings[precision, relative]

    print("| case | variant | target | k fp32 | k bf16 | mask IoU bf16 vs fp32 | object pixels (fp32) |")
    print("|---|---|---|---:|---:|---:|---:|")
    same_k, ious = 0, []
    for row in rows:
        case = cases[row["case"]]
        settings = Settings(
            variant=row["variant"], parts=tuple(case["parts"]), background_parts=tuple(case["background_parts"])
        )
        target = next(t for t in case["targets"] if Path(t).name == row["target"])
        results = {}
        for name, p2sam in precisions.items():
            p2sam.update_settings(settings)
            image, embedding = encoded(name, case["ref_image"])
            p2sam.set_reference(image, read_rgb(case["ref_mask"])[..., 0], embedding=embedding)
            results[name] = p2sam.segment_embedding(encoded(name, target)[1])
        a, b = results["fp32"], results["bf16"]
        iou = (a.mask & b.mask).sum() / max(1, (a.mask | b.mask).sum())
        same_k += a.k == b.k
        ious.append(iou)
        print(f"| {row['case']} | {row['variant']} | {row['target']} | {a.k} | {b.k} | {iou:.4f} | {a.mask.sum()} |")
    print(f"\nsame k: {same_k}/{len(rows)}; mask IoU median {statistics.median(ious):.4f}, min {min(ious):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("speed", "agree"))
    parser.add_argument("--model", default="vit_b")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=["bf16"], help="besides fp32: bf16, fp32-compiled, ...")
    args = parser.parse_args()
    model = random_model(args.model, args.device)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}, {args.model} random weights\n"
    )
    if args.what == "speed":
        speed(model, args.modes, args.repeats)
    else:
        agree(model)


if __name__ == "__main__":
    main()
