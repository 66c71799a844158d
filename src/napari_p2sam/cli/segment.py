"""Segment every frame of an image, stack, folder or video from painted reference frame(s).

INPUT: an image (PNG, JPEG, BMP, TIFF), a TIFF stack (T, Y, X[, C]) or
z-stack, a folder of images (natural order: 2 before 10) or a video (mp4,
avi, ...). Non-uint8 frames are mapped to uint8 by the 0.5-99.5 percentiles
over the whole stack (change with --limits or --percentiles). Files are
read as napari shows them: a 3- or 4-frame stack that tifffile stored as
one planar RGB(A) image is 3 or 4 frames (--axes CYX: one colour image).

--reference-mask: either one 2D mask painted on frame --reference-frame N
(default 0), or a labels TIFF with INPUT's frame count, in which every frame
with a non-zero pixel is painted. Each label value is one object and keeps
its value in the output.

OUT: a label TIFF (--format tif, written frame by frame; name it .tif) or a
folder of one PNG per frame (--format png). It is never overwritten without
--overwrite, which replaces only an output napari-p2sam wrote, never an input,
a mask, a cache or a folder of other files. It appears when complete; one
run at a time may write it. With --cache DIR, a rerun (e.g. after a kill, or
with other settings) encodes only the frames not cached yet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..engine.objects import MAX_OBJECTS, TooManyObjectsError, check_object_count
from ..engine.pixels import DEFAULT_PERCENTILES
from ..engine.settings import METHODS, PRESETS, VARIANTS, Settings
from ..engine.sources import open_source
from ..engine.stack_job import StackJob, prepare_stack, read_reference_masks
from ..io.label_files import png_dtype, write_label_pngs, write_label_tiff
from ..io.outputs import check_output, locked, write_output
from ..io.paths import user_path
from . import add_model_arguments, load_model_from

if TYPE_CHECKING:
    from ..engine.propagate import Progress, Propagation

FORMATS = ("tif", "png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=user_path, help="image, TIFF stack, folder of images or video to segment")
    add_model_arguments(parser)
    parser.add_argument(
        "--reference-mask", required=True, type=user_path, help="2D mask (with --reference-frame) or labels TIFF stack"
    )
    parser.add_argument("--reference-frame", type=int, help="frame a 2D mask was painted on (default 0)")
    parser.add_argument("--out", required=True, type=user_path, help="output label TIFF, or folder for --format png")
    parser.add_argument("--format", choices=FORMATS, default="tif", help="tif: one label TIFF; png: one PNG per frame")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it is an earlier output of ours")
    parser.add_argument("--frames", type=frame_slice, metavar="START:STOP", help="segment frames START..STOP-1 only")
    parser.add_argument("--cache", type=user_path, metavar="DIR", help="keep image embeddings in DIR for later runs")
    parser.add_argument(
        "--channel", type=channel_choice, metavar="C|R,G,B", help="channel(s) of multi-channel frames to use"
    )
    intensity = parser.add_mutually_exclusive_group()
    intensity.add_argument(
        "--limits", type=float, nargs=2, metavar=("LOW", "HIGH"), help="intensities mapped to 0 and 255 (non-uint8)"
    )
    intensity.add_argument(
        "--percentiles",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=DEFAULT_PERCENTILES,
        help="stack percentiles mapped to 0 and 255 (non-uint8; default 0.5 99.5)",
    )
    parser.add_argument(
        "--axes",
        help="INPUT's dimensions in the file's order from T (or Z), Y, X, C, e.g. CYX for a planar RGB TIFF "
        "(default: as napari shows it)",
    )
    parser.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out unreadable files of a folder, or the missing pages of a TIFF cut short",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--max-objects",
        type=int,
        default=MAX_OBJECTS,
        metavar="N",
        help=f"stop (or ask, in a terminal) when the mask holds more objects than N (default {MAX_OBJECTS})",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="the authors' settings for a kind of data")
    parser.add_argument("--method", choices=METHODS, help="p2sam (default) or persam")
    parser.add_argument("--variant", choices=VARIANTS, help="natural (photos) or medical (scans, video)")
    parser.add_argument("--parts", type=int, nargs=2, metavar=("MIN", "MAX"), help="part counts k to try")
    parser.add_argument(
        "--background-parts", type=int, nargs=2, metavar=("MIN", "MAX"), help="background part counts (medical)"
    )
    parser.add_argument("--retrieval", choices=("exact", "sampled"), help="EMD solver (default exact)")
    parser.add_argument(
        "--batch-size",
        type=batch_size,
        metavar="N",
        help="frames per encoder call (default: from free GPU memory on CUDA, 1 elsewhere)",
    )


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


def batch_size(text: str) -> int:
    """``N`` (a whole number ≥ 1) → int; argparse reports anything else."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of frames ≥ 1, got {text!r}")
    return int(text)


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


