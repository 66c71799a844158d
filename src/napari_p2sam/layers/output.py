"""The layers a run writes to: the output labels and the prompt points (napari layers, no widgets).

The output labels layer is new (the user's reference layer is never
written). Each finished frame is written into its data at once. The prompt
points layer holds every finished frame's prompts on that frame: positive
points green, negative points magenta.

Redrawing is what costs napari time, so layers are refreshed only when the
frame on screen changed: labels of other frames are read from the data when
the user moves there, and their prompt points are handed to the points
layer then (:meth:`RunOutput.show_prompts`), or when the run ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..engine.results import FrameResult
from .job import FrameGeometry, LayerJob

POSITIVE_COLOR = (0.0, 1.0, 0.0, 1.0)
NEGATIVE_COLOR = (1.0, 0.0, 1.0, 1.0)


@dataclass
class RunOutput:
    """A run's output layers and where their frames are.

    ``corrected``: frames of ``labels`` the user marked as references for
    the next run (:meth:`use_as_reference`). ``waiting_prompts``: frame →
    prompt coordinates and colours not yet in the points layer.
    ``made_with``: what the latest run used (model and settings), None
    before the first.
    """

    labels: object
    points: object
    geometry: FrameGeometry
    corrected: set[int] = field(default_factory=set)
    waiting_prompts: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    made_with: tuple | None = None

    def clear_results(self) -> None:
        """Empty every frame but the corrected ones, and remove every prompt point."""
        kept = self.corrections()
        self.labels.data[...] = 0
        for frame, labels in kept.items():
            self.labels.data[self.geometry.output_index(frame)] = labels
        self.labels.refresh()
        self.waiting_prompts.clear()
        self.points.data = np.zeros((0, len(self.geometry.output_shape)))

    def write(self, results: list[FrameResult], shown_frame: int | None) -> None:
        """Store finished frames; refresh the layers only if one of them is ``shown_frame``."""
        for result in results:
            self.labels.data[self.geometry.output_index(result.index)] = result.labels
            self.waiting_prompts[result.index] = prompt_points(self.geometry, result)
        if shown_frame in {result.index for result in results}:
            self.labels.refresh()
            self.show_prompts()

    def show_prompts(self) -> None:
        """Hand the waiting frames' prompt points to the points layer, replacing older ones of those frames."""
        if not self.waiting_prompts:
            return
        waiting, self.waiting_prompts = self.waiting_prompts, {}
        data = np.asarray(self.points.data).reshape(-1, len(self.geometry.output_shape))
        face = np.asarray(self.points.face_color).reshape(-1, 4)
        if self.geometry.frame_axis is None:
            keep = np.zeros(len(data), bool)
        else:
            keep = ~np.isin(np.round(data[:, self.geometry.frame_axis]).astype(int), list(waiting))
        self.points.data = np.concatenate([data[keep]] + [coords for coords, _colors in waiting.values()])
        if len(self.points.data):
            self.points.face_color = np.concatenate([face[keep]] + [colors for _coords, colors in waiting.values()])

    def corrections(self) -> dict[int, np.ndarray]:
        """The corrected frames' labels as they are now in the output layer."""
        return {
            frame: np.array(self.labels.data[self.geometry.output_index(frame)]) for frame in sorted(self.corrected)
        }

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


def add_output_labels(viewer, job: LayerJob, name: str):
    """Add an empty output labels layer overlaying the job's image."""
    geometry = job.geometry
    return viewer.add_labels(job.new_output(), name=name, scale=geometry.scale, translate=geometry.translate)


def add_prompt_points(viewer, job: LayerJob, name: str, *, visible: bool = True):
    """Add an empty points layer ``"<name> prompts"`` for the run's prompt points."""
    geometry = job.geometry
    return viewer.add_points(
        np.zeros((0, len(geometry.output_shape))),
        name=f"{name} prompts",
        scale=geometry.scale,
        translate=geometry.translate,
        size=max(3, min(geometry.output_shape[-2:]) // 40),
        border_color="white",
        face_color="lime",
        visible=visible,
    )
