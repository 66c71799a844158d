"""Sample data made here, nothing downloaded: a synthetic time-lapse and a panning photo.

Both come with a reference labels layer, so the widget can run at once
(time-lapse: both cells painted on frame 0) or after one stroke of paint
(photo: an empty layer of the right shape).
"""

from __future__ import annotations

import numpy as np

TIME_LAPSE_FRAMES = 12
TIME_LAPSE_SIZE = 192


def cell_masks(frame: int, size: int = TIME_LAPSE_SIZE) -> np.ndarray:
    """Labels ``(size, size)`` uint8 of the two cells at ``frame``: 1 drifts right, 2 drifts down-left and turns."""
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    labels = np.zeros((size, size), np.uint8)
    cells = (
        (1, 60.0, 40.0 + 5.0 * frame, 26.0, 18.0, 0.3),
        (2, 110.0 + 3.0 * frame, 140.0 - 3.0 * frame, 22.0, 30.0, 0.15 * frame),
    )
    for value, row, col, radius_r, radius_c, angle in cells:
        dr, dc = rows - row, cols - col
        u = dr * np.cos(angle) + dc * np.sin(angle)
        v = -dr * np.sin(angle) + dc * np.cos(angle)
        labels[(u / radius_r) ** 2 + (v / radius_c) ** 2 <= 1] = value
    return labels


def time_lapse_stack(
    frames: int = TIME_LAPSE_FRAMES, size: int = TIME_LAPSE_SIZE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A (T, Y, X) uint16 time-lapse of two textured cells on a noisy background, and their true labels."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    background = 400 + 150 * np.sin(rows / 37.0) * np.cos(cols / 53.0)
    images, truth = [], []
    for t in range(frames):
        labels = cell_masks(t, size)
        texture = 900 + 300 * np.sin(rows / 4.0 + t) * np.sin(cols / 5.0)
        image = np.where(labels > 0, texture + 600 * (labels == 2), background)
        image = image + rng.normal(0, 60, image.shape)
        images.append(np.clip(image, 0, 65535).astype(np.uint16))
        truth.append(labels)
    return np.stack(images), np.stack(truth)


def time_lapse() -> list[tuple]:
    """napari sample: the time-lapse, and a reference layer with both cells painted on frame 0."""
    images, truth = time_lapse_stack()
    reference = np.zeros_like(truth)
    reference[0] = truth[0]
    return [
        (images, {"name": "cells (time-lapse)", "contrast_limits": (0, 2000)}, "image"),
        (reference, {"name": "cells reference (frame 0 painted)"}, "labels"),
    ]


def photo_pan(frames: int = 8) -> list[tuple]:
    """napari sample: a (T, Y, X, 3) RGB 'video' panning across scikit-image's coffee photo, and an empty reference layer."""
    from skimage import data

    photo = data.coffee()
    height, width = 300, 400
    step = (photo.shape[1] - width) // max(1, frames - 1)
    video = np.stack([photo[:height, t * step : t * step + width] for t in range(frames)])
    reference = np.zeros(video.shape[:3], np.uint8)
    return [
        (video, {"name": "coffee (panning video)", "rgb": True}, "image"),
        (reference, {"name": "coffee reference (paint the cup)"}, "labels"),
    ]
