"""``napari-p2sam`` command line: one sub-command a module, each a thin shell over the engine.

Only the chosen sub-command's module is imported, so ``models`` (no torch)
answers in a fraction of a second and ``--help`` never loads the engine.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models.loading import SamModel

from ..models.allocator import keep_freed_memory
from ..models.precision import PRECISIONS

COMMANDS = {
    "segment": "segment an image, stack, folder or video from painted reference frame(s)",
    "batch": "segment every item of a manifest on Dask (a laptop, a multi-GPU machine or a cluster), resumable",
    "eval": "score P²SAM and PerSAM on PerSeg, CVC-ClinicDB or any folder with ground truth",
    "models": "list, download, verify and locate the named SAM models",
    "open-results": "open an item of a batch's output folder in napari, its flagged frames listed",
}
"""Sub-command → help line; module ``napari_p2sam.cli.<name>`` (``-`` written ``_``) has
``add_arguments(parser)`` and ``run(args) -> int``."""


class UserError(Exception):
    """An error the user can fix; printed as one line, without a traceback."""


def add_model_arguments(parser: argparse.ArgumentParser, *, several_precisions: bool = False) -> None:
    """The options that choose the model and how it runs: ``--checkpoint``, ``--device``,
    ``--minmax-normalization``, ``--precision`` (one, or ``several_precisions`` compared) and ``--compile``."""
    parser.add_argument(
        "--checkpoint", required=True, help="SAM checkpoint file (.pth), or a model name (`napari-p2sam models list`)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), help="default: cuda, then mps, then cpu")
    parser.add_argument("--minmax-normalization", action="store_true", help="MedSAM-style input normalisation")
    formats = "bf16 on a GPU of the Ampere generation or newer or a CPU with AMX or AVX512-BF16; fp16 on a GPU"
    if several_precisions:
        parser.add_argument(
            "--precision",
            nargs="+",
            choices=PRECISIONS,
            default=["fp32"],
            help=f"the image encoder's number formats, compared side by side (default fp32; {formats})",
        )
    else:
        parser.add_argument(
            "--precision", choices=PRECISIONS, default="fp32", help=f"the image encoder's number format ({formats})"
        )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile the image encoder with torch.compile (first frame slower; measured faster on GPUs only, "
        "see docs/benchmarks.md)",
    )


def load_model_from(args: argparse.Namespace, precision: str | None = None) -> SamModel:
    """The model :func:`add_model_arguments`'s options chose (torch loads here), in ``precision``
    (default ``--precision``)."""
    from ..models.loading import load_model

    return load_model(
        args.checkpoint,
        device=args.device,
        normalization="minmax" if args.minmax_normalization else None,
        precision=precision or args.precision,
        compile=args.compile,
    )


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The parser, with the arguments of ``command`` (None: the sub-command list only)."""
    parser = argparse.ArgumentParser(
        prog="napari-p2sam",
        description="One-shot segmentation with P²SAM: paint one reference, segment every other frame.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_line in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_line)
        if name == command:
            module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
            cmd.description = module.__doc__
            cmd.formatter_class = argparse.RawDescriptionHelpFormatter
            module.add_arguments(cmd)
            cmd.set_defaults(run=module.run)
    return parser


def flags_for(err: BaseException) -> str:
    """`` (--out, --overwrite)``: the options that fix ``err``, as the engine named them (empty if none)."""
    from ..io.errors import settings_of

    flags = [f"--{name.replace('_', '-')}" for name in settings_of(err)]
    return f" ({', '.join(flags)})" if flags else ""


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 failed, 2 bad usage, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    keep_freed_memory()  # the model's CPU memory is reused, not page-faulted again (opt-out: models/allocator.py)
    try:
        return args.run(args)
    except (UserError, ValueError, OSError) as err:  # the engine's input, model and file errors
        print(f"napari-p2sam {args.command}: error: {err}{flags_for(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"napari-p2sam {args.command}: interrupted", file=sys.stderr)
        return 130
