"""Evaluate P²SAM (and PerSAM) on a dataset with ground truth, exactly as published.

Layouts:
  perseg DATA                 DATA/Images/<object>/NN.jpg, DATA/Annotations/<object>/NN.png;
                              reference 00; per-object IoU pooled over its images, then mIoU
  cvc DATA                    raw CVC-ClinicDB: DATA/Original/<n>.tif, DATA/'Ground Truth'/<n>.tif;
                              29 videos, reference = 3rd frame; Video Dice and Image Dice
  folder IMAGES MASKS         any sequence: masks named like the images; Dice and IoU per frame

Several --method values share one encoder pass per image. Several --precision
values (e.g. fp32 bf16) encode each image once per precision and score each
method in each, named <method>-<precision> (p2sam-bf16). Every prediction is
saved as OUT/<method>/<sequence>/<frame>.png; OUT/frames.csv holds every
frame's scores and pixel counts, OUT/summary.csv the table and totals,
OUT/scores.png a plot of the per-frame scores.

Ground truth: gray value > --mask-threshold is object (default 0: any non-zero
pixel, the published rule; colour masks become gray like OpenCV's BGR2GRAY).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from ..engine.settings import METHODS, PRESETS, Settings
from ..evaluation import datasets
from ..io.paths import user_path
from . import UserError, add_model_arguments, load_model_from

LAYOUT_PRESETS = {"perseg": "photos", "cvc": "endoscopy-video"}
"""The authors' settings for ``p2sam`` on each published dataset (docs/algorithm.md §7)."""
FOLDER_DEFAULT_PRESET = "photos"
"""Like ``napari-p2sam segment``'s default: the natural-image variant, parts 1–5."""


def add_common(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, several_precisions=True)
    parser.add_argument("--out", required=True, type=user_path, help="folder for predictions, CSV files and the plot")
    parser.add_argument("--overwrite", action="store_true", help="write into OUT even if it is not empty")
    parser.add_argument(
        "--method", nargs="+", choices=METHODS, default=["p2sam"], help="methods compared in one run (default p2sam)"
    )
    parser.add_argument(
        "--mask-threshold",
        type=float,
        default=0,
        metavar="T",
        help="ground truth = gray value > T (default 0, the published rule; e.g. 127 for JPEG or soft 8-bit masks)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    layouts = parser.add_subparsers(dest="layout", required=True, metavar="LAYOUT")
    perseg = layouts.add_parser("perseg", help="PerSeg: Images/<object>/NN.jpg + Annotations/<object>/NN.png")
    perseg.add_argument("data", type=user_path, help="the PerSeg folder")
    cvc = layouts.add_parser("cvc", help="raw CVC-ClinicDB: Original/*.tif + 'Ground Truth'/*.tif (612 frames)")
    cvc.add_argument("data", type=user_path, help="the CVC-ClinicDB folder")
    cvc.add_argument(
        "--videos", type=int, nargs="+", metavar="N", help="evaluate only these videos (1..29), e.g. for a quick check"
    )
    folder = layouts.add_parser("folder", help="any sequence: IMAGES and MASKS folders with matching file names")
    folder.add_argument("images", type=user_path, help="folder of images (natural order: 2 before 10)")
    folder.add_argument("masks", type=user_path, help="folder of ground-truth masks named like the images")
    folder.add_argument(
        "--reference-frame", type=int, default=0, metavar="N", help="0-based index of the reference image (default 0)"
    )
    folder.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=FOLDER_DEFAULT_PRESET,
        help=f"settings of p2sam (default {FOLDER_DEFAULT_PRESET})",
    )
    for layout in (perseg, cvc, folder):
        add_common(layout)


def method_settings(args: argparse.Namespace) -> dict[str, Settings]:
    """Settings of each chosen method: ``p2sam`` with the layout's preset, ``persam`` with PerSAM's."""
    p2sam_preset = LAYOUT_PRESETS.get(args.layout) or args.preset
    names = {"p2sam": p2sam_preset, "persam": "persam"}
    return {method: PRESETS[names[method]] for method in dict.fromkeys(args.method)}


