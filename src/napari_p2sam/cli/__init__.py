"""``napari-p2sam`` command line: one sub-command a module, each a thin shell over the engine."""

from __future__ import annotations

import argparse
import sys

from . import eval as eval_command, models, segment

COMMANDS = [segment, eval_command, models]
"""Modules with ``NAME``, ``add_arguments(parser)`` and ``run(args) -> int``."""


class UserError(Exception):
    """An error the user can fix; printed as one line, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-p2sam",
        description="One-shot segmentation with P²SAM: paint one reference, segment every other frame.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        module.add_arguments(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 failed, 2 bad usage, 130 interrupted)."""
    from ..engine.pixels import ImageInputError
    from ..engine.reference import ReferenceError
    from ..models.loading import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (UserError, ImageInputError, ReferenceError, CheckpointError, ValueError, OSError) as err:
        print(f"napari-p2sam {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"napari-p2sam {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
