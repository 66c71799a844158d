"""From napari layers to one propagation job: which frames, which references, where results go.

No Qt here: layers are read through ``name``, ``data``, ``ndim``, ``rgb``,
``scale`` and ``translate`` only, so the widget and the scripting API share
this code.

Axes. An image layer has ``D`` non-colour dimensions (an RGB layer has one
more, the colour, last). The last two are the frame's Y and X. At most one
of the leading axes is the *frame axis* (T or Z); every other leading axis
(channels, time in a T×Z stack) is read at one index, by default the
viewer's current position. The output labels layer has the image's ``D``
dimensions, with those fixed axes of size 1 placed at their index, so it
overlays the image exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..engine.objects import painted_only
from ..engine.sources import ArrayFrames


class LayerInputError(ValueError):
    """Layers or choices that cannot make a job, with what to do about it."""


@dataclass(frozen=True)
class FrameGeometry:
    """Where an image layer's frames are, and the output layer that overlays them.

    ``frame_axis``: the data axis holding frames (``None``: one image).
    ``fixed``: every other leading axis → the index read. ``output_shape``,
    ``scale``, ``translate``: the output labels layer's geometry.
    """

    frame_axis: int | None
    fixed: tuple[tuple[int, int], ...]
    output_shape: tuple[int, ...]
    scale: tuple[float, ...]
    translate: tuple[float, ...]

    @property
    def frame_count(self) -> int:
        return 1 if self.frame_axis is None else self.output_shape[self.frame_axis]

    def output_index(self, frame: int) -> tuple:
        """Index of ``frame``'s (H, W) plane in the output layer's data."""
        return tuple(self._leading(frame)) + (slice(None), slice(None))

    def point_coordinates(self, frame: int, xy: np.ndarray) -> np.ndarray:
        """``(N, D)`` output-layer coordinates of points ``xy`` ``(N, 2)`` (x = column, y = row) on ``frame``."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        coords = np.zeros((len(xy), len(self.output_shape)))
        coords[:, :-2] = self._leading(frame)
        coords[:, -2] = xy[:, 1]
        coords[:, -1] = xy[:, 0]
        return coords

    def frame_at(self, output_position: Sequence[float]) -> int:
        """The frame at a data position of the output layer (0 for a single image)."""
        if self.frame_axis is None:
            return 0
        return int(np.clip(round(float(output_position[self.frame_axis])), 0, self.frame_count - 1))

    def _leading(self, frame: int) -> list[int]:
        return [frame if axis == self.frame_axis else 0 for axis in range(len(self.output_shape) - 2)]


@dataclass(frozen=True)
class LayerJob:
    """One propagation over an image layer's frames.

    ``frames``: ``(T, H, W)`` or ``(T, H, W, C)`` frames, read lazily.
    ``references``: frame → ``(H, W)`` labels (painted frames, then
    corrections). ``label_dtype``: the output's dtype (the reference layer's).
    """

    image_name: str
    geometry: FrameGeometry
    frames: ArrayFrames
    references: dict[int, np.ndarray]
    frame_range: range
    label_dtype: np.dtype

    def new_output(self) -> np.ndarray:
        """An empty output label array of the output layer's shape."""
        return np.zeros(self.geometry.output_shape, dtype=self.label_dtype)


def layer_array(layer):
    """The full-resolution data of an image or labels layer (level 0 of a multiscale layer)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def leading_axes(image_layer) -> int:
    """How many axes of the image layer come before the frame's Y and X."""
    return image_layer.ndim - 2


def frame_geometry(
    image_layer, frame_axis: int | None | str = "auto", position: Sequence[float] | None = None
) -> FrameGeometry:
    """The frames of ``image_layer``; raises :class:`LayerInputError`.

    ``frame_axis``: a leading axis, ``None`` (one image), or ``"auto"`` (the
    first leading axis, if any). ``position``: the index read on each other
    leading axis (default 0), e.g. the viewer's current position.
    """
    if image_layer is None:
        raise LayerInputError("no image layer: open an image or stack, then choose it under 'image'")
    lead = leading_axes(image_layer)
    shape = tuple(int(n) for n in layer_array(image_layer).shape[: image_layer.ndim])
    if lead < 0:
        raise LayerInputError(f"image '{image_layer.name}' has shape {shape}; it needs at least two axes (Y, X)")
    if frame_axis == "auto":
        frame_axis = 0 if lead else None
    if frame_axis is not None and not 0 <= frame_axis < lead:
        choices = list(range(lead)) if lead else "none: it is a single image"
        raise LayerInputError(
            f"frame axis {frame_axis} is not a leading axis of image '{image_layer.name}' (shape {shape}); "
            f"choose one of {choices}"
        )
    position = list(position) if position is not None else []
    fixed = tuple(
        (axis, int(np.clip(round(float(position[axis])) if axis < len(position) else 0, 0, shape[axis] - 1)))
        for axis in range(lead)
        if axis != frame_axis
    )
    scale = tuple(float(s) for s in image_layer.scale)
    offsets = dict(fixed)
    translate = tuple(float(t) + offsets.get(axis, 0) * scale[axis] for axis, t in enumerate(image_layer.translate))
    output_shape = tuple(1 if axis in offsets else n for axis, n in enumerate(shape))
    return FrameGeometry(frame_axis, fixed, output_shape, scale, translate)


