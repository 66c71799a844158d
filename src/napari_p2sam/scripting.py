"""P²SAM without the widget: on napari layers (console, notebook, script) or on plain arrays.

Both functions block until every frame is done and follow the widget's
rules: each label value is its own object, every frame uses the nearest
painted frame, painted frames keep their paint, and the reference layer
is never modified. :func:`segment_layers` given a model name or file runs
the model in a process of its own, as the widget does, so that it is safe
in napari's process (docs/architecture.md).

A complete example, run by the tests: ``docs/scripting.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .engine.objects import MAX_OBJECTS, check_object_count
from .engine.settings import Settings, chosen_settings
from .engine.stack_job import prepare_stack
from .io.paths import user_path
from .layers.job import build_job, frame_geometry
from .worker.engine_process import EngineProcess
from .worker.model_choice import resolve_model

if TYPE_CHECKING:
    from .engine.cache import EmbeddingCache
    from .models.loading import SamModel


def segment_layers(
    viewer,
    image,
    reference,
    *,
    model: SamModel | str | Path,
    settings: Settings | None = None,
    preset: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    frame_axis: int | None | str = "auto",
    frames: tuple[int, int] | None = None,
    position=None,
    cache: EmbeddingCache | str | Path | None = None,
    name: str | None = None,
    max_objects: int | None = MAX_OBJECTS,
):
    """Segment the objects painted in labels layer ``reference`` through image layer ``image``.

    Adds and returns a new labels layer (``"<image> P²SAM"`` unless ``name``
    is given) overlaying the image. ``model``: a registry name (downloaded
    on first use) or a checkpoint path, run in a process of its own; or a
    loaded model, run here. A failure in the model's process raises
    ``RuntimeError`` with its message. ``precision``: the image encoder's
    number format, ``fp32`` (default), ``bf16`` or ``fp16`` (:mod:`~napari_p2sam.models.precision`). ``settings`` or ``preset``: the algorithm options (default
    :class:`~napari_p2sam.engine.settings.Settings`). ``frame_axis``: the
    image's axis holding frames (``"auto"``: the first leading axis;
    ``None``: one image). ``frames``: (first, last) frames, inclusive
    (default all). ``position``: the index read on other leading axes
    (default: the viewer's current position). ``cache``: an embedding cache
    or its folder, so later calls re-encode nothing. ``max_objects``: more
    objects (label values) than this raise ``TooManyObjectsError`` before
    any work (None: any number).
    """
    if position is None and image is not None:
        position = image.world_to_data(viewer.dims.point)
    geometry = frame_geometry(image, frame_axis, position)
    frame_range = (frames[0], frames[1] + 1) if frames is not None else None
    job = build_job(image, reference, geometry, frame_range=frame_range)
    check_object_count(job.references, max_objects)
    labels = job.new_output()
    for update in run_layer_job(job, chosen_settings(settings, preset), model, device, precision, cache):
        labels[geometry.output_index(update.result.index)] = update.result.labels
    return viewer.add_labels(
        labels, name=name or f"{image.name} P²SAM", scale=geometry.scale, translate=geometry.translate
    )


def segment_stack(
    frames,
    references,
    *,
    model: SamModel | str | Path,
    settings: Settings | None = None,
    preset: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    frame_range: range | None = None,
    cache: EmbeddingCache | str | Path | None = None,
    max_objects: int | None = MAX_OBJECTS,
    batch_size: int | None = None,
) -> np.ndarray:
    """Segment a stack from its painted frames; returns labels ``(T, H, W)``.

    ``frames``: ``(T, Y, X)`` or ``(T, Y, X, C)`` (numpy, dask, zarr), a
    TIFF, a folder of images or a video. ``references``: labels ``(T, H, W)``
    with the objects painted on one or more frames, or ``{frame: (H, W)
    labels}``. Frames outside ``frame_range`` stay 0. ``batch_size``: frames
    per encoder call (default: from free GPU memory on CUDA, 1 elsewhere; on
    the CPU the results do not depend on it). Other options as in
    :func:`segment_layers`.
    """
    job = prepare_stack(frames, references, frame_range=frame_range, max_objects=max_objects)
    settings = chosen_settings(settings, preset)
    from .engine.pipeline import PipelineOptions  # torch loads here, after the inputs were checked
    from .engine.propagate import run_stack
    from .models.loading import as_model

    try:
        pipeline = PipelineOptions(batch_size=batch_size)
        propagation = run_stack(
            as_model(model, device, precision), job, settings, cache=as_cache(cache), pipeline=pipeline
        )
    except BaseException:
        job.close()
        raise
    height, width = propagation.source.frame_shape
    labels = np.zeros((len(propagation.source), height, width), dtype=propagation.label_dtype)
    for result in propagation:
        labels[result.index] = result.labels
    return labels


def run_layer_job(job, settings: Settings, model, device: str | None, precision: str | None, cache):
    """The job's frame updates: in a model process for a name or path, here for a loaded model."""
    if not isinstance(model, (str, Path)):
        from .models.loading import as_model
        from .worker.run import run_frames

        stack = prepare_stack(job.frames, job.references, frame_range=job.frame_range, max_objects=None)
        yield from run_frames(stack, settings, as_model(model, precision=precision), cache=as_cache(cache))
        return
    choice = resolve_model(model, device=device, precision=precision or "fp32", download_progress=True)
    folder = None if cache is None else str(user_path(cache) if isinstance(cache, (str, Path)) else cache.folder)
    with EngineProcess() as engine:
        summary = yield from engine.run(
            job.frames, job.references, job.frame_range, settings, choice, cache_folder=folder
        )
    if summary.error:
        raise RuntimeError(f"P²SAM stopped: {summary.error}")


def as_cache(cache: EmbeddingCache | str | Path | None) -> EmbeddingCache | None:
    from .engine.cache import EmbeddingCache

    return cache if cache is None or isinstance(cache, EmbeddingCache) else EmbeddingCache(user_path(cache))
