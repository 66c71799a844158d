"""Check a stack run once, before any model loads: frames, painted references, frame range, pixel mapping.

:func:`prepare_stack` needs no model and no torch, so the command line, the
dock and scripts call it first and every input problem shows before the
model loads; :func:`~napari_p2sam.engine.propagate.run_stack` then runs the
:class:`StackJob` it returns and checks nothing again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.errors import for_settings
from .objects import MAX_OBJECTS, ReferenceInputError, check_object_count, object_labels, painted_only
from .pixels import DEFAULT_PERCENTILES
from .sources import FrameSource, Pixels, open_source, pixels_for


@dataclass(frozen=True)
class StackJob:
    """A checked stack run.

    ``source``: the frames. ``painted``: frame → ``(H, W)`` integer labels of
    every painted frame, sorted by frame. ``frame_range``: the frames to
    produce, inside the source. ``pixels``: how frames become SAM's RGB.
    ``owns_source``: the run closes ``source`` when it ends (it was opened
    from a path by :func:`prepare_stack`).
    """

    source: FrameSource
    painted: dict[int, np.ndarray]
    frame_range: range
    pixels: Pixels
    owns_source: bool = False

    @property
    def label_dtype(self) -> np.dtype:
        """The output's label dtype: that of the painted labels."""
        return np.result_type(*self.painted.values())

    @property
    def objects(self) -> list[int]:
        """The object labels, sorted."""
        return object_labels(self.painted)

    def close(self) -> None:
        """Close the source if the job opened it (a run does this when it ends)."""
        if self.owns_source:
            self.source.close()


def prepare_stack(
    frames,
    references,
    *,
    frame_range: range | None = None,
    limits: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    channel: int | tuple[int, ...] | None = None,
    max_objects: int | None = MAX_OBJECTS,
) -> StackJob:
    """Check everything a stack run needs except the model; raises ``ValueError`` subclasses with what to do.

    ``frames``: a :class:`~napari_p2sam.engine.sources.FrameSource`, a path,
    or an array-like ``(T, Y, X)`` / ``(T, Y, X, C)``. ``references``: labels
    ``(T, H, W)`` (frames with a non-zero pixel are painted) or
    ``{frame: (H, W) labels}``. ``frame_range``: default all frames.
    ``limits``: the intensity mapping of non-uint8 frames (default: the
    ``percentiles`` over the whole stack). ``channel``: one channel, or three
    as R, G, B. ``max_objects``: more objects raise
    :class:`~napari_p2sam.engine.objects.TooManyObjectsError` (None: any number).
    """
    source = open_source(frames)
    opened = source is not frames
    try:
        painted = painted_frames(references, source)
        check_object_count(painted, max_objects)
        frame_range = check_frame_range(frame_range, len(source))
        pixels = pixels_for(source, channel=channel, limits=limits, percentiles=percentiles)
    except BaseException:
        if opened:
            source.close()
        raise
    return StackJob(source, painted, frame_range, pixels, owns_source=opened)


def painted_frames(references, source: FrameSource) -> dict[int, np.ndarray]:
    """``{frame: (H, W) labels}`` of the frames with paint, copied; checked against ``source``."""
    count, shape = len(source), source.frame_shape
    if isinstance(references, Mapping):
        items = []
        for index, labels in references.items():
            if not isinstance(index, (int, np.integer)) or not 0 <= index < count:
                raise ReferenceInputError(
                    f"reference frame {index} is out of range: {source.name} has {count} frame(s) (0..{count - 1})"
                )
            items.append((int(index), labels))
    else:
        if not hasattr(references, "shape"):
            references = np.asarray(references)
        if len(references.shape) != 3 or references.shape[0] != count:
            raise ReferenceInputError(
                f"the references have shape {tuple(references.shape)} but {source.name} has {count} frame(s) of "
                f"{shape[0]}×{shape[1]}: give a labels stack ({count}, {shape[0]}, {shape[1]}) or "
                "{frame_index: 2D labels}"
            )
        items = ((i, references[i]) for i in range(count))

    def checked(items):
        for index, labels in items:
            labels = np.asarray(labels)
            if labels.shape != shape:
                source.read(index)  # a source whose frames change size (a video) says so, naming which frames
                raise ReferenceInputError(
                    f"the reference for frame {index} is {'×'.join(map(str, labels.shape))} but the frames are "
                    f"{shape[0]}×{shape[1]}; paint the reference on a frame of the stack itself"
                )
            if labels.dtype.kind not in "biu":
                raise ReferenceInputError(f"reference labels must be integers (or bool), got {labels.dtype}")
            yield index, labels

    painted = {
        index: labels.astype(np.uint8) if labels.dtype == np.bool_ else labels.copy()
        for index, labels in painted_only(checked(items)).items()
    }
    if not painted:
        raise ReferenceInputError(
            f"no painted pixel in any reference frame of {source.name}: paint the object(s) with a non-zero label "
            "on at least one frame"
        )
    return dict(sorted(painted.items()))


def check_frame_range(frame_range: range | None, count: int) -> range:
    """``frame_range`` (default all frames), checked to lie inside ``0..count``."""
    if frame_range is None:
        return range(count)
    if frame_range.step < 1 or len(frame_range) == 0 or frame_range.start < 0 or frame_range[-1] >= count:
        raise ValueError(
            f"frames {frame_range.start}:{frame_range.stop} cannot be produced: the stack has {count} frame(s) "
            f"(0..{count - 1}); give a non-empty range START:STOP inside it"
        )
    return frame_range


def read_reference_masks(path: Path, source: FrameSource, reference_frame: int | None) -> dict[int, np.ndarray]:
    """``{frame: (H, W) labels}`` from a mask file: one 2D mask painted on ``reference_frame`` (default 0),
    or a labels stack with ``source``'s frame count, whose painted frames are those with a non-zero pixel.

    A labels stack is read one frame at a time; only its painted frames are
    kept. A colour mask uses its first channel.
    """
    masks = open_source(path)
    try:
        if len(masks) == 1:
            return {0 if reference_frame is None else reference_frame: first_channel(masks.read(0))}
        if reference_frame is not None:
            raise for_settings(
                ReferenceInputError(
                    f"a reference frame number is for a 2D mask, but {path} is a labels stack of {len(masks)} "
                    "frames (its painted frames are the ones with non-zero pixels); give no reference frame"
                ),
                "reference_frame",
            )
        if len(masks) != len(source):
            raise for_settings(
                ReferenceInputError(
                    f"the labels stack {path} has {len(masks)} frames but {source.name} has {len(source)}; give a "
                    "labels stack with one frame per input frame, or one 2D mask and the frame it was painted on"
                ),
                "reference_mask",
                "reference_frame",
            )
        painted = painted_only((index, first_channel(masks.read(index))) for index in range(len(masks)))
        if not painted:
            raise ReferenceInputError(
                f"the labels stack {path} has no painted pixel in any of its {len(masks)} frames: paint the object(s) "
                "with a non-zero label on at least one frame"
            )
        return painted
    finally:
        masks.close()


def first_channel(mask: np.ndarray) -> np.ndarray:
    """A mask's first channel if it has channels (a colour mask), else the mask."""
    return mask[..., 0] if mask.ndim == 3 else mask
