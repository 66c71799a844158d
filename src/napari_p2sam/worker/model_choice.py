"""Which model a run uses, resolved before any work: a registry name becomes its (downloaded) file.

No torch here: napari's process resolves (and downloads) models; the
model's process only loads files (:mod:`napari_p2sam.worker.engine_process`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..io.paths import user_path
from ..models.download import download, model_path
from ..models.registry import MODELS, registry_name


@dataclass(frozen=True)
class ModelChoice:
    """Which model to run: a checkpoint file, a device (None: fastest), the input normalisation.

    ``sha256``: the file's expected checksum (a registry model's), checked
    when it is loaded; None for the user's own files. ``precision``: the
    encoder's number format, checked against the device where the model loads.
    """

    checkpoint: str
    device: str | None = None
    normalization: str = "sam"
    sha256: str | None = None
    precision: str = "fp32"


def resolve_model(
    checkpoint: str | Path,
    *,
    device: str | None = None,
    normalization: str | None = None,
    precision: str = "fp32",
    download_progress: object = False,
) -> ModelChoice:
    """``checkpoint`` (a registry name or a file path) as a :class:`ModelChoice`.

    A registry model not downloaded yet is downloaded now (verified;
    ``download_progress`` as in :func:`~napari_p2sam.models.download.download`);
    a file must exist. Raises ``OSError`` subclasses whose message says what
    to do.
    """
    if registry_name(checkpoint) is not None:
        info = MODELS[checkpoint]
        path = model_path(checkpoint)
        if not path.is_file():
            download(checkpoint, progressbar=download_progress)
        return ModelChoice(str(path), device, normalization or info.normalization, info.sha256, precision)
    path = user_path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"the model file {path} does not exist: give a SAM checkpoint file (.pth) or a model name "
            f"({', '.join(MODELS)})"
        )
    return ModelChoice(str(path), device, normalization or "sam", precision=precision)
