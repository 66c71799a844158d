"""The layers a run writes to: the output labels and the prompt points (napari layers, no widgets).

The output labels layer is new (the user's reference layer is never
written). Each finished frame is written into it at once. The prompt points
layer holds every finished frame's prompts on that frame: positive points
green, negative points magenta.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..engine.propagate import FrameResult
from .job import FrameGeometry, LayerJob

POSITIVE_COLOR = (0.0, 1.0, 0.0, 1.0)
NEGATIVE_COLOR = (1.0, 0.0, 1.0, 1.0)


@dataclass
class RunOutput:
    """A run's output layers and where their frames are.

    ``corrected``: frames of ``labels`` the user marked as references for
    the next run (:meth:`use_as_reference`).
    """

    labels: object
    points: object
    geometry: FrameGeometry
    corrected: set[int] = field(default_factory=set)

    def write(self, result: FrameResult) -> None:
        """Show a finished frame: its labels, and its prompt points in place of any older ones."""
        self.labels.data[self.geometry.output_index(result.index)] = result.labels
        self.labels.refresh()
        coords, colors = prompt_points(self.geometry, result)
        data, face = np.asarray(self.points.data), np.asarray(self.points.face_color)
        if len(data):
            keep = ~np.all(data[:, :-2] == self.geometry.point_coordinates(result.index, [[0, 0]])[0, :-2], axis=1)
            data, face = data[keep], face[keep]
        self.points.data = np.concatenate([data.reshape(-1, len(self.geometry.output_shape)), coords])
        if len(self.points.data):
            self.points.face_color = np.concatenate([face.reshape(-1, 4), colors])

    def corrections(self) -> dict[int, np.ndarray]:
        """The corrected frames' labels as they are now in the output layer."""
        return {frame: np.array(self.labels.data[self.geometry.output_index(frame)]) for frame in sorted(self.corrected)}

    def use_as_reference(self, frame: int) -> bool:
        """Mark ``frame`` of the output as a reference for the next run; False if nothing is painted there."""
        if not np.any(self.labels.data[self.geometry.output_index(frame)]):
            return False
        self.corrected.add(frame)
        return True

    def is_shown_in(self, viewer) -> bool:
        return self.labels in viewer.layers and self.points in viewer.layers


def prompt_points(geometry: FrameGeometry, result: FrameResult) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates ``(N, D)`` and RGBA colours ``(N, 4)`` of every object's prompt points on a frame."""
    coords, colors = [np.zeros((0, len(geometry.output_shape)))], [np.zeros((0, 4))]
    for segmentation in result.segmentations.values():
        coords.append(geometry.point_coordinates(result.index, segmentation.points))
        positive = np.asarray(segmentation.labels).reshape(-1, 1) == 1
        colors.append(np.where(positive, POSITIVE_COLOR, NEGATIVE_COLOR))
    return np.concatenate(coords), np.concatenate(colors)


def add_output_layers(viewer, job: LayerJob, name: str) -> RunOutput:
    """Add an empty output labels layer and a prompt points layer overlaying the job's image."""
    geometry = job.geometry
    labels = viewer.add_labels(job.new_output(), name=name, scale=geometry.scale, translate=geometry.translate)
    points = viewer.add_points(
        np.zeros((0, len(geometry.output_shape))),
        name=f"{name} prompts",
        scale=geometry.scale,
        translate=geometry.translate,
        size=max(3, min(geometry.output_shape[-2:]) // 40),
        border_color="white",
        face_color="lime",
    )
    return RunOutput(labels, points, geometry)
