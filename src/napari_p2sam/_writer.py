"""napari writers for label layers: one label TIFF, or a folder of one PNG per frame.

The PNG folder is named after the chosen path without ``.png``
(``masks.png`` → ``masks/``), and holds ``00000.png``, ``00001.png``, … one per
frame (leading axes flattened in order) and the marker ``.napari-p2sam.json``;
labels are saved as 8-bit PNGs, or 16-bit when a label value exceeds 255.
An existing folder is replaced only if napari-p2sam wrote it (napari's save
dialog asked about ``masks.png``, not about the folder).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io.label_files import png_dtype, write_label_pngs, write_label_tiff
from .io.outputs import check_replaceable, locked, write_output


def write_tiff(path: str, data, meta: dict) -> list[str]:
    """Write a labels layer as one compressed TIFF (napari's save dialog already asked about overwriting)."""
    labels = np.asarray(data)
    path = Path(path)
    frames = labels.reshape((-1,) + labels.shape[-2:])
    with locked(path, lambda: check_not_a_folder(path)):
        write_output(path, lambda temporary: write_label_tiff(temporary, frames, labels.shape, labels.dtype))
    return [str(path)]


def write_png_folder(path: str, data, meta: dict) -> list[str]:
    """Write a labels layer as a folder of PNGs, one per frame; returns the folder."""
    labels = np.asarray(data)
    dtype = png_dtype(int(labels.min()), int(labels.max())) if labels.size else np.dtype(np.uint8)
    folder = Path(path)
    folder = folder.with_suffix("") if folder.suffix.lower() == ".png" else folder
    frames = labels.reshape((-1,) + labels.shape[-2:])
    with locked(folder, lambda: check_replaceable(folder)):
        write_output(folder, lambda temporary: write_label_pngs(temporary, enumerate(frames), len(frames), dtype))
    return [str(folder)]


def check_not_a_folder(path: Path) -> None:
    """napari's save dialog asked about replacing a file: a folder or a link there is replaced only if ours."""
    if path.is_dir() or path.is_symlink():
        check_replaceable(path)
