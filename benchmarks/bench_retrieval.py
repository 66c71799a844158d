"""How often the sampled EMD estimate keeps the same k as exact EMD, on large objects.

Large objects (25–60% of the image) from scikit-image's bundled photos, each
segmented in transformed copies of itself (flips, rotations, crops, noise,
contrast changes). For every target frame both solvers score the *same*
candidates (the decoder is deterministic), so the only difference is the
retrieval. Prints agreement and retrieval time per frame.

    python benchmarks/bench_retrieval.py --checkpoint ../shared/cases/parity/tiny_sam_seed1.pth

With real weights, pass your checkpoint: agreement depends on the features.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

import numpy as np
from skimage import data, filters, transform

from napari_p2sam import P2SAM, Settings, load_model
from napari_p2sam.engine.segment import segment_embedding
from napari_p2sam.models.allocator import keep_freed_memory

PHOTOS = ("coins", "astronaut", "coffee", "chelsea", "rocket", "camera", "horse", "page")


def gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else image[..., :3].mean(axis=2)


def large_object(image: np.ndarray) -> np.ndarray:
    """Otsu foreground (or background, whichever is 25–60% of the image), else a centred ellipse."""
    g = gray(image)
    fg = g > filters.threshold_otsu(g)
    for mask in (fg, ~fg):
        if 0.25 <= mask.mean() <= 0.6:
            return mask
    rows, cols = np.ogrid[: g.shape[0], : g.shape[1]]
    return ((rows / g.shape[0] - 0.5) ** 2 / 0.16 + (cols / g.shape[1] - 0.5) ** 2 / 0.16) <= 1


def targets(image: np.ndarray, rng: np.random.Generator):
    """Transformed copies of ``image`` (uint8): the kinds of change between frames."""
    as_float = image.astype(np.float64)
    yield np.ascontiguousarray(image[:, ::-1])
    yield np.ascontiguousarray(image[::-1])
    yield np.ascontiguousarray(np.rot90(image))
    h, w = image.shape[:2]
    for crop in (0.1, 0.2):
        cut = image[int(crop * h) :, int(crop * w) :]
        yield (transform.resize(cut, image.shape, preserve_range=True)).astype(np.uint8)
    for sigma in (8, 20):
        yield np.clip(as_float + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)
    for gamma in (0.7, 1.4):
        yield (255 * (as_float / 255) ** gamma).astype(np.uint8)
    yield np.clip(as_float * 0.8 + 30, 0, 255).astype(np.uint8)
    yield (transform.rotate(image, 12, preserve_range=True, mode="reflect")).astype(np.uint8)
    yield (transform.rescale(image, 0.7, preserve_range=True, channel_axis=-1 if image.ndim == 3 else None)).astype(
        np.uint8
    )


def main() -> None:
    keep_freed_memory()  # as the command line and the widget's model process do
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--patches", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--variant", default="natural", choices=("natural", "medical"))
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS), choices=PHOTOS)
    args = parser.parse_args()
    model = load_model(args.checkpoint, device=args.device)
    rng = np.random.default_rng(0)
    exact = P2SAM(model, Settings(variant=args.variant, retrieval="exact"))
    agree = {n: 0 for n in args.patches}
    seconds = {n: [] for n in args.patches}
    exact_seconds, frames, sizes = [], 0, []
    for name in args.photos:
        image = getattr(data, name)()
        mask = large_object(image)
        exact.set_reference(image, mask)
        sizes.append(exact.reference.foreground.shape[0])
        for target in targets(image, rng):
            embedding = exact.encode(target)
            truth = exact.segment_embedding(embedding)
            exact_seconds.append(truth.timings["retrieval"])
            frames += 1
            for n in args.patches:
                sampled = replace(exact.settings, retrieval="sampled", retrieval_patches=n)
                estimate = segment_embedding(model, exact.reference, embedding, sampled)
                agree[n] += estimate.k == truth.k
                seconds[n].append(estimate.timings["retrieval"])
    print(
        f"{frames} frames from {len(args.photos)} photos, objects of {min(sizes)}–{max(sizes)} patches, "
        f"variant {args.variant}, k = 1..5\n"
    )
    print("| retrieval | same k as exact | retrieval s / frame (median) |")
    print("|---|---|---|")
    print(f"| exact EMD | — | {statistics.median(exact_seconds):.3f} |")
    for n in args.patches:
        print(
            f"| sampled, ≤{n} patches/side | {agree[n]}/{frames} ({100 * agree[n] / frames:.1f}%) "
            f"| {statistics.median(seconds[n]):.3f} |"
        )


if __name__ == "__main__":
    main()
