"""napari writers for label layers: one label TIFF, or a folder of one PNG per frame.

The PNG folder is named after the chosen path without ``.png``
(``masks.png`` → ``masks/``), and holds ``00000.png``, ``00001.png``, … one per
frame (leading axes flattened in order); labels are saved as 8-bit PNGs, or
16-bit when a label value exceeds 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io.images import label_dtype, write_labels_tiff


def write_tiff(path: str, data, meta: dict) -> list[str]:
    """Write a labels layer as one compressed TIFF (napari's save dialog already asked about overwriting)."""
    return [str(write_labels_tiff(path, np.asarray(data), overwrite=True))]


def write_png_folder(path: str, data, meta: dict) -> list[str]:
    """Write a labels layer as a folder of PNGs, one per frame; returns the folder."""
    from PIL import Image

    labels = np.asarray(data)
    if labels.size and labels.min() < 0:
        raise ValueError("labels with negative values cannot be saved as PNG; save them as TIFF")
    largest = int(labels.max()) if labels.size else 0
    if largest > np.iinfo(np.uint16).max:
        raise ValueError(f"label {largest} does not fit in a 16-bit PNG; save the labels as TIFF")
    dtype = label_dtype(largest)
    folder = Path(path)
    folder = folder.with_suffix("") if folder.suffix.lower() == ".png" else folder
    folder.mkdir(parents=True, exist_ok=True)
    frames = labels.reshape((-1,) + labels.shape[-2:])
    digits = max(5, len(str(len(frames) - 1)))
    for index, frame in enumerate(frames):
        Image.fromarray(frame.astype(dtype)).save(folder / f"{index:0{digits}d}.png")
    return [str(folder)]