def build_job(
    image_layer,
    labels_layer,
    geometry: FrameGeometry,
    *,
    frame_range: tuple[int, int] | None = None,
    corrections: Mapping[int, np.ndarray] | None = None,
) -> LayerJob:
    """Check the reference layer and the frame range; raises :class:`LayerInputError`.

    ``frame_range``: (start, stop) frames to produce, stop excluded (default
    all). ``corrections``: frame → ``(H, W)`` labels used as references too,
    replacing any paint on those frames.
    """
    if labels_layer is None:
        raise LayerInputError(
            "no reference labels layer: add a labels layer (the 'new labels layer' button while the image is "
            "selected), paint the object on one frame, and choose it under 'reference'"
        )
    data = layer_array(image_layer)
    lead = leading_axes(image_layer)
    fixed = dict(geometry.fixed)
    selection = tuple(fixed.get(axis, slice(None)) for axis in range(lead))
    axes = ("T" if geometry.frame_axis is not None else "") + "YX" + ("C" if image_layer.rgb else "")
    frames = ArrayFrames(lazy(data, lead)[selection], axes=axes, name=f"image '{image_layer.name}'")

    references = painted_frames(labels_layer, image_layer.name, tuple(data.shape[: image_layer.ndim]), geometry)
    references.update(corrections or {})
    if not references:
        where = f" at {', '.join(f'axis {a} = {i}' for a, i in geometry.fixed)}" if geometry.fixed else ""
        raise LayerInputError(
            f"nothing is painted in '{labels_layer.name}'{where}: paint the object with a non-zero label on at "
            "least one frame, then run again"
        )
    count = geometry.frame_count
    start, stop = frame_range if frame_range is not None else (0, count)
    if not 0 <= start < stop <= count:
        raise LayerInputError(
            f"frames {start}–{stop - 1} are out of range: '{image_layer.name}' has {count} frame(s) (0–{count - 1})"
        )
    return LayerJob(
        image_name=image_layer.name,
        geometry=geometry,
        frames=frames,
        references=references,
        frame_range=range(start, stop),
        label_dtype=np.dtype(layer_array(labels_layer).dtype),
    )


def painted_frames(labels_layer, image_name: str, image_shape: tuple, geometry: FrameGeometry) -> dict:
    """Frame → ``(H, W)`` labels of every frame with a painted pixel.

    The labels layer has the image's shape without colour (then read at the
    fixed indices), or already only the frame axis, Y and X.
    """
    labels = layer_array(labels_layer)
    fixed = dict(geometry.fixed)
    frame_shape = tuple(n for axis, n in enumerate(image_shape) if axis not in fixed)
    if tuple(labels.shape) == image_shape and fixed:
        labels = labels[tuple(fixed.get(axis, slice(None)) for axis in range(len(image_shape) - 2))]
    elif tuple(labels.shape) != frame_shape:
        expected = f"{image_shape}" + (f" or {frame_shape}" if fixed else "")
        raise LayerInputError(
            f"reference layer '{labels_layer.name}' has shape {tuple(labels.shape)} but image '{image_name}' "
            f"needs {expected}: add a new labels layer while the image is selected and paint the reference there"
        )
    labels = np.asarray(labels)
    return painted_only([(0, labels)] if geometry.frame_axis is None else enumerate(labels))


def lazy(data, lead: int):
    """``data`` itself if numpy or dask, else a dask view with one chunk per frame (``lead`` leading axes),
    so that indexing never loads a whole stack."""
    if isinstance(data, np.ndarray) or type(data).__module__.startswith("dask"):
        return data
    import dask.array as da

    return da.from_array(data, chunks=(1,) * lead + tuple(data.shape[lead:]))
