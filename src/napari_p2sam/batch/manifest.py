"""The items of a batch, from a CSV manifest or a pair of patterns, all checked before any work.

A manifest is a CSV file (UTF-8, commas) with a header row and one row per
item; the columns are those of :data:`COLUMNS` (``input`` and
``reference_mask`` required, in any order). Rows are numbered as a
spreadsheet shows them: the header is row 1, the first item row 2. Relative
paths are relative to the manifest's folder; ``~`` and ``$VARS`` are
expanded. Rows whose cells are all blank are left out.

:func:`plan_manifest` reports every problem at once: the manifest's own
(not CSV, columns, cells) and those of every item's files and output
(:func:`check_items`). Only a file that is not CSV, or a wrong header, stops
the checks early, as no row can be read then.
"""

from __future__ import annotations

import csv
import glob
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.objects import MAX_OBJECTS, check_object_count
from ..engine.painted import painted_frames, read_references
from ..engine.settings import PRESETS, Settings
from ..engine.sources import Pixels, natural_key, open_source, pixels_for
from ..io.outputs import check_folder, check_output, check_writable, overlap
from ..io.paths import in_words, user_path
from .records import own_work

COLUMNS = ("input", "reference_mask", "reference_frame", "preset", "output")
"""The manifest's columns: the image/stack/folder/video, its mask, the frame a 2D mask was painted on
(default 0), a preset name (default: the batch's), the output path (default ``OUT_DIR/<name>_labels.tif``)."""
REQUIRED_COLUMNS = ("input", "reference_mask")
FORMATS = {"tif": ".tif", "zarr": ".zarr"}
"""Output format → the suffix of default output names."""


