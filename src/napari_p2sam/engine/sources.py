"""Frame sources: one frame at a time from arrays, TIFF stacks, folders and videos.

Every source is a :class:`FrameSource`: ``len(source)`` frames of
``frame_shape`` (H, W) pixels, read one by one with ``source.read(i)`` in the
file's own dtype, ``(H, W)`` or ``(H, W, C)``. Nothing reads a whole stack:
TIFF stacks go through tifffile's zarr view (one page per read, compressed or
not), folders open one file per read, videos decode forward from the nearest
key frame (PyAV).

:class:`Pixels` turns a raw frame into the ``(H, W, 3)`` uint8 RGB that SAM
takes: the channel choice, then :func:`~napari_p2sam.engine.pixels.to_rgb_uint8`
with one intensity mapping shared by the whole stack (:func:`stack_limits`).
"""

from __future__ import annotations

import bisect
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.errors import for_settings
from ..io.images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, TiffPages, file_kind, pages_are_frames, tiff_pages
from .pixels import (
    DEFAULT_PERCENTILES,
    ImageInputError,
    blank_image_note,
    intensity_limits,
    to_rgb_uint8,
    warn_blank,
)

LIMIT_SAMPLES = 1_000_000
"""At most this many pixel values (drawn evenly from every frame) set the stack's percentiles."""


class SourceError(ImageInputError):
    """A stack, folder or video that cannot be read, with what to do about it."""


