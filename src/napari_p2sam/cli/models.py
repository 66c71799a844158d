"""The named SAM models: list them, download them, check them, find their files.

  list              every model: name, size, whether it is downloaded (and the
                    right file: its sha256 is checked, once per change), its file
  download NAME...  download into the cache; the sha256 is checked before use,
                    an interrupted download resumes when run again
  verify [NAME...]  check the sha256 of downloaded models (default: all of them)
  path NAME         where the model's file is, or must be put

The cache is $NAPARI_P2SAM_CACHE/models when that variable is set, else the
platform's user cache folder. Offline: download the file elsewhere and copy it
to the path that `path NAME` prints; its checksum is still checked. Any
checkpoint file can also be given by its path wherever a model name is taken.
"""

from __future__ import annotations

import argparse
import sys

from ..io.paths import in_words
from ..models.checksums import remembered_sha256, sha256_of
from ..models.download import (
    CACHE_ENV,
    ChecksumMismatchError,
    ModelFileError,
    ModelNotDownloadedError,
    download,
    model_path,
    models_dir,
    partial_path,
    verified_path,
)
from ..models.registry import MODELS, model_info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every model: name, size, downloaded or not, file")
    get = actions.add_parser("download", help="download models into the cache (sha256 checked)")
    get.add_argument("names", nargs="+", metavar="NAME", help=f"one of: {', '.join(MODELS)}")
    check = actions.add_parser("verify", help="check the sha256 of downloaded models")
    check.add_argument("names", nargs="*", metavar="NAME", help="default: every downloaded model")
    where = actions.add_parser("path", help="print where a model's file is, or must be put")
    where.add_argument("name", metavar="NAME")


def run(args: argparse.Namespace) -> int:
    return {"list": list_models, "download": download_models, "verify": verify_models, "path": print_path}[args.action](
        args
    )


def list_models(args: argparse.Namespace) -> int:
    print(f"models folder: {models_dir()} (set {CACHE_ENV} to use another)")
    rows = [("NAME", "MODEL", "SIZE", "DOWNLOADED", "FILE")]
    for name, info in MODELS.items():
        rows.append((name, info.title, f"{info.size_mb} MB", download_state(name), str(model_path(name))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    if any(row[3].startswith(DAMAGED) for row in rows):
        print(
            f"\n{DAMAGED}: the file is not the registry's (its sha256 differs) and is never used; "
            "`napari-p2sam models download NAME` sets it aside and downloads the right one"
        )
    return 0


DAMAGED = "damaged"


def download_state(name: str) -> str:
    """``yes`` (the right file), ``damaged (wrong sha256)``, ``unreadable (why)``, ``no``, or ``partly (share)``.

    A file is hashed only when it changed since it was last hashed.
    """
    path = model_path(name)
    if path.is_file():
        try:
            digest = remembered_sha256(path) or checked_now(path)
        except OSError as err:
            return f"unreadable ({in_words(err)})"
        return "yes" if digest == model_info(name).sha256 else f"{DAMAGED} (wrong sha256)"
    part = partial_path(name)
    if part.is_file():
        return f"partly ({part.stat().st_size / 1e6 / model_info(name).size_mb:.0%})"
    return "no"


def checked_now(path) -> str:
    """Hash ``path`` (remembered for the next ``list``), saying so: a large file takes seconds."""
    print(f"checking the sha256 of {path} ({path.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
    return sha256_of(path)


def download_models(args: argparse.Namespace) -> int:
    infos = [model_info(name) for name in args.names]  # every name checked before any transfer
    for info in infos:
        print(f"{info.name}: {info.title}, about {info.size_mb} MB", file=sys.stderr)
        print(download(info.name, progressbar=True))
    return 0


def verify_models(args: argparse.Namespace) -> int:
    names = args.names or [name for name in MODELS if model_path(name).is_file()]
    if not names:
        print(f"no model downloaded yet in {models_dir()}")
        return 0
    failed = 0
    for name in names:
        model_info(name)
        try:
            print(f"{name}: ok (sha256 matches) {verified_path(name)}")
        except ModelNotDownloadedError:
            print(f"{name}: not downloaded ({model_path(name)} does not exist)")
            failed += 1
        except ChecksumMismatchError as err:
            print(f"{name}: MISMATCH: {err}")
            failed += 1
        except ModelFileError as err:
            print(f"{name}: cannot be checked: {err}")
            failed += 1
    return 1 if failed else 0


def print_path(args: argparse.Namespace) -> int:
    info = model_info(args.name)
    print(model_path(info.name))
    if not model_path(info.name).is_file():
        print(
            f"(not there yet: run `napari-p2sam models download {info.name}`, or download {info.url} "
            "elsewhere and copy the file to that path)",
            file=sys.stderr,
        )
    return 0
