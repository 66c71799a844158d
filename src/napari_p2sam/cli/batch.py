"""Segment a whole dataset on Dask: every item of a manifest (or of two patterns), resumable, with a QC report.

MANIFEST: a CSV file with a header and one row per item; columns input,
reference_mask (required) and reference_frame, preset, output (optional),
as `segment` takes them. Or the pattern form:
  --inputs 'videos/*.mp4' --references 'masks/{stem}.png' [--reference-frame 0]
Every item is checked before any work, and every problem reported at once.

Runs on a Dask LocalCluster sized to this machine (one worker per GPU, or
worker processes fitting the cores and memory; --workers N to choose), or
joins a running scheduler (--scheduler ADDRESS or --scheduler-file FILE,
e.g. one started by dask-jobqueue). Each task segments --chunk-frames
frames of one item; each item's output appears when its last chunk is done.

OUT gets frames.csv, report.csv and report.html (flagged frames first),
and the default outputs OUT/<input stem>_labels.tif (or .zarr). Rerunning
the same command computes only the chunks not finished yet.

Exit status: 0 every item done; 1 some items failed (report.csv says why);
2 nothing run (a bad manifest or argument, or a scheduler nobody answers).
"""

from __future__ import annotations

import argparse
import sys

from ..engine.settings import PRESETS
from ..io.paths import user_path
from . import add_model_arguments

FORMATS = ("tif", "zarr")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", nargs="?", type=user_path, help="CSV manifest (or use --inputs/--references)")
    parser.add_argument("--inputs", metavar="GLOB", help="pattern of the inputs, e.g. 'videos/*.mp4'")
    parser.add_argument("--references", metavar="PATTERN", help="each input's mask, e.g. 'masks/{stem}.png'")
    parser.add_argument("--reference-frame", type=int, metavar="N", help="frame the masks of --references are on")
    add_model_arguments(parser)
    parser.add_argument("--out", required=True, type=user_path, help="folder for the report and the default outputs")
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), help="settings of items without a preset of their own (default: P²SAM's)"
    )
    parser.add_argument("--format", choices=FORMATS, default="tif", help="tif: label TIFFs; zarr: zarr arrays")
    parser.add_argument("--workers", type=positive, metavar="N", help="worker processes of the local cluster")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="join the Dask scheduler at ADDRESS (tcp://host:8786)")
    where.add_argument("--scheduler-file", type=user_path, metavar="FILE", help="join the scheduler named in FILE")
    parser.add_argument("--chunk-frames", type=positive, default=64, metavar="N", help="frames per task (default 64)")
    parser.add_argument("--cache", type=user_path, metavar="DIR", help="keep image embeddings in DIR for later runs")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs written by napari-p2sam before")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no dashboard address")


def positive(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from ..batch.cluster import ClusterError
    from ..batch.manifest import ManifestError, check_items, items_from_patterns, plan_manifest

    patterns = args.inputs is not None or args.references is not None
    if (args.manifest is None) == (not patterns) or (patterns and not (args.inputs and args.references)):
        return usage_error("give either MANIFEST.csv or both --inputs and --references")
    if args.reference_frame is not None and not patterns:
        return usage_error("--reference-frame goes with --references; in a manifest, use its reference_frame column")
    try:
        checks = dict(overwrite=args.overwrite, fmt=args.format, preset=args.preset)
        if patterns:
            items = items_from_patterns(args.inputs, args.references, args.reference_frame, args.out, args.format)
            plans = check_items(items, args.out, **checks)
        else:  # the manifest's cells and every row's files and outputs, all reported at once
            plans = plan_manifest(args.manifest, args.out, **checks)
    except ManifestError as err:
        print(f"napari-p2sam batch: {err}", file=sys.stderr)
        return 2
    from ..batch.run import run_batch

    try:
        summary = run_batch(
            plans,
            args.checkpoint,
            args.out,
            scheduler=args.scheduler,
            scheduler_file=args.scheduler_file,
            device=args.device,
            workers=args.workers,
            normalization="minmax" if args.minmax_normalization else None,
            chunk_frames=args.chunk_frames,
            fmt=args.format,
            cache=args.cache,
            progress=not args.quiet,
        )
    except ClusterError as err:
        print(f"napari-p2sam batch: error: {err}", file=sys.stderr)
        return 2
    for name, error in summary.failed.items():
        print(f"napari-p2sam batch: {name} failed: {error}", file=sys.stderr)
    print(f"{summary.line()}; report: {args.out / 'report.html'}")
    return summary.exit_status


def usage_error(message: str) -> int:
    print(f"napari-p2sam batch: error: {message}", file=sys.stderr)
    return 2