class FrameSource:
    """Frames read one at a time. Subclasses set the attributes and implement :meth:`read`.

    ``name``: what to call the source in messages. ``frame_shape``: (H, W).
    ``channels``: 0 for grayscale frames ``(H, W)``, else C of ``(H, W, C)``.
    ``skipped``: ``(path, reason)`` of files left out (folders only).
    """

    name: str
    frame_shape: tuple[int, int]
    channels: int
    dtype: np.dtype
    skipped: tuple[tuple[Path, str], ...] = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as stored: ``(H, W)`` or ``(H, W, C)``."""
        raise NotImplementedError

    def check_index(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} is out of range: {self.name} has {len(self)} frame(s)")
        return index

    def close(self) -> None:
        """Release open files (sources reopen them when read again)."""


class ArrayFrames(FrameSource):
    """Frames of an array-like (numpy, dask, zarr, tifffile's zarr view).

    ``axes`` names the array's dimensions with ``T`` or ``Z`` (frames), ``Y``,
    ``X`` and ``C`` (channels), e.g. ``"TYXC"``. Default: ``YX`` for 2D; for
    3D ``YXC`` if the last axis has 1, 3 or 4 entries, else ``TYX``; ``TYXC``
    for 4D. Pass ``axes`` for e.g. a 2-channel image ``"YXC"``.
    """

    def __init__(self, array, *, axes: str | None = None, name: str = "the array") -> None:
        shape = tuple(int(n) for n in array.shape)
        axes = (axes or default_axes(shape)).upper().replace("Z", "T")
        if len(axes) != len(shape) or sorted(axes) not in (sorted("YX"), sorted("TYX"), sorted("YXC"), sorted("TYXC")):
            raise SourceError(
                f"{name} has shape {shape} and axes {axes!r}; frames need axes from T (or Z), Y, X and C, "
                "e.g. 'TYX', 'TYXC' or 'YXC'"
            )
        self._array = array
        self._axes = axes
        self.name = name
        self._count = shape[axes.index("T")] if "T" in axes else 1
        self.frame_shape = (shape[axes.index("Y")], shape[axes.index("X")])
        self.channels = shape[axes.index("C")] if "C" in axes else 0
        self.dtype = np.dtype(array.dtype)
        if self._count < 1 or min(self.frame_shape) < 1:
            raise SourceError(f"{name} has no frames (shape {shape})")

    def __len__(self) -> int:
        return self._count

    def read(self, index: int) -> np.ndarray:
        self.check_index(index)
        frame_axes = self._axes
        block = self._array
        if "T" in frame_axes:
            block = block[(slice(None),) * frame_axes.index("T") + (index,)]
            frame_axes = frame_axes.replace("T", "")
        frame = np.asarray(block)
        order = [frame_axes.index(a) for a in "YXC" if a in frame_axes]
        return np.ascontiguousarray(frame.transpose(order))


def default_axes(shape: tuple[int, ...]) -> str:
    """The axes a plain array is read with (see :class:`ArrayFrames`)."""
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3:
        return "YXC" if shape[2] in (1, 3, 4) else "TYX"
    if len(shape) == 4:
        return "TYXC"
    raise SourceError(f"cannot read shape {shape} as frames: expected YX, YXC, TYX or TYXC")


class TiffFrames(ArrayFrames):
    """A TIFF image or stack, read one page at a time through tifffile's zarr view.

    Axes come from the file (``series.axes``, size-1 axes dropped): ``Y``/``X``
    are the frame, ``S`` or ``C`` the channels, any other one axis (T, Z, Q,
    I, ...) the frames. A file with two frame axes (e.g. T and Z) is refused.
    One image whose samples come first (``SYX``: what a plain
    ``tifffile.imwrite`` makes of a 3- or 4-frame uint8 stack) is read as
    frames, as napari shows it. ``axes`` (the file's dimensions in its
    order, as in :class:`ArrayFrames`) overrides this, e.g. ``"CYX"`` for a
    planar RGB image.

    A file cut short (fewer complete pages than it claims) is refused,
    saying how many pages are there, unless ``skip_unreadable``: then its
    complete pages are the frames, and ``skipped`` says what was left out.
    A frame that cannot be decoded raises :class:`SourceError` naming the
    file and the frame.
    """

    def __init__(self, path: str | Path, *, axes: str | None = None, skip_unreadable: bool = False) -> None:
        import tifffile
        import zarr

        self.path = Path(path)
        self._store = None
        try:
            with tifffile.TiffFile(self.path) as tif:
                pages = tiff_pages(tif)
                if pages.cut_short:
                    check_going_on(self.path, pages, pages_are_frames(tif), skip_unreadable)
                    self.skipped = ((self.path, f"cut short: {pages}; the complete pages are the frames"),)
                by_page = pages.cut_short and not pages.in_one_block  # tifffile cannot lay out its series
                if by_page:
                    array = TiffPageStack(self.path, pages.complete, tif.pages.first)
                    file_axes, shape = array.axes, array.shape
                else:
                    series = tif.series[0]
                    file_axes, shape = series.axes, series.shape
            if not by_page:
                self._store = tifffile.imread(self.path, aszarr=True, series=0, level=0)
                array = zarr.open(self._store, mode="r")
        except SourceError:
            raise
        except (tifffile.TiffFileError, OSError, ValueError, IndexError) as err:
            raise SourceError(f"{self.path} cannot be read as a TIFF ({err})") from None
        try:
            if tuple(array.shape) != tuple(shape):
                raise SourceError(
                    f"{self.path}: unexpected TIFF layout {file_axes} {shape}; save a plain (T, Y, X[, C]) stack"
                )
            super().__init__(array, axes=axes or tiff_frame_axes(file_axes, shape, self.path), name=str(self.path))
            check_frame_size(self.name, self.frame_shape, self.channels, self.dtype)
            if pages.cut_short:
                self._count = pages.complete  # its pages are its frames (check_going_on)
        except SourceError:
            self.close()
            raise

    def read(self, index: int) -> np.ndarray:
        self.check_index(index)
        try:
            return super().read(index)
        except Exception as err:  # any decoder's error (zlib.error, TiffFileError, ...) means: this frame is damaged
            raise SourceError(
                f"frame {index} of {self.path} cannot be read ({type(err).__name__}: {err}): the file is damaged; "
                "restore it from a good copy, or save the stack again"
            ) from None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


class TiffPageStack:
    """The first ``count`` pages of a TIFF as an array ``(count, *page shape)``; indexing reads one page.

    For a file cut short, whose series tifffile cannot lay out page by page.
    """

    def __init__(self, path: Path, count: int, first_page) -> None:
        self.path = path
        self.shape = (count, *first_page.shape)
        self.axes = "Q" + first_page.axes
        self.dtype = first_page.dtype

    def __getitem__(self, key) -> np.ndarray:
        import tifffile

        index = key[0] if isinstance(key, tuple) else key
        return tifffile.imread(self.path, key=index)


def check_going_on(path: Path, pages: TiffPages, pages_are_frames: bool, skip_unreadable: bool) -> None:
    """Refuse a TIFF cut short, unless its complete pages can be read as frames and ``skip_unreadable`` asks to."""
    problem = cut_short(path, pages)
    if pages.complete == 0:
        raise SourceError(f"{problem}; no frame can be read: restore the whole file")
    if not pages_are_frames:
        raise SourceError(f"{problem}; its frames span several pages, so they cannot be told apart: restore the file")
    if not skip_unreadable:
        raise for_settings(
            SourceError(
                f"{problem}; nothing was read: restore the whole file, or go on with its {pages.complete} "
                "complete page(s) as frames by skipping what cannot be read"
            ),
            "skip_unreadable",
        )


def cut_short(path: Path, pages: TiffPages) -> str:
    """What is wrong with a TIFF cut short."""
    return f"{path} is cut short: {pages}"


def check_frame_size(name: str, frame_shape: tuple[int, int], channels: int, dtype: np.dtype) -> None:
    """Refuse frames larger than a quarter of this machine's memory, before anything allocates one."""
    frame_bytes = math.prod(frame_shape) * max(channels, 1) * np.dtype(dtype).itemsize
    memory = physical_memory()
    if frame_bytes > memory // 4:
        height, width = frame_shape
        raise SourceError(
            f"{name}: one frame is {height}×{width} pixels{f' × {channels} channels' if channels else ''} of "
            f"{np.dtype(dtype).name} ({frame_bytes / 2**30:.1f} GiB), more than a quarter of this machine's "
            f"{memory / 2**30:.0f} GiB of memory: crop or downscale the frames (SAM sees them at 1024×1024), or check "
            "the file (its header may be damaged)"
        )


def physical_memory() -> int:
    """This machine's memory in bytes (16 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 16 * 2**30


def tiff_frame_axes(axes: str, shape: Sequence[int], path: Path) -> str:
    """Map tifffile's axis letters onto T (frames), Y, X and C (channels); ``SYX`` is frames, as napari reads it."""
    if axes == "SYX":
        return "TYX"
    mapped = "".join(a if a in "YX" else "C" if a in "SC" else "T" for a in axes)
    if mapped.count("T") > 1 or mapped.count("C") > 1:
        raise SourceError(
            f"{path} has axes {axes} of shape {tuple(shape)}; this tool reads one frame axis (time or z) and at "
            "most one channel axis: save one time series or one z-stack per file"
        )
    return mapped


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``img2`` before ``img10``."""
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", name)))


class FolderFrames(FrameSource):
    """A folder of single images (PNG, JPEG, TIFF, BMP), one frame per file, in natural order.

    Every file's header is checked when the folder is opened: a file that
    cannot be read stops with its name, unless ``skip_unreadable`` is set,
    in which case it is left out and listed in ``skipped``. All frames must
    have the same size.
    """

    def __init__(self, folder: str | Path, *, skip_unreadable: bool = False) -> None:
        self.path = Path(folder)
        self.name = str(self.path)
        files = sorted(
            (p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: natural_key(p.name),
        )
        if not files:
            raise SourceError(f"{self.path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        readable, skipped, sizes = [], [], {}
        for path in files:
            try:
                sizes[path] = image_size(path)
                readable.append(path)
            except SourceError as err:
                if not skip_unreadable:
                    raise for_settings(
                        SourceError(f"{err}; nothing was skipped: fix or remove the file, or skip unreadable files"),
                        "skip_unreadable",
                    ) from None
                skipped.append((path, str(err)))
        if not readable:
            raise SourceError(f"{self.path}: none of its {len(files)} image files can be read")
        self.files = tuple(readable)
        self.skipped = tuple(skipped)
        self.frame_shape = sizes[self.files[0]]
        for path in self.files:
            if sizes[path] != self.frame_shape:
                raise SourceError(
                    f"{path} is {sizes[path][0]}×{sizes[path][1]} but {self.files[0].name} is "
                    f"{self.frame_shape[0]}×{self.frame_shape[1]}; all frames of a folder must have one size"
                )
        first = self.read(0)
        self.channels = first.shape[2] if first.ndim == 3 else 0
        self.dtype = first.dtype

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> np.ndarray:
        from ..io.images import read_image

        path = self.files[self.check_index(index)]
        try:
            frame = read_image(path)
        except Exception as err:  # any decoder's error (zlib.error, OSError, ...) means: this file is damaged
            raise SourceError(
                f"frame {index} ({path}) cannot be read ({type(err).__name__}: {err}); restore the file, or remove it "
                "from the folder"
            ) from None
        if frame.shape[:2] != self.frame_shape:
            raise SourceError(f"frame {index} ({path}) is not a single {self.frame_shape} image (shape {frame.shape})")
        return frame


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of a single image file from its header; :class:`SourceError` if it cannot be read.

    The content, not the suffix, decides the reader: a TIFF stack named ``.png`` is refused as a stack.
    """
    try:
        kind = file_kind(path)
        if kind == "video":
            raise SourceError(f"{path} holds a video, not one image")
        if kind == "tiff":
            import tifffile

            with tifffile.TiffFile(path) as tif:
                pages = tiff_pages(tif)
                if pages.cut_short:
                    raise SourceError(cut_short(path, pages))
                series = tif.series[0]
                shape = series.shape
                if len(shape) not in (2, 3) or (len(shape) == 3 and series.axes[-1] not in "SC"):
                    raise SourceError(f"{path} holds a stack {series.axes} {shape}, not one image")
                check_frame_size(str(path), shape[:2], shape[2] if len(shape) == 3 else 0, series.dtype)
                return int(shape[0]), int(shape[1])
        from PIL import Image

        with Image.open(path) as img:
            img.verify()
            width, height = img.size
        return height, width
    except SourceError:
        raise
    except Exception as err:  # every reader error means the same to the user: this file is unreadable
        raise SourceError(f"{path} cannot be read ({type(err).__name__}: {err})") from None


class VideoFrames(FrameSource):
    """A video file (mp4, avi, MPEG-TS, ...) decoded lazily with PyAV as ``(H, W, 3)`` uint8 RGB frames.

    Opening demuxes the packets once (no decoding) to count frames and
    learn their timestamps. Reading frame i decodes forward from the
    current position, or from the key frame before i after a seek, so
    reading in order decodes every frame once. A frame is returned only
    when its timestamp is frame i's: where a seek lands past it (MPEG-TS
    does) or finds no frame, seeking is inexact in this file, and from then
    on a backward read decodes from the start again (``seeks_exactly``).
    """

    def __init__(self, path: str | Path) -> None:
        import av

        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.is_file():
            raise SourceError(f"no such video file: {self.path}")
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise SourceError(f"{self.path} is a video with no frames (it holds no video stream)")
                stream = container.streams.video[0]
                self.frame_shape = (stream.codec_context.height, stream.codec_context.width)
                timestamps = [p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0]
        except SourceError:
            raise
        except (av.FFmpegError, OSError, ValueError) as err:
            raise SourceError(f"{self.path} cannot be read as a video ({err})") from None
        if not timestamps:
            raise SourceError(f"{self.path} is a video with no frames; check the file (it may be empty or cut short)")
        self.timestamps = sorted(timestamps)
        self.channels = 3
        self.dtype = np.dtype(np.uint8)
        self.seeks_exactly = True
        self._container = None
        self._frames = None
        self._next = None

    def __len__(self) -> int:
        return len(self.timestamps)

    def read(self, index: int) -> np.ndarray:
        import av

        target = self.timestamps[self.check_index(index)]
        try:
            if self._frames is None or self._next is None or index < self._next:
                self._restart(target)
            frame = self._decode_to(target)
            if frame is None and self.seeks_exactly:
                self.seeks_exactly = False
                self._restart(target)
                frame = self._decode_to(target)
        except av.FFmpegError as err:
            raise SourceError(f"frame {index} of {self.path} cannot be decoded ({err})") from None
        if frame is None:
            raise SourceError(f"frame {index} of {self.path} cannot be decoded: the video ends early")
        if (frame.height, frame.width) != self.frame_shape:
            raise SourceError(self._size_change(index, (frame.height, frame.width)))
        self._next = index + 1
        return frame.to_ndarray(format="rgb24")

    def _size_change(self, index: int, size: tuple[int, int]) -> str:
        """What to say when frame ``index`` is ``size`` instead of ``frame_shape``: which frames have which size."""
        runs = self._size_runs()
        if len(runs) > 1:
            sizes = " and ".join(f"{frames_words(first, last)} {size[0]}×{size[1]}" for first, last, size in runs)
        else:
            height, width = self.frame_shape
            sizes = f"frame {index} is {size[0]}×{size[1]} but the video says its frames are {height}×{width}"
        return (
            f"{self.path}: its frames are not all one size: {sizes} (height×width); P²SAM needs one size: split the "
            "video where its size changes, or resize it to one size"
        )

    def _size_runs(self) -> list[tuple[int, int, tuple[int, int]]]:
        """``(first, last, (H, W))`` of each run of frames of one size, found by decoding the key frames only.

        A video changes size at a key frame (it starts anew there), so this is cheap and exact.
        """
        import av

        starts = []
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            for frame in container.decode(stream):
                size = (frame.height, frame.width)
                if frame.pts is not None and (not starts or size != starts[-1][1]):
                    starts.append((bisect.bisect_left(self.timestamps, frame.pts), size))
        lasts = [first - 1 for first, _ in starts[1:]] + [len(self) - 1]
        return [(first, last, size) for (first, size), last in zip(starts, lasts)]

    def _decode_to(self, pts: int):
        """The next decoded frame whose timestamp is ``pts``; None if decoding passes ``pts`` or ends first."""
        for frame in self._frames:
            if frame.pts is None or frame.pts < pts:
                continue
            return frame if frame.pts == pts else None
        return None

    def _restart(self, pts: int) -> None:
        """Decode anew from the key frame before ``pts`` (a seek), or from the start if seeking is inexact."""
        import av

        if self._container is not None and not self.seeks_exactly:
            self._container.close()
            self._container = None
        if self._container is None:
            self._container = av.open(str(self.path))
        stream = self._container.streams.video[0]
        if self.seeks_exactly:
            self._container.seek(pts, backward=True, any_frame=False, stream=stream)
        self._frames = self._container.decode(stream)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._frames = self._next = None


def frames_words(first: int, last: int) -> str:
    """``frame 4 is`` or ``frames 4–7 are``."""
    return f"frame {first} is" if first == last else f"frames {first}–{last} are"


def open_source(frames, *, axes: str | None = None, skip_unreadable: bool = False) -> FrameSource:
    """A :class:`FrameSource` for ``frames``.

    ``frames``: a FrameSource (returned as is), an array-like (numpy, dask,
    zarr), or a path: a TIFF file or stack, a PNG/JPEG/BMP image, a folder
    of images, or a video file. ``axes`` as in :class:`ArrayFrames`, for
    arrays, TIFF files (see :class:`TiffFrames`) and single images.
    """
    if isinstance(frames, FrameSource):
        return frames
    if isinstance(frames, (str, Path)):
        path = Path(frames)
        if path.is_dir():
            return FolderFrames(path, skip_unreadable=skip_unreadable)
        if not path.is_file():
            raise SourceError(f"no such file or folder: {path}")
        return open_file(path, axes, skip_unreadable)
    if not hasattr(frames, "shape") or not hasattr(frames, "__getitem__"):
        frames = np.asarray(frames)
    return ArrayFrames(frames, axes=axes)


def open_file(path: Path, axes: str | None, skip_unreadable: bool) -> FrameSource:
    """The source for one file; its content, not its suffix, decides the reader (see ``io.images.file_kind``)."""
    kind = file_kind(path)
    if kind == "tiff":
        return TiffFrames(path, axes=axes, skip_unreadable=skip_unreadable)
    if kind == "video":
        return VideoFrames(path)
    if kind == "image":
        from ..io.images import read_image

        image_size(path)
        return ArrayFrames(read_image(path), axes=axes, name=str(path))
    raise SourceError(
        f"{path}: unknown kind of file (neither its content nor its suffix {path.suffix!r} is a known one); give a "
        f"TIFF, PNG, JPEG or BMP image, a folder of images, or a video ({', '.join(VIDEO_SUFFIXES)}, MPEG-TS, ...)"
    )


def frame_sample(frame: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` values drawn (with replacement, fixed seed) from a frame, as float64."""
    flat = np.asarray(frame).reshape(-1)
    if flat.size <= count:
        return flat.astype(np.float64)
    picks = np.random.default_rng(seed).integers(0, flat.size, count)
    return flat[picks].astype(np.float64)


def stack_limits(
    source: FrameSource,
    *,
    channel: int | Sequence[int] | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> tuple[float, float]:
    """The (low, high) intensities at ``percentiles`` over the whole stack, NaN ignored.

    Every frame is read once; at most :data:`LIMIT_SAMPLES` values in all,
    drawn evenly from every frame with a fixed seed (so the same stack
    always gets the same limits), decide them. Stacks that small are
    measured exactly.
    """
    frames = (select_channels(source.read(i), channel) for i in range(len(source)))
    return sampled_limits(frames, len(source), percentiles)


def sampled_limits(
    frames: Iterable[np.ndarray], count: int, percentiles: tuple[float, float] = DEFAULT_PERCENTILES
) -> tuple[float, float]:
    """The (low, high) intensities at ``percentiles`` of ``count`` frames (each read once), NaN ignored.

    At most :data:`LIMIT_SAMPLES` values in all, drawn evenly from every
    frame with a fixed seed, decide them; frames may differ in size.
    """
    per_frame = max(1, LIMIT_SAMPLES // count)
    values = [frame_sample(frame, per_frame, seed=i) for i, frame in enumerate(frames)]
    return intensity_limits(np.concatenate(values), percentiles)


def select_channels(frame: np.ndarray, channel: int | Sequence[int] | None) -> np.ndarray:
    """The chosen channel (→ ``(H, W)``) or three channels (→ ``(H, W, 3)``) of a frame; as is if None."""
    if channel is None or frame.ndim == 2:
        return frame
    if isinstance(channel, (int, np.integer)):
        return frame[..., int(channel)]
    return frame[..., list(channel)]


@dataclass(frozen=True)
class Pixels:
    """How raw frames become SAM's ``(H, W, 3)`` uint8 RGB.

    ``channel``: one channel index (used as grayscale), three indices (used
    as R, G, B), or None (gray, RGB and RGBA as they are). ``limits``: the
    intensity mapping for non-uint8 frames (None for uint8 stacks).
    """

    channel: int | tuple[int, ...] | None = None
    limits: tuple[float, float] | None = None

    def rgb(self, frame: np.ndarray, *, name: str | None = None) -> np.ndarray:
        """``frame`` as SAM's RGB; given its ``name``, a frame SAM sees nothing in is warned about."""
        rgb, note = self.rgb_and_note(frame)
        if name is not None:
            warn_blank(name, note, stacklevel=3)
        return rgb

    def rgb_and_note(self, frame: np.ndarray) -> tuple[np.ndarray, str | None]:
        """``frame`` as SAM's RGB, and why SAM sees nothing in it (:func:`blank_image_note`; None: it sees something).

        Warns about nothing, so a reader thread can convert frames and leave the warning to the frame's consumer.
        """
        frame = select_channels(frame, self.channel)
        rgb = to_rgb_uint8(frame, limits=self.limits)
        return rgb, blank_image_note(frame, rgb)


def pixels_for(
    source: FrameSource,
    *,
    channel: int | Sequence[int] | None = None,
    limits: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> Pixels:
    """Check the channel choice against ``source`` and settle the intensity limits.

    Limits default to ``percentiles`` over the whole stack (:func:`stack_limits`)
    for non-uint8 sources; uint8 frames pass unchanged.
    """
    channel = check_channel(source, channel)
    if source.dtype != np.uint8 and limits is None:
        limits = stack_limits(source, channel=channel, percentiles=percentiles)
    if limits is not None:
        low, high = (float(v) for v in limits)
        if not np.isfinite([low, high]).all() or high < low:
            raise SourceError(f"intensity limits must be two finite numbers LOW <= HIGH, got {limits}")
        limits = (low, high)
    return Pixels(channel=channel, limits=None if source.dtype == np.uint8 else limits)


def check_channel(source: FrameSource, channel) -> int | tuple[int, ...] | None:
    """Validate a channel choice before any work; returns it normalised."""
    count = source.channels
    if channel is None:
        if count in (0, 1, 3, 4):
            return None
        raise for_settings(
            SourceError(f"{source.name} has {count} channels; choose one, or three as R, G, B, from 0..{count - 1}"),
            "channel",
        )
    if count == 0:
        raise SourceError(f"{source.name} is grayscale: it has no channel to choose; leave the channel unset")
    picked = (int(channel),) if isinstance(channel, (int, np.integer)) else tuple(int(c) for c in channel)
    if len(picked) not in (1, 3) or not all(0 <= c < count for c in picked):
        raise SourceError(
            f"channel {channel} cannot be used: {source.name} has {count} channels (0..{count - 1}); "
            "choose one channel or three (R, G, B)"
        )
    return picked[0] if len(picked) == 1 else picked
