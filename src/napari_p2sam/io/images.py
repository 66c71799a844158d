"""Read images and masks from disk. No napari here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", *TIFF_SUFFIXES, ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
MAGIC_BYTES = {
    b"II*\0": "tiff",
    b"MM\0*": "tiff",
    b"II+\0": "tiff",  # BigTIFF
    b"MM\0+": "tiff",
    b"\x89PNG\r\n\x1a\n": "image",
    b"\xff\xd8\xff": "image",  # JPEG
    b"BM": "image",  # BMP
}


def file_kind(path: Path) -> str | None:
    """How to read the file ``path``: ``"tiff"``, ``"image"`` (PNG, JPEG, BMP) or ``"video"``.

    The content decides: the first bytes, or else a video stream PyAV finds
    in it. Content that tells nothing (a damaged or empty file) falls back to
    the suffix, so that the reader it names reports what is wrong. None: neither tells.
    """
    with open(path, "rb") as file:
        head = file.read(8)
    for magic, kind in MAGIC_BYTES.items():
        if head.startswith(magic):
            return kind
    if holds_video(path):
        return "video"
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    return "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


def holds_video(path: Path) -> bool:
    """Whether PyAV opens ``path`` as a video container with a video stream.

    FFmpeg's single-image readers (``image2``, chosen by the suffix alone,
    and ``png_pipe``, ``tiff_pipe``, ...) do not count: they read no video.
    """
    import av

    try:
        with av.open(str(path)) as container:
            name = container.format.name
            return bool(container.streams.video) and name != "image2" and not name.endswith("_pipe")
    except (av.FFmpegError, OSError, ValueError):
        return False


def read_image(path: str | Path) -> np.ndarray:
    """Read a TIFF (any dtype, any dimensions) or a PNG/JPEG/BMP image as numpy; the content decides which.

    PNG/JPEG palette and gray+alpha images become RGB/RGBA or gray as stored.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if file_kind(path) == "tiff":
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

