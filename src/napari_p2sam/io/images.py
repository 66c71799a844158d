"""Read images and masks from disk. No napari here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

TIFF_SUFFIXES = (".tif", ".tiff")


def read_image(path: str | Path) -> np.ndarray:
    """Read a TIFF (any dtype, any dimensions) or a PNG/JPEG/BMP image as numpy.

    PNG/JPEG palette and gray+alpha images become RGB/RGBA or gray as stored.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() in TIFF_SUFFIXES:
        return tifffile.imread(path)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif img.mode == "LA":
                img = img.convert("L")
            return np.array(img)
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image file this tool can read (TIFF, PNG, JPEG, BMP)") from None


def label_dtype(max_label: int) -> np.dtype:
    """Smallest unsigned dtype that holds ``max_label``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_label <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"label value {max_label} is too large")

