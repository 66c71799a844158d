"""Segment every frame of an image, stack, folder or video from painted reference frame(s).

INPUT: an image (PNG, JPEG, BMP, TIFF), a TIFF stack (T, Y, X[, C]) or
z-stack, a folder of images (natural order: 2 before 10) or a video (mp4,
avi, ...). Non-uint8 frames are mapped to uint8 by the 0.5-99.5 percentiles
over the whole stack (change with --limits or --percentiles).

--reference-mask: either one 2D mask painted on frame --reference-frame N
(default 0), or a labels TIFF with INPUT's frame count, in which every frame
with a non-zero pixel is painted. Each label value is one object and keeps
its value in the output.

OUT: a label TIFF (--format tif, written frame by frame) or a folder of one
PNG per frame (--format png). It is never overwritten without --overwrite.
With --cache DIR, a rerun (e.g. after a kill, or with other settings)
encodes only the frames not cached yet.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from ..engine.cache import EmbeddingCache
from ..engine.pixels import DEFAULT_PERCENTILES
from ..engine.propagate import Progress, Propagation, painted_frames, propagate
from ..engine.reference import ReferenceError
from ..engine.settings import METHODS, PRESETS, VARIANTS, Settings
from ..engine.sources import FrameSource, open_source, pixels_for
from ..io.images import label_dtype
from ..models.loading import load_model

FORMATS = ("tif", "png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="image, TIFF stack, folder of images or video to segment")
    parser.add_argument(
        "--checkpoint", required=True, help="SAM checkpoint file (.pth), or a model name (`napari-p2sam models list`)"
    )
    parser.add_argument(
        "--reference-mask", required=True, type=Path, help="2D mask (with --reference-frame) or labels TIFF stack"
    )
    parser.add_argument("--reference-frame", type=int, help="frame a 2D mask was painted on (default 0)")
    parser.add_argument("--out", required=True, type=Path, help="output label TIFF, or folder for --format png")
    parser.add_argument("--format", choices=FORMATS, default="tif", help="tif: one label TIFF; png: one PNG per frame")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--frames", type=frame_slice, metavar="START:STOP", help="segment frames START..STOP-1 only")
    parser.add_argument("--cache", type=Path, metavar="DIR", help="keep image embeddings in DIR for later runs")
    parser.add_argument(
        "--channel", type=channel_choice, metavar="C|R,G,B", help="channel(s) of multi-channel frames to use"
    )
    intensity = parser.add_mutually_exclusive_group()
    intensity.add_argument(
        "--limits", type=float, nargs=2, metavar=("LOW", "HIGH"), help="intensities mapped to 0 and 255 (non-uint8)"
    )
    intensity.add_argument(
        "--percentiles", type=float, nargs=2, metavar=("LOW", "HIGH"), default=DEFAULT_PERCENTILES,
        help="stack percentiles mapped to 0 and 255 (non-uint8; default 0.5 99.5)",
    )
    parser.add_argument("--skip-unreadable", action="store_true", help="leave out unreadable files of a folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
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


def frame_slice(text: str) -> slice:
    """``START:STOP`` (either may be left out) → slice; argparse reports a bad one."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:STOP (e.g. 10:50 or 10:), got {text!r}") from None
    return slice(start, stop)


def channel_choice(text: str) -> int | tuple[int, ...]:
    """``C`` or ``R,G,B`` → channel index or indices."""
    try:
        picked = tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a channel number C or three R,G,B, got {text!r}") from None
    return picked[0] if len(picked) == 1 else picked


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


def read_references(path: Path, source: FrameSource, reference_frame: int | None) -> dict[int, np.ndarray]:
    """``{frame: (H, W) labels}`` from a 2D mask (painted on ``reference_frame``) or a labels stack.

    A labels stack is read one frame at a time; only its painted frames are kept.
    A colour mask uses its first channel.
    """
    masks = open_source(path)
    try:
        if len(masks) == 1:
            mask = masks.read(0)
            return {0 if reference_frame is None else reference_frame: mask[..., 0] if mask.ndim == 3 else mask}
        if reference_frame is not None:
            raise ReferenceError(
                f"--reference-frame is for a 2D mask, but {path} is a labels stack of {len(masks)} frames "
                "(its painted frames are the ones with non-zero pixels); leave --reference-frame out"
            )
        if len(masks) != len(source):
            raise ReferenceError(
                f"the labels stack {path} has {len(masks)} frames but {source.name} has {len(source)}; give a labels "
                "stack with one frame per input frame, or one 2D mask with --reference-frame N"
            )
        painted = {}
        for index in range(len(masks)):
            labels = masks.read(index)
            labels = labels[..., 0] if labels.ndim == 3 else labels
            if labels.any():
                painted[index] = labels
        if not painted:
            raise ReferenceError(
                f"the labels stack {path} has no painted pixel in any of its {len(masks)} frames: paint the object(s) "
                "with a non-zero label on at least one frame"
            )
        return painted
    finally:
        masks.close()