class ManifestError(ValueError):
    """Every problem of a manifest (or of the items of a pattern), each naming its row; ``problems``: one line each."""

    def __init__(self, what: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = f"{len(self.problems)} problem{'s' if len(self.problems) > 1 else ''}"
        super().__init__(f"{what}: {count}, nothing was run:\n" + "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True)
class Item:
    """One stack to segment.

    ``row``: its row in the manifest as a spreadsheet numbers it (header = row
    1), None for the pattern form. ``reference_frame``: the frame a 2D mask was
    painted on (None: 0, or every painted frame of a labels stack).
    ``preset``: None for the batch's preset. ``name``: unique in the batch,
    the input's stem (later duplicates get ``-2``, ``-3``, ... in row order).
    """

    row: int | None
    input: Path
    reference_mask: Path
    reference_frame: int | None
    preset: str | None
    output: Path
    name: str

    @property
    def where(self) -> str:
        """How messages name the item: ``row 3 (a.tif)``, or the input's path in the pattern form."""
        return f"row {self.row} ({self.input.name})" if self.row is not None else str(self.input)


@dataclass
class ItemPlan:
    """What a runner needs for one checked item.

    ``frames``: frame count; ``frame_shape``: (H, W). ``painted``:
    ``{frame: (H, W) labels}`` exactly as ``napari-p2sam segment`` reads the
    mask. ``pixels``: the channel choice and the intensity limits, computed
    once over the whole stack, so chunks segmented apart give the labels
    ``segment`` gives on the whole item. ``resumed``: an earlier run of this
    batch worked on the item (its output and records are this batch's own).
    """

    item: Item
    frames: int
    frame_shape: tuple[int, int]
    painted: dict[int, np.ndarray]
    pixels: Pixels
    settings: Settings
    resumed: bool


def plan_manifest(
    csv_path: Path, out_dir: Path, *, overwrite: bool, fmt: str = "tif", preset: str | None = None
) -> list[ItemPlan]:
    """:func:`read_manifest` then :func:`check_items`, every problem of both in one :class:`ManifestError`.

    The rows whose cells are wrong are reported for those; every other row is checked in full.
    """
    csv_path = user_path(csv_path)
    items, problems = parse_manifest(csv_path, out_dir, fmt)
    try:
        plans = check_items(items, out_dir, overwrite=overwrite, fmt=fmt, preset=preset)
    except ManifestError as err:
        problems += err.problems
    if problems:
        raise ManifestError(f"manifest {csv_path}", problems)
    return plans


def read_manifest(csv_path: Path, out_dir: Path, fmt: str = "tif") -> list[Item]:
    """The items of the manifest ``csv_path``; :class:`ManifestError` lists every problem of the file at once.

    ``out_dir``: where default outputs go; ``fmt``: a key of :data:`FORMATS`.
    """
    csv_path = user_path(csv_path)
    items, problems = parse_manifest(csv_path, out_dir, fmt)
    if problems:
        raise ManifestError(f"manifest {csv_path}", problems)
    return items


def parse_manifest(csv_path: Path, out_dir: Path, fmt: str) -> tuple[list[Item], list[str]]:
    """The items of the rows without problems, and the problems of the others (one line each).

    Raises :class:`ManifestError` when no row can be read: the file is not CSV, or its header is wrong.
    """
    out_dir = user_path(out_dir)
    what = f"manifest {csv_path}"
    rows = csv_rows(csv_path, what)
    header = [cell.strip() for cell in rows[0]]
    problems = header_problems(header)
    if problems:
        raise ManifestError(what, problems)
    folder = csv_path.parent
    parsed, problems = [], []
    for number, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            problems.append(f"row {number}: {len(cells)} cells but the header has {len(header)} columns")
            continue
        row = dict(zip(header, (cell.strip() for cell in cells)))
        fields, row_problems = row_fields(row, number, folder)
        problems += row_problems
        if not row_problems:
            parsed.append(fields)
    if not parsed and not problems:
        problems.append(f"no items: add one row per item below the header ({','.join(COLUMNS)})")
    names = unique_names([fields["input"] for fields in parsed])
    items = [
        Item(**{**fields, "output": fields["output"] or default_output(out_dir, name, fmt)}, name=name)
        for fields, name in zip(parsed, names)
    ]
    return items, problems


def csv_rows(csv_path: Path, what: str) -> list[list[str]]:
    """The rows of a CSV text file; :class:`ManifestError` if it cannot be read, is not CSV text, or is empty."""
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", b"\x00", 0, 1, "NUL byte")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except UnicodeDecodeError:
        raise ManifestError(what, ["not a CSV file (it is not UTF-8 text); save the table as CSV (UTF-8)"]) from None
    except csv.Error as err:
        raise ManifestError(what, [f"not a CSV file ({err}); save the table as CSV (UTF-8)"]) from None
    except OSError as err:
        raise ManifestError(what, [f"cannot be read ({in_words(err)})"]) from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ManifestError(what, [f"the first row must be the header: {','.join(COLUMNS)} (the last three optional)"])
    return rows


def header_problems(header: list[str]) -> list[str]:
    """What is wrong with the header row (row 1): missing, unknown or repeated columns."""
    problems = []
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ";\t"):
            hint = " (the columns must be separated by commas)"
        problems.append(f"row 1: the header has no column {' or '.join(missing)}{hint}")
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        problems.append(
            f"row 1: unknown column(s) {', '.join(map(repr, unknown))}; the columns are {', '.join(COLUMNS)}"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        problems.append(f"row 1: column(s) {', '.join(repeated)} appear more than once")
    return problems


def row_fields(row: dict[str, str], number: int, folder: Path) -> tuple[dict, list[str]]:
    """One row's :class:`Item` fields (all but ``name``; ``output`` None for the default) and its problems."""
    problems = [f"row {number}: the {name} cell is empty" for name in REQUIRED_COLUMNS if not row.get(name)]
    frame_text, preset = row.get("reference_frame", ""), row.get("preset") or None
    frame = None
    if frame_text:
        try:
            frame = int(frame_text)
            if frame < 0:
                raise ValueError
        except ValueError:
            problems.append(f"row {number}: reference_frame {frame_text!r} is not a frame number (0, 1, 2, ...)")
    if preset is not None and preset not in PRESETS:
        problems.append(
            f"row {number}: unknown preset {preset!r}; choose one of {', '.join(PRESETS)} or leave it empty"
        )
    fields = {
        "row": number,
        "input": manifest_path(row.get("input", ""), folder),
        "reference_mask": manifest_path(row.get("reference_mask", ""), folder),
        "reference_frame": frame,
        "preset": preset,
        "output": manifest_path(row["output"], folder) if row.get("output") else None,
    }
    return fields, problems


def manifest_path(cell: str, folder: Path) -> Path:
    """A path cell: ``~`` and ``$VARS`` expanded; a relative path is relative to the manifest's ``folder``."""
    path = user_path(cell)
    return path if path.is_absolute() else folder / path


def default_output(out_dir: Path, name: str, fmt: str) -> Path:
    """``OUT_DIR/<name>_labels.tif`` (or ``.zarr``)."""
    return out_dir / f"{name}_labels{FORMATS[fmt]}"


def unique_names(inputs: Sequence[Path]) -> list[str]:
    """Each input's stem; a stem taken by an earlier input gets ``-2``, ``-3``, ... (the first free one)."""
    taken: set[str] = set()
    names = []
    for path in inputs:
        name, copy = path.stem, 1
        while name in taken:
            copy += 1
            name = f"{path.stem}-{copy}"
        taken.add(name)
        names.append(name)
    return names


def items_from_patterns(
    inputs_glob: str, references_pattern: str, reference_frame: int | None, out_dir: Path, fmt: str = "tif"
) -> list[Item]:
    """Items of the pattern form: ``--inputs 'videos/*.mp4' --references 'masks/{stem}.png'``.

    ``inputs_glob``: a glob (``**`` for any depth), relative to the current
    folder, matches taken in natural order (``2`` before ``10``).
    ``references_pattern``: each input's mask, ``{stem}`` standing for its
    stem. Outputs are ``OUT_DIR/<name>_labels.tif`` (or ``.zarr``).
    """
    try:
        references_pattern.format(stem="")
    except (KeyError, IndexError, ValueError):
        raise ManifestError(
            f"--references {references_pattern}", ["it may hold {stem} and nothing else in braces"]
        ) from None
    matches = sorted(glob.glob(str(user_path(inputs_glob)), recursive=True), key=natural_key)
    if not matches:
        raise ManifestError(f"--inputs {inputs_glob}", ["no file or folder matches it"])
    inputs = [Path(match) for match in matches]
    names = unique_names(inputs)
    return [
        Item(
            row=None,
            input=path,
            reference_mask=user_path(references_pattern.format(stem=path.stem)),
            reference_frame=reference_frame,
            preset=None,
            output=default_output(user_path(out_dir), name, fmt),
            name=name,
        )
        for path, name in zip(inputs, names)
    ]


def check_items(
    items: Sequence[Item], out_dir: Path, *, overwrite: bool, fmt: str = "tif", preset: str | None = None
) -> list[ItemPlan]:
    """Check every item before any work; :class:`ManifestError` lists every problem at once.

    Each input and mask is opened as ``napari-p2sam segment`` opens it, and
    the mask read and checked against the frames as it is there (sizes,
    empty mask, reference frame out of range, the object limit). Outputs
    must differ from each other and from every item's input and mask, and may
    be written as ``segment --out`` may (:func:`~napari_p2sam.io.outputs.check_output`);
    an existing output is accepted without ``overwrite`` only if it is this
    batch's own work (:func:`~napari_p2sam.batch.records.own_work`).
    ``preset``: the batch's preset, for items without their own.
    """
    out_dir = user_path(out_dir)
    problems = []
    try:
        check_folder(out_dir / "report.csv")
        check_writable(out_dir / "report.csv")
    except OSError as err:
        problems.append(str(err))
    plans = []
    for item in items:
        plan, item_problems = check_item(item, out_dir, overwrite=overwrite, fmt=fmt, preset=preset)
        problems += item_problems
        if plan is not None:
            plans.append(plan)
    problems += overlap_problems(items)
    if problems:
        raise ManifestError(f"{len(items)} item(s)", problems)
    return plans


def check_item(
    item: Item, out_dir: Path, *, overwrite: bool, fmt: str, preset: str | None
) -> tuple[ItemPlan | None, list[str]]:
    """One item's plan (None if it has problems) and its problems."""
    problems = []
    resumed = own_work(out_dir, item)
    try:
        keep = {"input": item.input, "reference mask": item.reference_mask}
        check_output(item.output, fmt, overwrite=overwrite or resumed, keep=keep, option="output")
        check_writable(item.output, option="output")
    except OSError as err:
        problems.append(f"{item.where}: {err}")
    name = item.preset or preset
    if name is not None and name not in PRESETS:
        problems.append(f"{item.where}: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    try:
        source = open_source(item.input)
    except Exception as err:  # any reader's error means: this input cannot be segmented
        return None, [*problems, f"{item.where}: input: {described(err)}"]
    try:
        try:
            painted = painted_frames(read_references(item.reference_mask, source, item.reference_frame), source)
            check_object_count(painted, MAX_OBJECTS)
        except Exception as err:  # the mask's reader or the painted-frames rule refused it
            problems.append(f"{item.where}: reference_mask: {described(err)}")
        try:
            pixels = pixels_for(source)
        except Exception as err:
            problems.append(f"{item.where}: input: {described(err)}")
    finally:
        source.close()
    if problems:
        return None, problems
    settings = PRESETS[name] if name else Settings()
    plan = ItemPlan(item, len(source), source.frame_shape, painted, pixels, settings, resumed)
    return plan, []


def described(err: Exception) -> str:
    """An error in words: its message for our input errors, with its type for any other."""
    return str(err) if isinstance(err, (ValueError, OSError)) else f"{type(err).__name__}: {err}"


def overlap_problems(items: Sequence[Item]) -> list[str]:
    """An output shared with an earlier item, or on (or holding) another item's input or mask: the first such, per item.

    An output on the item's own input or mask is :func:`~napari_p2sam.io.outputs.check_output`'s to report.
    """
    outputs = [item.output.resolve() for item in items]
    reads = [
        (item, what, path.resolve())
        for item in items
        for what, path in (("input", item.input), ("reference mask", item.reference_mask))
    ]
    problems = []
    for index, (item, output) in enumerate(zip(items, outputs)):
        own = {item.input.resolve(), item.reference_mask.resolve()}
        shared = (
            f"is also the output of {other.where}"
            for other, other_output in zip(items[:index], outputs[:index])
            if output == other_output
        )
        overlaps = (
            f"{overlap(output, path)} the {what} of {other.where}"
            for other, what, path in reads
            if path not in own and overlap(output, path)
        )
        conflict = next(shared, None) or next(overlaps, None)
        if conflict:
            problems.append(f"{item.where}: output {item.output} {conflict}")
    return problems
