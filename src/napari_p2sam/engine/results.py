"""What the engine returns: plain records of numpy arrays and numbers, no torch.

They cross the boundary between the process that runs the model and
napari's process (:mod:`napari_p2sam.worker.engine_process`), so importing this
module must never import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Candidate:
    """One tried prompt: ``k`` parts, ``n`` background parts (0 = natural variant's argmin point).

    ``points``: ``(N, 2)`` (x = column, y = row) original pixels; ``labels``
    ``(N,)`` 1 positive / 0 negative; ``score``: retrieval distance (``inf``
    = empty prediction, ``nan`` = not scored, PerSAM).
    """

    k: int
    n: int
    points: np.ndarray
    labels: np.ndarray
    score: float = float("nan")


@dataclass
class Segmentation:
    """The kept candidate for one target.

    ``mask``: ``(H, W)`` bool at the target's size. ``timings``: seconds per
    step (``prompts``, ``decoder``, ``retrieval``).
    """

    mask: np.ndarray
    points: np.ndarray
    labels: np.ndarray
    score: float
    k: int
    candidates: list[Candidate]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Progress:
    """``done`` frames of ``total`` finished in this run; ``eta_s`` None until one frame was segmented."""

    done: int
    total: int
    elapsed_s: float
    eta_s: float | None


@dataclass
class FrameResult:
    """One output frame.

    ``labels``: ``(H, W)`` in the references' label dtype. ``segmentations``:
    label value → engine result (empty for painted frames). ``reference_frame``:
    the painted frame used (None for a painted frame, whose paint is copied).
    """

    index: int
    labels: np.ndarray
    segmentations: dict[int, Segmentation]
    reference_frame: int | None
    painted: bool
