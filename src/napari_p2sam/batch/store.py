"""Each item's labels while the batch runs (a zarr work array), and the item's output made from it.

The work array lives in the item's record folder
(``OUT_DIR/.napari-p2sam-batch/<item name>/labels.zarr``): ``(T, H, W)`` in
the dtype ``segment`` writes, one zarr chunk per frame. When every chunk of
the item is recorded, :func:`assemble` makes the output:

- ``tif``: the frames streamed one by one into a label TIFF, which appears
  complete under its name (:func:`~napari_p2sam.io.outputs.write_output`);
  the work array is then deleted;
- ``zarr``: the work array itself is moved to the output's name (renamed on
  the same file system, copied otherwise).

So once every chunk is recorded, a work array that is gone means the output
was made.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..io.label_files import create_label_zarr, write_label_tiff
from ..io.outputs import check_replaceable, locked, write_output
from .records import item_folder

WORK_ARRAY = "labels.zarr"


def work_array(out_dir: Path, name: str) -> Path:
    """Where item ``name``'s labels are written while its chunks run."""
    return item_folder(out_dir, name) / WORK_ARRAY


def create_work_array(path: Path, frames: int, frame_shape: tuple[int, int], dtype: np.dtype) -> None:
    """An empty work array of ``frames`` frames of ``frame_shape`` for labels of ``dtype``, one zarr chunk a frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    create_label_zarr(path, (frames, *frame_shape), 1, dtype)


def assemble(path: Path, out: Path, fmt: str) -> None:
    """Make the output ``out`` (``fmt``: "tif" or "zarr") of the complete work array at ``path``."""
    import zarr

    with locked(out, lambda: check_replaceable(out)):
        if fmt == "zarr":
            write_output(out, lambda temporary: shutil.move(path, temporary))
            return
        labels = zarr.open_array(str(path), mode="r")
        shape = labels.shape if labels.shape[0] > 1 else labels.shape[1:]
        frames = (labels[index] for index in range(labels.shape[0]))
        write_output(out, lambda temporary: write_label_tiff(temporary, frames, shape, labels.dtype))
    shutil.rmtree(path)
