"""The painted frames of a reference, read and checked against the stack they belong to (no torch).

A frame with any non-zero pixel is painted; each label value is one object.
``napari-p2sam segment --reference-mask`` and ``napari-p2sam batch`` read
masks with :func:`read_references` and check them with :func:`painted_frames`,
so both accept and refuse the same masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .objects import painted_only
from .sources import FrameSource, open_source


class ReferenceError(ValueError):
    """A reference mask that cannot be used, with what to do about it."""


def painted_frames(references, source: FrameSource) -> dict[int, np.ndarray]:
    """``{frame: (H, W) labels}`` of the frames with paint, copied; checked against ``source``."""
    count, shape = len(source), source.frame_shape
    if isinstance(references, Mapping):
        items = []
        for index, labels in references.items():
            if not isinstance(index, (int, np.integer)) or not 0 <= index < count:
                raise ReferenceError(
                    f"reference frame {index} is out of range: {source.name} has {count} frame(s) (0..{count - 1})"
                )
            items.append((int(index), labels))
    else:
        if not hasattr(references, "shape"):
            references = np.asarray(references)
        if len(references.shape) != 3 or references.shape[0] != count:
            raise ReferenceError(
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
                raise ReferenceError(
                    f"the reference for frame {index} is {'×'.join(map(str, labels.shape))} but the frames are "
                    f"{shape[0]}×{shape[1]}; paint the reference on a frame of the stack itself"
                )
            if labels.dtype.kind not in "biu":
                raise ReferenceError(f"reference labels must be integers (or bool), got {labels.dtype}")
            yield index, labels

    painted = {
        index: labels.astype(np.uint8) if labels.dtype == np.bool_ else labels.copy()
        for index, labels in painted_only(checked(items)).items()
    }
    if not painted:
        raise ReferenceError(
            f"no painted pixel in any reference frame of {source.name}: paint the object(s) with a non-zero label "
            "on at least one frame"
        )
    return dict(sorted(painted.items()))


def read_references(path: Path, source: FrameSource, reference_frame: int | None) -> dict[int, np.ndarray]:
    """``{frame: (H, W) labels}`` from a 2D mask (painted on ``reference_frame``) or a labels stack.

    A labels stack is read one frame at a time; only its painted frames are kept.
    A colour mask uses its first channel.
    """
    masks = open_source(path)
    try:
        if len(masks) == 1:
            return {0 if reference_frame is None else reference_frame: first_channel(masks.read(0))}
        if reference_frame is not None:
            raise ReferenceError(
                f"--reference-frame is for a 2D mask, but {path} is a labels stack of {len(masks)} frames "
                "(its painted frames are the ones with non-zero pixels); leave --reference-frame out"
            )
        if len(masks) != len(source):
            raise ReferenceError(
                f"the labels stack {path} has {len(masks)} frames but {source.name} has {len(source)}; give a labels "
                "stack with one frame per input frame, or one 2D mask with --reference-frame N"
            )
        painted = painted_only((index, first_channel(masks.read(index))) for index in range(len(masks)))
        if not painted:
            raise ReferenceError(
                f"the labels stack {path} has no painted pixel in any of its {len(masks)} frames: paint the object(s) "
                "with a non-zero label on at least one frame"
            )
        return painted
    finally:
        masks.close()


def first_channel(mask: np.ndarray) -> np.ndarray:
    """A mask's first channel if it has channels (a colour mask), else the mask."""
    return mask[..., 0] if mask.ndim == 3 else mask