def frame_range(frames: slice | None, count: int) -> range | None:
    """The frames to produce; a START:STOP outside ``0..count`` is reported by the driver."""
    if frames is None:
        return None
    start = 0 if frames.start is None else frames.start
    stop = count if frames.stop is None else frames.stop
    return range(start, stop)


def partial_path(out: Path) -> Path:
    """Where OUT is written until it is complete (replaced at the next run if a run was killed)."""
    return out.with_name(out.name + ".partial")


def write_tiff(path: Path, propagation: Propagation, frame_shape: tuple[int, int], dtype: np.dtype) -> int:
    """Write each frame's labels as it arrives, as one label TIFF; returns the frame count written."""
    import tifffile

    count = len(propagation.frame_range)
    written = 0

    def pages():
        nonlocal written
        for result in propagation:
            written += 1
            yield result.labels.astype(dtype, copy=False)

    shape = (count, *frame_shape) if count > 1 else frame_shape
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(pages(), shape=shape, dtype=dtype, compression="zlib", photometric="minisblack")
    return written


def write_pngs(folder: Path, propagation: Propagation, count: int, dtype: np.dtype) -> int:
    """Write one PNG per frame (``00012.png`` = frame 12) as frames arrive; returns the count written."""
    from PIL import Image

    folder.mkdir(parents=True)
    digits = max(5, len(str(count - 1)))
    written = 0
    for result in propagation:
        Image.fromarray(result.labels.astype(dtype, copy=False)).save(folder / f"{result.index:0{digits}d}.png")
        written += 1
    return written


def output_dtype(propagation: Propagation, fmt: str) -> np.dtype:
    """The label dtype to write; PNG takes non-negative labels up to 65535."""
    values = [int(v) for labels in propagation.painted.values() for v in (labels.min(), labels.max())]
    if fmt == "tif":
        return propagation.label_dtype
    if min(values) < 0 or max(values) > 65535:
        raise ValueError(
            f"label values {min(values)}..{max(values)} do not fit a PNG (0..65535); use --format tif"
        )
    return label_dtype(max(values))


def run(args: argparse.Namespace) -> int:
    out = args.out
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} already exists; choose another --out or pass --overwrite")
    settings = settings_from_args(args)
    cache = EmbeddingCache(args.cache) if args.cache else None
    source = open_source(args.input, skip_unreadable=args.skip_unreadable)
    for path, reason in source.skipped:
        print(f"napari-p2sam segment: skipped unreadable file {path} ({reason})", file=sys.stderr)
    references = painted_frames(read_references(args.reference_mask, source, args.reference_frame), source)
    pixels = pixels_for(source, channel=args.channel, limits=args.limits, percentiles=tuple(args.percentiles))
    model = load_model(args.checkpoint, device=args.device, normalization="minmax" if args.minmax_normalization else None)

    bar = ProgressBar(enabled=not args.quiet)
    propagation = propagate(
        model, source, references, settings, frame_range=frame_range(args.frames, len(source)),
        cache=cache, limits=pixels.limits, channel=pixels.channel, progress=bar.show,
    )
    dtype = output_dtype(propagation, args.format)
    partial = partial_path(out)
    remove(partial)
    try:
        if args.format == "tif":
            written = write_tiff(partial, propagation, source.frame_shape, dtype)
        else:
            written = write_pngs(partial, propagation, len(source), dtype)
    except BaseException:
        remove(partial)
        raise
    finally:
        bar.close()
        source.close()
    if out.exists():
        remove(out)
    partial.rename(out)
    objects = sorted({int(v) for labels in references.values() for v in np.unique(labels) if v != 0})
    reused = f", {cache.stats.hits} from the cache" if cache else ""
    print(
        f"wrote {out} ({written} frame(s), label(s) {', '.join(map(str, objects))}); "
        f"encoded {propagation.encoded} frame(s){reused}"
    )
    return 0


class ProgressBar:
    """A tqdm bar on stderr, opened when the total is known."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = None

    def show(self, progress: Progress) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=progress.total, unit="frame", file=sys.stderr, dynamic_ncols=True)
        self._bar.update(progress.done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def remove(path: Path) -> None:
    """Delete a file or folder if it exists."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
