"""Where an output may be written, and how it replaces an old one without losing anything.

Rules:

- An output is never an input, a reference mask or a cache folder, nor a
  folder holding one or inside one, nor the current folder or a parent of it.
- An existing output is replaced only when asked, and only if it is a label
  output we wrote (:func:`~napari_p2sam.io.label_files.not_ours`).
- One run at a time writes an output: a lock file ``.NAME.napari-p2sam.lock``
  beside it (left in place, as lock files are); a second run is refused.
- A run writes under its own temporary name beside the output
  (``.NAME.<pid>-<random>.napari-p2sam-partial``) and renames it into place
  when complete. A failed run removes its temporary; those left by a killed
  run are removed by the next run on that output. No other name is touched.
"""

from __future__ import annotations

import errno
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from .images import TIFF_SUFFIXES
from .label_files import delete_ours, not_ours
from .paths import in_words

PARTIAL_SUFFIX = ".napari-p2sam-partial"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
T = TypeVar("T")


class OutputError(OSError):
    """An output path that must not be written, with what to do instead."""


def check_output(out: Path, fmt: str, *, overwrite: bool, keep: dict[str, Path], option: str = "--out") -> None:
    """Raise :class:`OutputError` unless ``out`` may be written as ``fmt`` ("tif", "png" or "zarr").

    ``keep``: what the run reads, e.g. ``{"input": path, "reference mask": path}``;
    ``out`` may not be any of these, hold one, or lie inside one. ``option``:
    what messages call the output (the batch's manifest: ``output``).
    """
    target = out.resolve()
    for what, path in keep.items():
        relation = overlap(target, path.resolve())
        if relation:
            raise OutputError(f"{option} {out} {relation} the {what} {path}; choose another {option}")
    if Path.cwd().resolve().is_relative_to(target):
        raise OutputError(
            f"{option} {out} ({target}) is the current folder or one of its parents; choose another {option}"
        )
    check_folder(out, option)
    suffix = out.suffix.lower()
    if fmt == "tif" and suffix not in TIFF_SUFFIXES:
        raise OutputError(
            f"{option} {out} does not end in .tif or .tiff: name it {out.stem}.tif, or pass --format png for PNGs"
        )
    if fmt == "png" and suffix in (*TIFF_SUFFIXES, ".png"):
        raise OutputError(f"--format png writes a folder of PNGs: give {option} a folder name such as {out.stem}")
    if fmt == "zarr" and suffix != ".zarr":
        raise OutputError(f"--format zarr writes a zarr folder: name {option} {out.stem}.zarr")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise OutputError(f"{out} already exists; choose another {option} or pass --overwrite")
        check_replaceable(out)


def check_folder(out: Path, option: str = "--out") -> None:
    """Raise :class:`OutputError` if a file stands where the folder of ``out``, or one above it, would be.

    A missing folder is created when the run writes (:func:`locked`), as ``mkdir -p`` would.
    """
    folder = out.parent.resolve()
    existing = nearest_folder(folder)
    if not existing.is_dir():
        blocked = "" if existing == folder else f"cannot create the folder {folder}: "
        raise OutputError(f"{option} {out}: {blocked}{existing} is a file, not a folder; choose another {option}")


def check_writable(out: Path, option: str = "--out") -> None:
    """Raise :class:`OutputError` if the folder of ``out`` (or the nearest one above it that exists) cannot be written in.

    For checks made long before the write (a batch checks every item first); call :func:`check_folder` first.
    """
    existing = nearest_folder(out.parent.resolve())
    if not os.access(existing, os.W_OK | os.X_OK):
        cause = "read-only file system" if os.statvfs(existing).f_flag & os.ST_RDONLY else "permission denied"
        raise OutputError(f"{option} {out}: cannot write in {existing} ({cause}); choose another {option}")


def nearest_folder(folder: Path) -> Path:
    """``folder`` if it exists, else its nearest parent that does (which may be a file)."""
    return next(path for path in (folder, *folder.parents) if path.exists())


def overlap(target: Path, kept: Path) -> str | None:
    """How the resolved path ``target`` overlaps ``kept``: "is", "holds", "is inside", or None."""
    if target == kept:
        return "is"
    if kept.is_relative_to(target):
        return "holds"
    if target.is_relative_to(kept):
        return "is inside"
    return None


def check_replaceable(out: Path) -> None:
    """Raise :class:`OutputError` if ``out`` exists and is not a label output we wrote."""
    if not (out.exists() or out.is_symlink()):
        return
    reason = not_ours(out)
    if reason:
        raise OutputError(f"{out} {reason}, so it is not replaced; choose another --out, or delete it yourself")


@contextmanager
def locked(out: Path, check: Callable[[], None]) -> Iterator[None]:
    """Hold the lock of ``out`` (creating its folder if needed), or raise :class:`OutputError` if a run holds it.

    ``check()`` (raising if ``out`` may not be written) runs before, so that a
    refusal leaves nothing behind, and again once the lock is held, as another
    run may have written ``out`` meanwhile. While held, temporaries left beside
    ``out`` by killed runs are removed.
    """
    from filelock import FileLock, Timeout

    check()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        folder = out.parent.resolve()
        raise OutputError(f"cannot create the folder {folder} ({in_words(err)}) to write {out.name} in") from None
    lock = FileLock(out.with_name(f".{out.name}.napari-p2sam.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise OutputError(
            f"another napari-p2sam run is writing {out}; wait for it to finish or choose another --out"
        ) from None
    try:
        check()
        for leftover in partials(out):
            remove_partial(leftover)
        yield
    finally:
        lock.release()


def write_output(out: Path, write: Callable[[Path], T]) -> T:
    """``write(temporary)`` beside ``out``, then rename it to ``out``, replacing what is there; returns its result.

    Call it holding :func:`locked`, after checking that ``out`` may be replaced.
    If ``write`` fails, its temporary is removed and ``out`` is untouched; a
    full disk (or quota) is said in words, naming the resolved ``out``.
    """
    temporary = out.with_name(f".{out.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
    try:
        result = write(temporary)
    except BaseException as err:
        remove_partial(temporary)
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            raise OutputError(
                f"cannot write {out.resolve()} ({in_words(err)}): free some disk space, or write it to another disk; "
                f"{out.name + ' is unchanged' if out.exists() else 'nothing was written'}"
            ) from None
        raise
    install(temporary, out)
    return result


def install(temporary: Path, out: Path) -> None:
    """Rename ``temporary`` to ``out``: a file over a file at once; a folder, or a file by a folder, moved aside first."""
    if not out.exists() or (out.is_file() and temporary.is_file()):
        os.replace(temporary, out)
        return
    old = temporary.with_name(temporary.name.removesuffix(PARTIAL_SUFFIX) + ".napari-p2sam-old")
    out.rename(old)
    try:
        temporary.rename(out)
    except BaseException:
        old.rename(out)
        raise
    delete_ours(old)


def partials(out: Path) -> Iterable[Path]:
    """The temporaries of runs writing ``out`` (each run's name holds its pid and a random part)."""
    pattern = re.compile(re.escape(f".{out.name}.") + r"\d+-[0-9a-f]{8}" + re.escape(PARTIAL_SUFFIX))
    return [p for p in out.parent.iterdir() if pattern.fullmatch(p.name)]


def remove_partial(temporary: Path) -> None:
    """Delete one of our temporaries (a TIFF, or a folder of PNGs and its marker), if it exists."""
    if temporary.is_dir():
        for path in temporary.iterdir():
            path.unlink()
        temporary.rmdir()
    else:
        temporary.unlink(missing_ok=True)
