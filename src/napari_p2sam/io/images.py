"""Read images and masks from disk. No napari here."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import NamedTuple

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


class TiffPages(NamedTuple):
    """How much of a TIFF is there: ``complete`` pages of the ``claimed`` (``at_least``: a lower bound).

    ``in_one_block``: the pages' data is one uncompressed block, laid out by
    tifffile's metadata (a plain ``tifffile.imwrite``), not page by page.
    """

    complete: int
    claimed: int
    at_least: bool
    in_one_block: bool

    @property
    def cut_short(self) -> bool:
        return self.complete < self.claimed

    def __str__(self) -> str:
        claimed = f"{self.claimed} or more" if self.at_least else f"{self.claimed}"
        return f"{self.complete} of the {claimed} pages it claims are complete, page {self.complete} on is missing"


def tiff_pages(tif: tifffile.TiffFile) -> TiffPages:
    """The complete and the claimed pages of an open TIFF; a file cut short has fewer complete ones.

    Complete: the leading pages whose data lies inside the file. Claimed:
    what the file's ImageJ or tifffile metadata says, else the pages in its
    list of pages, one more if the list points on past the end of the file
    (then at least that many).
    """
    size = tif.filehandle.size
    complete = 0
    tif.pages.useframes = True  # light pages: offsets and byte counts are all this needs
    for page in tif.pages:
        if not all(offset + count <= size for offset, count in zip(page.dataoffsets, page.databytecounts)):
            break
        complete += 1
    listed = len(tif.pages) + page_list_breaks_off(tif)
    declared = metadata_pages(tif)
    claimed = max(listed, declared)
    series, first = tif.series[0], tif.pages.first
    in_one_block = series.dataoffset is not None and math.prod(series.shape) // math.prod(first.shape) == claimed
    if in_one_block:
        complete = min(claimed, (size - series.dataoffset) // first.nbytes)
    return TiffPages(complete, claimed, listed > declared and listed > len(tif.pages), in_one_block)


def page_list_breaks_off(tif: tifffile.TiffFile) -> bool:
    """Whether the last page tifffile could read points on to a next page (one that is missing or unreadable)."""
    file = tif.filehandle
    file.seek(tif.pages.next_page_offset)
    pointer = file.read(tif.tiff.offsetsize)
    return len(pointer) < tif.tiff.offsetsize or struct.unpack(tif.tiff.offsetformat, pointer)[0] != 0


def metadata_pages(tif: tifffile.TiffFile) -> int:
    """The page count that ImageJ's or tifffile's metadata in the file gives; 0 if none does."""
    if tif.imagej_metadata:
        return int(tif.imagej_metadata.get("images", 0))
    shaped = tif.shaped_metadata
    if shaped and len(shaped) == 1:
        return math.prod(shaped[0]["shape"]) // math.prod(tif.pages.first.shape)
    return 0


def pages_are_frames(tif: tifffile.TiffFile) -> bool:
    """Whether each page is one frame (no ImageJ channels, at most one axis above the page in tifffile's shape)."""
    if tif.imagej_metadata:
        return int(tif.imagej_metadata.get("channels", 1)) == 1
    shaped = tif.shaped_metadata
    return not shaped or len(shaped[0]["shape"]) <= tif.pages.first.ndim + 1


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
