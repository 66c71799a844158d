"""The label outputs napari-p2sam writes, marked so that a later run can recognise them.

- a label TIFF: its first page's Software tag is ``napari-p2sam``; its
  labels are 32-bit (or 64-bit) integers, which napari opens as a Labels
  layer (it takes such images for labels);
- a folder of PNGs (``00012.png`` = frame 12): it holds ``.napari-p2sam.json``,
  which lists the PNGs written into it; the plugin's reader opens such a
  folder as a Labels layer;
- a zarr array (v3, a folder ``NAME.zarr``, written by ``napari-p2sam batch
  --format zarr``): its attributes hold ``{"written_by": "napari-p2sam"}``.

Only a path that :func:`not_ours` accepts may be replaced by a new output
(see :mod:`napari_p2sam.io.outputs`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .images import label_dtype

MARK = "napari-p2sam"
PNG_LIST = ".napari-p2sam.json"
"""The marker file of a PNG folder we wrote: ``{"written_by": "napari-p2sam", "pngs": [names]}``."""
ZARR_FILES = ("zarr.json", "c")
"""What a zarr v3 array folder holds: its metadata and its chunks."""


def png_dtype(lowest: int, highest: int) -> np.dtype:
    """uint8 or uint16 for label values ``lowest..highest``; a ValueError if a PNG cannot hold them."""
    if lowest < 0 or highest > np.iinfo(np.uint16).max:
        raise ValueError(f"label values {lowest}..{highest} do not fit a PNG (0..65535); save them as TIFF")
    return label_dtype(highest)


def tiff_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype labels of ``dtype`` are written in to a TIFF: the same values, at least 32 bits."""
    dtype = np.dtype(dtype)
    return np.promote_types(dtype, np.int32 if dtype.kind == "i" else np.uint32)