def frame_range(frames: slice | None, count: int) -> range | None:
    """The frames to produce; a START:STOP outside ``0..count`` is reported by the driver."""
    if frames is None:
        return None
    start = 0 if frames.start is None else frames.start
    stop = count if frames.stop is None else frames.stop
    return range(start, stop)


def write_labels(
    path: Path, fmt: str, propagation: Propagation, frame_shape: tuple[int, int], count: int, dtype: np.dtype
) -> int:
    """Write each frame's labels as it arrives: one label TIFF, or one PNG per frame (``count``: the stack's frames)."""
    if fmt == "tif":
        frames = len(propagation.frame_range)
        shape = (frames, *frame_shape) if frames > 1 else frame_shape
        return write_label_tiff(path, (result.labels for result in propagation), shape, dtype)
    return write_label_pngs(path, ((result.index, result.labels) for result in propagation), count, dtype)


def output_dtype(job: StackJob, fmt: str) -> np.dtype:
    """The label dtype to write; PNG takes non-negative labels up to 65535."""
    if fmt == "tif":
        return job.label_dtype
    values = [int(v) for labels in job.painted.values() for v in (labels.min(), labels.max())]
    return png_dtype(min(values), max(values))


def check_out(args: argparse.Namespace) -> None:
    """Refuse an OUT that may not be written or replaced (see :mod:`napari_p2sam.io.outputs`)."""
    keep = {"input": args.input, "reference mask": args.reference_mask}
    if args.cache:
        keep["cache folder"] = args.cache
    check_output(args.out, args.format, overwrite=args.overwrite, keep=keep)


def run(args: argparse.Namespace) -> int:
    out = args.out
    check_out(args)
    settings = settings_from_args(args)
    source = open_source(args.input, axes=args.axes, skip_unreadable=args.skip_unreadable)
    try:
        for path, reason in source.skipped:
            print(f"napari-p2sam segment: skipped unreadable file {path} ({reason})", file=sys.stderr)
        job = prepare_stack(
            source,
            read_reference_masks(args.reference_mask, source, args.reference_frame),
            frame_range=frame_range(args.frames, len(source)),
            limits=args.limits,
            percentiles=tuple(args.percentiles),
            channel=args.channel,
            max_objects=None,
        )
        objects = confirmed_objects(job.painted, args.max_objects)
        dtype = output_dtype(job, args.format)
        # torch loads here, after OUT, the options, INPUT and the references were checked
        from ..engine.cache import EmbeddingCache
        from ..engine.pipeline import PipelineOptions
        from ..engine.propagate import run_stack

        cache = EmbeddingCache(args.cache) if args.cache else None
        model = load_model_from(args)
        bar = ProgressBar(enabled=not args.quiet)
        pipeline = PipelineOptions(batch_size=args.batch_size)
        propagation = run_stack(model, job, settings, cache=cache, progress=bar.show, pipeline=pipeline)
        folder = out.parent.resolve()
        created = "" if folder.is_dir() else f"; created the folder {folder}"
        try:
            with locked(out, lambda: check_out(args)):
                written = write_output(
                    out,
                    lambda path: write_labels(path, args.format, propagation, source.frame_shape, len(source), dtype),
                )
        finally:
            bar.close()
    finally:
        source.close()
    reused = f", {cache.stats.hits} from the cache" if cache else ""
    print(
        f"wrote {out} ({written} frame(s), label(s) {', '.join(map(str, objects))}); "
        f"encoded {propagation.encoded} frame(s){reused}{created}"
    )
    return 0


def confirmed_objects(references: dict[int, np.ndarray], limit: int) -> list[int]:
    """The object labels; above ``limit``, ask in a terminal, else stop (the message names ``--max-objects``)."""
    try:
        return check_object_count(references, limit)
    except TooManyObjectsError as err:
        if not sys.stdin.isatty():
            raise TooManyObjectsError(f"{err} (--max-objects {err.count})", err.count) from None
        answer = input(f"{err}. Segment all {err.count} objects? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise TooManyObjectsError(f"stopped: {err.count} objects; nothing was written", err.count) from None
        return check_object_count(references, None)


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
