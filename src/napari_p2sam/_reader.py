"""napari reader for video files and folders of images, read lazily (one frame when napari shows it).

napari reads TIFF stacks itself; it has no lazy reader for videos and
reads a folder of images whole. Frames come from the engine's frame
sources (:mod:`napari_p2sam.engine.sources`): folders in natural order
(``2.png`` before ``10.png``), videos decoded with PyAV. The content,
not the suffix, decides how a file is read: a TIFF stack named ``.mp4``
opens as its pages.

A folder of PNGs that napari-p2sam wrote (it holds the list
``.napari-p2sam.json``, see :mod:`napari_p2sam.io.label_files`) opens as
the Labels layer it was saved from, read whole so that it can be painted.
The output folder of ``napari-p2sam batch`` opens as one lazy Labels layer
per item, its flagged frames in the layer's metadata
(``napari-p2sam open-results`` opens one item with its input and scores).

napari's own reader also claims ``*.mp4``, ``*.avi``, ... and decodes the
whole video into memory. With two readers for a file napari asks which one,
unless its preferences name one: :func:`prefer_for_videos` names this one.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np

from .engine.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, FolderFrames, FrameSource, open_source
from .io.label_files import listed_pngs, read_label_pngs

PLUGIN = "napari-p2sam"


def prefer_for_videos(_context=None) -> None:
    """Make this reader napari's choice for videos, for each suffix the user has not assigned a reader to.

    npe2 calls it when the plugin is first used in a session (``on_activate``
    in napari.yaml); napari keeps the choice in its settings
    (Preferences → Plugins → File extension readers), so later sessions open
    videos with it without asking.
    """
    from napari.settings import get_settings

    plugins = get_settings().plugins
    unset = {f"*{suffix}": PLUGIN for suffix in VIDEO_SUFFIXES if f"*{suffix}" not in plugins.extension2reader}
    if unset:
        plugins.extension2reader = {**plugins.extension2reader, **unset}


def get_reader(path):
    """napari's reader hook: :func:`read_frames` for a video file or a folder holding images, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if path.is_dir() and is_batch_output(path):
        return read_batch_output
    if path.is_dir():
        return read_frames if any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()) else None
    return read_frames if path.suffix.lower() in VIDEO_SUFFIXES else None


def read_frames(path) -> list[tuple]:
    """One layer: our PNG folder as labels ``(T, Y, X)``; else an image ``(T, Y, X[, C])`` backed by a lazy dask array.

    Unreadable files in a folder of images are skipped with a warning naming them.
    """
    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    label_pngs = listed_pngs(path) if path.is_dir() else None
    if label_pngs:
        return [(read_label_pngs(path, label_pngs), {"name": path.name}, "labels")]
    source = FolderFrames(path, skip_unreadable=True) if path.is_dir() else open_source(path)
    if source.skipped:
        names = ", ".join(p.name for p, _reason in source.skipped)
        warnings.warn(f"{path}: skipped {len(source.skipped)} unreadable file(s): {names}", stacklevel=2)
    return [(lazy_frames(source), {"name": path.stem or path.name, "rgb": source.channels in (3, 4)}, "image")]


def is_batch_output(folder: Path) -> bool:
    """Whether ``folder`` is the ``--out`` of ``napari-p2sam batch`` (it holds its report and its records)."""
    from .batch.records import BATCH_FOLDER
    from .batch.report import REPORT_CSV

    return (folder / REPORT_CSV).is_file() and (folder / BATCH_FOLDER).is_dir()


def read_batch_output(path) -> list[tuple]:
    """One lazy Labels layer per item of a batch's output folder whose labels exist, in the report's order.

    Each layer's metadata holds ``flagged_frames`` (docs/scale.md, QC rule).
    """
    from .batch.report import FRAMES_CSV, REPORT_CSV, flagged_frames, read_frames_csv, read_report_csv
    from .io.label_files import lazy_labels

    folder = Path(path[0] if isinstance(path, (list, tuple)) else path)
    frames = folder / FRAMES_CSV
    flags = flagged_frames(read_frames_csv(frames)) if frames.is_file() else {}
    return [
        (
            lazy_labels(Path(row["output"])),
            {"name": row["item"], "metadata": {"flagged_frames": flags.get(row["item"], [])}},
            "labels",
        )
        for row in read_report_csv(folder / REPORT_CSV)
        if Path(row["output"]).exists()
    ]


def lazy_frames(source: FrameSource):
    """A dask array ``(T, Y, X[, C])`` with one chunk per frame, read from ``source`` on demand.

    Reads are serialised: napari may slice in one thread while a P²SAM run
    reads in another, and video decoders are not thread-safe.
    """
    import dask.array as da

    lock = threading.Lock()

    def read_block(block_id=None):
        with lock:
            return source.read(block_id[0])[None]

    frame_chunks = tuple((n,) for n in source.frame_shape) + (((source.channels,),) if source.channels else ())
    ndim = 1 + len(frame_chunks)
    return da.map_blocks(
        read_block,
        chunks=((1,) * len(source),) + frame_chunks,
        dtype=source.dtype,
        meta=np.empty((0,) * ndim, dtype=source.dtype),
    )
