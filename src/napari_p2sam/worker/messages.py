"""What a run is asked to do and what it reports: plain records, no torch, no Qt.

They cross the boundary between napari's process and the model's process
(:mod:`napari_p2sam.worker.engine_process`), so this module must never import
torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.results import FrameResult, Progress


class DownloadMeter:
    """Bytes of a model download so far, written by the download (any thread), read by the UI.

    The tqdm-like object :func:`napari_p2sam.models.download.download` reports to.
    """

    def __init__(self) -> None:
        self.model: str | None = None
        self.total: int | None = None
        self.done = 0

    def update(self, count: int) -> None:
        self.done += count

    def close(self) -> None:
        self.model = None


@dataclass
class FrameUpdate:
    """A finished frame, the run's progress after it, and what the engine warned about on the way
    (e.g. a blank frame), in words for the user."""

    result: FrameResult
    progress: Progress
    warnings: tuple[str, ...] = ()


@dataclass
class RunSummary:
    """How a run ended: frames ``done`` of ``total``, frames ``encoded`` by SAM (not from the cache),
    ``cancelled``, or ``error`` (a message for the user)."""

    done: int = 0
    total: int = 0
    encoded: int = 0
    cancelled: bool = False
    error: str | None = None
    seconds: float = 0.0
