"""Everything P²SAM needs from the reference: done once per reference.

From the reference embedding and mask: the foreground patch features ``R``,
the background ones, the semantic prompt (mean of ``R``), and the
L2-normalised part prototypes for every k (k-means, ``random_state=0``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from ..models.loading import SamModel
from .embeddings import ImageEmbedding, resizer
from .objects import ReferenceInputError
from .pixels import ImageInputError, to_binary_mask
from .settings import Settings


def patch_mask(mask: np.ndarray, transform, img_size: int, grid: int) -> torch.Tensor:
    """Return the ``(grid, grid)`` bool map of reference patches (docs/algorithm.md §2.1).

    The 0/255 mask is resized like the image (longest side ``img_size``,
    bilinear), padded with 0 to ``img_size``², shifted by its midpoint
    ``(max + min) / 2`` and bilinearly resized to ``grid``²; patches whose value
    is ``> 0`` are foreground. This samples near patch centres, as the authors do.
    A uniform padded mask (all object) has no midpoint to cross: then every
    patch is foreground.
    """
    binary = to_binary_mask(mask).astype(np.uint8) * 255
    resized = torch.as_tensor(transform.apply_image(binary), dtype=torch.float32)
    padded = F.pad(resized, (0, img_size - resized.shape[1], 0, img_size - resized.shape[0]))
    low, high = padded.min(), padded.max()
    if low == high:
        return torch.full((grid, grid), bool(high > 0))
    centred = padded - (high + low) / 2.0
    coarse = F.interpolate(centred[None, None], size=(grid, grid), mode="bilinear")[0, 0]
    return coarse > 0


def persam_patch_mask(values: np.ndarray, transform, img_size: int, grid: int, mean: float, std: float) -> torch.Tensor:
    """Return PerSAM's ``(grid, grid)`` bool map of reference patches (docs/algorithm.md §2.2).

    ``values``: ``(H, W)`` uint8. They take the image's own path: resized like
    the image (longest side ``img_size``, bilinear), normalised as SAM's red
    channel ``(v - mean) / std``, padded with 0 *after* normalising (so padding
    is neutral) and bilinearly resized to ``grid``²; patches whose value is
    ``> 0`` are foreground, i.e. where the resampled value exceeds ``mean``
    (123.675 for SAM). Each patch samples the 2×2 resized pixels at its
    centre: a 0/255 mask needs about half of them, PerSeg's 0/128 masks all.
    """
    resized = torch.as_tensor(transform.apply_image(values), dtype=torch.float32)
    normalized = (resized - mean) / std
    padded = F.pad(normalized, (0, img_size - resized.shape[1], 0, img_size - resized.shape[0]))
    coarse = F.interpolate(padded[None, None], size=(grid, grid), mode="bilinear")[0, 0]
    return coarse > 0


def part_prototypes(features: torch.Tensor, k: int) -> torch.Tensor:
    """L2-normalised prototypes ``(k, C)`` of ``features`` ``(N, C)``.

    k = 1: the normalised mean. k > 1: k-means (``random_state=0``,
    ``n_init=10`` as in the paper's scikit-learn), each prototype the
    normalised mean of its members.
    """
    if k == 1:
        mean = features.mean(0, keepdim=True)
        return mean / mean.norm(dim=-1, keepdim=True)
    with warnings.catch_warnings():
        # fewer distinct features than k (a flat image): said in our words where the image is read
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters=k, random_state=0, n_init=10).fit_predict(features.cpu().numpy())
    labels = torch.from_numpy(labels).to(features.device)
    protos = torch.stack([features[labels == c].mean(0) for c in range(k)])
    return protos / protos.norm(dim=-1, keepdim=True)


@dataclass
class Reference:
    """Per-reference state, shared by every target.

    ``foreground``: ``(N_r, C)`` raw features of the object's patches.
    ``semantic_prompt``: ``(1, 1, C)`` mean of ``foreground``.
    ``parts``: k → ``(k, C)`` prototypes, for every usable k in the range.
    ``background_parts``: n → ``(n, C)`` prototypes of the other patches
    (medical variant only; empty otherwise).
    """

    foreground: torch.Tensor
    semantic_prompt: torch.Tensor
    parts: dict[int, torch.Tensor]
    background_parts: dict[int, torch.Tensor] = field(default_factory=dict)
    skipped_parts: tuple[int, ...] = ()


def build_reference(
    embedding: ImageEmbedding,
    mask: np.ndarray,
    *,
    transform,
    img_size: int,
    parts: tuple[int, int],
    background_parts: tuple[int, int] | None = None,
    patches: torch.Tensor | None = None,
) -> Reference:
    """Prepare a :class:`Reference` from an encoded image and its mask.

    ``mask``: ``(H, W)`` non-zero = object, the size of the encoded image.
    ``patches``: the ``(grid, grid)`` bool map of the object's patches when
    another rule chose them (PerSAM's); default: :func:`patch_mask` of the mask.
    k values above the number of object patches cannot be clustered and are
    skipped (listed in ``skipped_parts``). A mask too small to cover any patch
    centre uses the single patch where the resized mask is strongest.
    """
    mask = np.asarray(mask)
    if mask.shape[:2] != tuple(embedding.original_size):
        raise ReferenceInputError(
            f"the reference mask is {mask.shape[0]}×{mask.shape[1]} but its image is "
            f"{embedding.original_size[0]}×{embedding.original_size[1]}; paint the mask on the reference image itself"
        )
    try:
        binary = to_binary_mask(mask)
    except ImageInputError as err:
        raise ReferenceInputError(str(err)) from None
    if not binary.any():
        raise ReferenceInputError(
            "the reference mask is empty: paint the object (any non-zero value) on the reference frame"
        )
    feats = embedding.features[0].permute(1, 2, 0)  # (grid, grid, C)
    grid = feats.shape[0]
    if patches is None:
        patches = patch_mask(binary, transform, img_size, grid)
    selected = patches.to(feats.device)
    if not selected.any():
        selected = _strongest_patch(binary, transform, img_size, grid).to(feats.device)
    foreground = feats[selected]
    k_values = range(parts[0], parts[1] + 1)
    usable = [k for k in k_values if k <= foreground.shape[0]]
    reference = Reference(
        foreground=foreground,
        semantic_prompt=foreground.mean(0)[None, None],
        parts={k: part_prototypes(foreground, k) for k in usable},
        skipped_parts=tuple(k for k in k_values if k not in usable),
    )
    if background_parts is not None:
        background = feats[~selected]
        reference.background_parts = {
            n: part_prototypes(background, n)
            for n in range(background_parts[0], background_parts[1] + 1)
            if 0 < n <= background.shape[0]
        }
    return reference


def persam_patches(model: SamModel, embedding: ImageEmbedding, values: np.ndarray) -> torch.Tensor:
    """PerSAM's ``(grid, grid)`` object patches from the ``(H, W)`` uint8 ``values`` it reads."""
    return persam_patch_mask(
        values,
        resizer(model),
        model.sam.image_encoder.img_size,
        embedding.features.shape[-1],
        float(model.sam.pixel_mean[0]),
        float(model.sam.pixel_std[0]),
    )


def prepare_reference(
    model: SamModel,
    embedding: ImageEmbedding,
    mask: np.ndarray,
    settings: Settings,
    persam_mask: np.ndarray | None = None,
) -> Reference:
    """Build the reference for ``settings``; :class:`ReferenceInputError` if no part count fits the object.

    Method ``persam`` chooses the object's patches by PerSAM's rule on
    ``persam_mask`` (``(H, W)`` uint8), by default the binarised mask as 0/255;
    P²SAM uses the midpoint rule on the binarised mask.
    """
    patches = None
    if settings.method == "persam":
        if persam_mask is None:
            persam_mask = to_binary_mask(mask).astype(np.uint8) * 255
        patches = persam_patches(model, embedding, persam_mask)
    reference = build_reference(
        embedding,
        mask,
        transform=resizer(model),
        img_size=model.sam.image_encoder.img_size,
        parts=settings.part_range,
        background_parts=settings.background_parts if settings.uses_background_parts else None,
        patches=patches,
    )
    if not reference.parts:
        raise ReferenceInputError(
            f"the object covers only {reference.foreground.shape[0]} feature patches (16×16 px of SAM's "
            f"1024-px frame), fewer than the smallest part count {settings.part_range[0]}; lower the parts range"
        )
    return reference


def _strongest_patch(binary: np.ndarray, transform, img_size: int, grid: int) -> torch.Tensor:
    """The one patch where the area-averaged mask is largest (for masks below patch size)."""
    resized = torch.as_tensor(transform.apply_image(binary.astype(np.uint8) * 255), dtype=torch.float32)
    padded = F.pad(resized, (0, img_size - resized.shape[1], 0, img_size - resized.shape[0]))
    pooled = F.adaptive_avg_pool2d(padded[None, None], (grid, grid))[0, 0]
    selected = torch.zeros(grid * grid, dtype=torch.bool)
    selected[pooled.flatten().argmax()] = True
    return selected.reshape(grid, grid)
