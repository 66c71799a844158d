"""This batch's own work in OUT_DIR, so that a rerun of the same batch resumes instead of refusing it.

Layout (one folder per item, named by :attr:`Item.name <napari_p2sam.batch.manifest.Item.name>`)::

    OUT_DIR/.napari-p2sam-batch/<item name>/item.json
        which input, reference mask and output the item is, and how it is run
        (``run``: whatever the runner needs to tell whether its chunks still hold)
    OUT_DIR/.napari-p2sam-batch/<item name>/chunk-<start>-<stop>.json
        the frame records of frames start..stop-1 (written by
        :func:`napari_p2sam.batch.report.write_chunk_records` after the chunk's
        output is written)

Every record is written under a temporary name and renamed into place, so a
killed run leaves whole records or none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..io.label_files import MARK
from ..io.outputs import write_output

if TYPE_CHECKING:
    from .manifest import Item

BATCH_FOLDER = ".napari-p2sam-batch"
ITEM_RECORD = "item.json"
CHUNK_NAME = re.compile(r"chunk-(\d+)-(\d+)\.json")


def batch_folder(out_dir: Path) -> Path:
    """``OUT_DIR/.napari-p2sam-batch``: every record of the batches written into ``out_dir``."""
    return out_dir / BATCH_FOLDER


def item_folder(out_dir: Path, name: str) -> Path:
    """The records of the item called ``name``."""
    return batch_folder(out_dir) / name


def chunk_record_path(out_dir: Path, name: str, start: int, stop: int) -> Path:
    """The record of frames ``start..stop-1`` of item ``name`` (zero-padded, so names sort by frame)."""
    return item_folder(out_dir, name) / f"chunk-{start:09d}-{stop:09d}.json"


def recorded_chunks(out_dir: Path, name: str) -> list[tuple[int, int]]:
    """``(start, stop)`` of the chunks of item ``name`` recorded as finished, in frame order."""
    folder = item_folder(out_dir, name)
    if not folder.is_dir():
        return []
    found = (CHUNK_NAME.fullmatch(path.name) for path in folder.iterdir())
    return sorted((int(m[1]), int(m[2])) for m in found if m)


def write_json(path: Path, data: object) -> None:
    """Write ``data`` as JSON to ``path`` atomically (a temporary beside it, then renamed), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_output(path, lambda temporary: temporary.write_text(json.dumps(data, indent=1)))


def item_identity(item: Item) -> dict[str, str]:
    """What makes an item the same item in a later run: its resolved input, reference mask and output."""
    return {
        "input": str(item.input.resolve()),
        "reference_mask": str(item.reference_mask.resolve()),
        "output": str(item.output.resolve()),
    }


def write_item_record(out_dir: Path, item: Item, run: Mapping[str, object]) -> None:
    """Record that this batch works on ``item`` (before its first output is written); ``run``: JSON-able settings."""
    record = {"written_by": MARK, **item_identity(item), "run": dict(run)}
    write_json(item_folder(out_dir, item.name) / ITEM_RECORD, record)


def read_item_record(out_dir: Path, name: str) -> dict | None:
    """The record :func:`write_item_record` wrote for item ``name``; None if there is none or it is not ours."""
    try:
        record = json.loads((item_folder(out_dir, name) / ITEM_RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("written_by") != MARK:
        return None
    return record


def own_work(out_dir: Path, item: Item) -> bool:
    """Whether an earlier run of this batch in ``out_dir`` worked on ``item`` (same input, mask and output)."""
    record = read_item_record(out_dir, item.name)
    return record is not None and all(record.get(key) == value for key, value in item_identity(item).items())
