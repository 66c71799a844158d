"""Segment every frame of an image or TIFF stack from one painted reference frame.

INPUT is one image (PNG, JPEG, TIFF; gray, RGB or RGBA) or a TIFF stack
(T, Y, X) or (T, Y, X, C). A 3D array whose last axis has 3 or 4 entries is
read as one RGB(A) image. MASK is a 2D image (non-zero = object) painted on
frame N of INPUT. OUT is a label TIFF with INPUT's frame count and size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ..engine.pixels import intensity_limits
from ..engine.predictor import P2SAM
from ..engine.settings import METHODS, PRESETS, VARIANTS, Settings
from ..io.images import read_image, write_labels_tiff
from ..models.loading import load_model

NAME = "segment"
HELP = "segment an image or stack from one reference mask"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="image or TIFF stack to segment")
    parser.add_argument("--checkpoint", required=True, help="SAM checkpoint file (.pth)")
    parser.add_argument("--reference-mask", required=True, type=Path, help="2D mask, non-zero = object")
    parser.add_argument("--reference-frame", type=int, default=0, help="frame the mask was painted on (default 0)")
    parser.add_argument("--out", required=True, type=Path, help="output label TIFF")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="the authors' settings for a kind of data")
    parser.add_argument("--method", choices=METHODS, help="p2sam (default) or persam")
    parser.add_argument("--variant", choices=VARIANTS, help="natural (photos) or medical (scans, video)")
    parser.add_argument("--parts", type=int, nargs=2, metavar=("MIN", "MAX"), help="part counts k to try")
    parser.add_argument(
        "--background-parts", type=int, nargs=2, metavar=("MIN", "MAX"), help="background part counts (medical)"
    )
    parser.add_argument("--retrieval", choices=("exact", "sampled"), help="EMD solver (default exact)")
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), help="default: cuda, then mps, then cpu")
    parser.add_argument("--minmax-normalization", action="store_true", help="MedSAM-style input normalisation")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The preset (or defaults), with any option given on the command line applied."""
    base = PRESETS[args.preset] if args.preset else Settings()
    changes = {
        "method": args.method,
        "variant": args.variant,
        "parts": tuple(args.parts) if args.parts else None,
        "background_parts": tuple(args.background_parts) if args.background_parts else None,
        "retrieval": args.retrieval,
    }
    fields = {**base.__dict__, **{k: v for k, v in changes.items() if v is not None}}
    return Settings(**fields)


def as_frames(image: np.ndarray) -> np.ndarray:
    """View an image as frames: (T, Y, X) or (T, Y, X, C)."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4)):
        return image[None]
    if image.ndim in (3, 4):
        return image
    raise ValueError(f"cannot read {image.shape} as an image or a stack of frames (T, Y, X[, C])")


def run(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} already exists; choose another --out or pass --overwrite")
    settings = settings_from_args(args)
    frames = as_frames(read_image(args.input))
    mask = read_image(args.reference_mask)
    count = frames.shape[0]
    if not 0 <= args.reference_frame < count:
        raise ValueError(f"--reference-frame {args.reference_frame} is out of range: {args.input} has {count} frame(s)")
    limits = None if frames.dtype == np.uint8 else intensity_limits(frames[:: max(1, count // 16)])
    model = load_model(args.checkpoint, device=args.device, normalization="minmax" if args.minmax_normalization else "sam")
    p2sam = P2SAM(model, settings)
    p2sam.set_reference(frames[args.reference_frame], mask, limits=limits)

    labels = np.zeros(frames.shape[:3], dtype=np.uint8)
    labels[args.reference_frame] = (np.asarray(mask)[..., 0] if mask.ndim == 3 else mask) != 0
    start = time.perf_counter()
    targets = [i for i in range(count) if i != args.reference_frame]
    for done, index in enumerate(targets, 1):
        labels[index] = p2sam.segment(frames[index], limits=limits).mask
        elapsed = time.perf_counter() - start
        eta = elapsed / done * (len(targets) - done)
        print(f"\rframe {done}/{len(targets)}  {elapsed:.0f}s elapsed, {eta:.0f}s left", end="", file=sys.stderr)
    if targets:
        print(file=sys.stderr)
    write_labels_tiff(args.out, labels if count > 1 else labels[0], overwrite=args.overwrite)
    print(f"wrote {args.out} ({count} frame(s), label 1 = object)")
    return 0