def write_label_tiff(path: Path, frames: Iterable[np.ndarray], shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Write ``(H, W)`` frames of ``dtype``, as they come, as one compressed label TIFF of ``shape``.

    Stored as :func:`tiff_dtype` of ``dtype``; returns the frame count.
    """
    import tifffile

    dtype = tiff_dtype(dtype)
    written = 0

    def pages():
        nonlocal written
        for labels in frames:
            written += 1
            yield labels.astype(dtype, copy=False)

    with tifffile.TiffWriter(path) as tiff:
        tiff.write(pages(), shape=shape, dtype=dtype, compression="zlib", photometric="minisblack", software=MARK)
    return written


def write_label_pngs(folder: Path, frames: Iterable[tuple[int, np.ndarray]], count: int, dtype: np.dtype) -> int:
    """Create ``folder`` and write each ``(index, (H, W) labels)`` as ``00012.png``; returns the PNG count.

    ``count`` (frames in the whole stack) sets the width of the names. The
    marker listing the PNGs is written last, so a folder cut short is not marked.
    """
    from PIL import Image

    folder.mkdir()
    digits = max(5, len(str(count - 1)))
    names = []
    for index, labels in frames:
        names.append(f"{index:0{digits}d}.png")
        Image.fromarray(labels.astype(dtype, copy=False)).save(folder / names[-1])
    (folder / PNG_LIST).write_text(json.dumps({"written_by": MARK, "pngs": names}, indent=1))
    return len(names)


def create_label_zarr(path: Path, shape: tuple[int, int, int], chunk_frames: int, dtype: np.dtype):
    """Create the zarr array of labels ``shape`` (T, H, W) at ``path``, in chunks of ``chunk_frames`` frames.

    Stored as :func:`tiff_dtype` of ``dtype`` (napari shows such arrays as
    labels), zeros until written, marked as ours; returns the ``zarr.Array``.
    """
    import zarr

    chunks = (max(1, min(chunk_frames, shape[0])), *shape[1:])
    return zarr.create_array(
        store=str(path),
        shape=shape,
        chunks=chunks,
        dtype=tiff_dtype(dtype),
        fill_value=0,
        attributes={"written_by": MARK},
    )


def zarr_marked(path: Path) -> bool:
    """Whether the folder ``path`` is a zarr array :func:`create_label_zarr` made."""
    try:
        meta = json.loads((path / ZARR_FILES[0]).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(meta, dict)
        and isinstance(meta.get("attributes"), dict)
        and meta["attributes"].get("written_by") == MARK
    )


def lazy_labels(path: Path):
    """A label TIFF or zarr array we wrote as a lazy dask array (``(T, H, W)``), read a chunk at a time."""
    import dask.array as da
    import zarr

    if path.is_dir():
        return da.from_zarr(zarr.open_array(str(path), mode="r"))
    import tifffile

    return da.from_zarr(zarr.open(tifffile.imread(path, aszarr=True), mode="r"))


def read_label_pngs(folder: Path, names: list[str]) -> np.ndarray:
    """The labels ``(T, H, W)`` of the PNGs ``names`` in ``folder`` (the list :func:`listed_pngs` gives), read whole."""
    from .images import read_image

    first = read_image(folder / names[0])
    labels = np.empty((len(names), *first.shape), first.dtype)
    labels[0] = first
    for index, name in enumerate(names[1:], start=1):
        frame = read_image(folder / name)
        if frame.shape != first.shape:
            raise ValueError(f"{folder / name} is {frame.shape} but {names[0]} is {first.shape}: one size for all")
        labels[index] = frame
    return labels


def not_ours(path: Path) -> str | None:
    """Why the existing ``path`` is not a label output we wrote (None if it is one, untouched since)."""
    if path.is_symlink():
        return "is a symbolic link"
    if path.is_dir() and (path / ZARR_FILES[0]).exists():
        if not zarr_marked(path):
            return "is a zarr folder napari-p2sam did not write"
        others = sorted(p.name for p in path.iterdir() if p.name not in ZARR_FILES)
        if others:
            return f"holds files napari-p2sam did not write ({', '.join(others[:3])}{', ...' if others[3:] else ''})"
        return None
    if path.is_dir():
        listed = listed_pngs(path)
        if listed is None:
            return f"is a folder napari-p2sam did not write (it has no {PNG_LIST})"
        others = sorted(p.name for p in path.iterdir() if p.name not in {*listed, PNG_LIST})
        if others:
            return f"holds files napari-p2sam did not write ({', '.join(others[:3])}{', ...' if others[3:] else ''})"
        return None
    if not path.is_file() or tiff_software(path) != MARK:
        return "was not written by napari-p2sam"
    return None


def listed_pngs(folder: Path) -> list[str] | None:
    """The PNG names our marker in ``folder`` lists; None without a valid marker."""
    try:
        marker = json.loads((folder / PNG_LIST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("written_by") != MARK:
        return None
    pngs = marker.get("pngs")
    if not isinstance(pngs, list) or not all(isinstance(n, str) and "/" not in n and n.endswith(".png") for n in pngs):
        return None
    return pngs


def tiff_software(path: Path) -> str | None:
    """The Software tag of a TIFF's first page; None if ``path`` is no readable TIFF."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            return tiff.pages[0].software
    except (OSError, ValueError, IndexError, tifffile.TiffFileError):
        return None


def delete_ours(path: Path) -> None:
    """Delete a label output we wrote: the TIFF, or the listed PNGs, the marker and then the folder.

    A file someone put into the folder meanwhile is left, and the folder with it.
    A zarr array we made is deleted whole.
    """
    if not path.is_dir():
        path.unlink()
        return
    if zarr_marked(path):
        import shutil

        shutil.rmtree(path)
        return
    for name in listed_pngs(path) or []:
        (path / name).unlink(missing_ok=True)
    (path / PNG_LIST).unlink(missing_ok=True)
    if not any(path.iterdir()):
        path.rmdir()
