"""Which model a run uses, resolved before any work: a registry name becomes its (downloaded) file.

No torch here: napari's process resolves (and downloads) models; the
model's process only loads files (:mod:`napari_p2sam.ui.engine_process`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..models.download import download, model_path
from ..models.registry import MODELS


@dataclass(frozen=True)
class ModelChoice:
    """Which model to run: a checkpoint file, a device (None: fastest), the input normalisation.

    ``sha256``: the file's expected checksum (a registry model's), checked
    when it is loaded; None for the user's own files.
    """

    checkpoint: str
    device: str | None = None
    normalization: str = "sam"
    sha256: str | None = None


def user_path(path: str | Path) -> Path:
    """A path as the user typed it, with ``~`` and environment variables (``$HOME``, ``%USERPROFILE%``) expanded."""
    return Path(os.path.expandvars(os.path.expanduser(str(path))))


def is_registry_name(checkpoint: str | Path) -> bool:
    """Whether ``checkpoint`` names a registry model (``vit_b``) rather than a file of that name."""
    return isinstance(checkpoint, str) and checkpoint in MODELS and not user_path(checkpoint).exists()


def resolve_model(
    checkpoint: str | Path,
    *,
    device: str | None = None,
    normalization: str | None = None,
    download_progress: object = False,
) -> ModelChoice:
    """``checkpoint`` (a registry name or a file path) as a :class:`ModelChoice`.

    A registry model not downloaded yet is downloaded now (verified;
    ``download_progress`` as in :func:`~napari_p2sam.models.download.download`);
    a file must exist. Raises ``OSError`` subclasses whose message says what
    to do.
    """
    if is_registry_name(checkpoint):
        info = MODELS[checkpoint]
        path = model_path(checkpoint)
        if not path.is_file():
            download(checkpoint, progressbar=download_progress)
        return ModelChoice(str(path), device, normalization or info.normalization, info.sha256)
    path = user_path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"the model file {path} does not exist: give a SAM checkpoint file (.pth) or a model name "
            f"({', '.join(MODELS)})"
        )
    return ModelChoice(str(path), device, normalization or "sam")