def describe(settings: Settings) -> str:
    if settings.method == "persam":
        return "PerSAM: natural variant, one part, no retrieval"
    background = (
        f", background parts {settings.background_parts[0]}–{settings.background_parts[1]}"
        if settings.uses_background_parts
        else ""
    )
    return f"{settings.variant} variant, parts {settings.parts[0]}–{settings.parts[1]}{background}"


def find_sequences(args: argparse.Namespace) -> tuple[list[datasets.Sequence], str]:
    """The dataset's sequences and a one-line description of what is scored."""
    if args.layout == "perseg":
        sequences = datasets.perseg(args.data)
        scored = sum(len(s.targets) for s in sequences)
        reference = datasets.PERSEG_REFERENCE
        return sequences, f"PerSeg: {len(sequences)} objects, {scored} scored images (reference {reference} not scored)"
    if args.layout == "cvc":
        sequences = datasets.cvc(args.data, args.videos)
        scored = sum(len(s.targets) for s in sequences)
        return sequences, (
            f"CVC-ClinicDB: {len(sequences)} videos, {scored} scored frames "
            f"(reference = 3rd frame of each video; its first {datasets.CVC_UNSCORED} frames not scored)"
        )
    sequences = datasets.folder(args.images, args.masks, args.reference_frame)
    reference = sequences[0].reference
    return sequences, f"{args.images}: reference {reference.image.name}, {len(sequences[0].targets)} scored images"


def check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; choose a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty; choose another --out or pass --overwrite")


def make_out_folder(out: Path) -> None:
    """Create OUT and write a file there (removed at once), so that a folder that cannot be written
    is said before the model loads."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise UserError(
            f"cannot write into --out {out} ({(err.strerror or str(err)).lower()}); choose a folder you can write to"
        ) from None


def warn_not_binary(not_binary: list[Path], sequences: list[datasets.Sequence]) -> None:
    total = sum(1 + len(s.targets) for s in sequences)
    print(
        f"napari-p2sam eval: warning: {len(not_binary)} of {total} masks are not binary (their non-zero pixels "
        f"have several values), e.g. {not_binary[0]}; every pixel with gray value > 0 counts as object, as in the "
        "published evaluation; for JPEG or soft-edged 8-bit masks pass --mask-threshold 127",
        file=sys.stderr,
    )


def progress_printer():
    start = time.perf_counter()

    def show(done: int, total: int, sequence: str) -> None:
        elapsed = time.perf_counter() - start
        eta = elapsed / done * (total - done)
        end = "\n" if done == total else ""
        print(
            f"\r{done}/{total} frames ({sequence})  {elapsed:.0f}s elapsed, {eta:.0f}s left  ", end=end, file=sys.stderr
        )

    return show


def run(args: argparse.Namespace) -> int:
    check_out(args.out, args.overwrite)
    methods = method_settings(args)
    sequences, header = find_sequences(args)
    not_binary = datasets.check(sequences, args.mask_threshold)
    if not_binary and args.mask_threshold == 0:
        warn_not_binary(not_binary, sequences)
    print(header)
    for name, settings in methods.items():
        print(f"  {name}: {describe(settings)}")

    make_out_folder(args.out)

    # torch loads here, after the checks of the arguments, OUT and the dataset
    from ..evaluation.protocols import SUMMARIES
    from ..evaluation.report import plot, table, timing_line, total_lines, write_frames_csv, write_summary_csv
    from ..evaluation.runner import evaluate

    model = load_model_from(args, precision=args.precision[0])
    evaluation = evaluate(
        model,
        sequences,
        methods,
        precisions=tuple(args.precision),
        threshold=args.mask_threshold,
        out=args.out,
        progress=progress_printer(),
        persam_file_values=args.layout == "perseg",  # as persam.py reads PerSeg's masks
    )
    summary = SUMMARIES[args.layout](evaluation)
    write_frames_csv(args.out / "frames.csv", evaluation)
    write_summary_csv(args.out / "summary.csv", summary)
    plot(args.out / "scores.png", evaluation, summary)

    print(f"\n{summary.title}\n{table(summary)}\n")
    print(f"predictions: {args.out}/<method>/<{summary.row_header}>/<frame>.png")
    print(f"scores: {args.out / 'frames.csv'}, {args.out / 'summary.csv'}; plot: {args.out / 'scores.png'}")
    print(timing_line(evaluation))
    print("\n".join(total_lines(summary)))
    return 0
