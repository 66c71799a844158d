"""Similarity maps → point prompts and PerSAM's attention guidance.

Points are (x = column, y = row) in original pixels, everywhere. Maps are
taken to original resolution with exactly SAM's own upsampling chain (×4
bilinear, then ``postprocess_masks``), so argmax/argmin land on the same
pixels as in the authors' code, ties included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam

from .embeddings import ImageEmbedding

POSITIVE, NEGATIVE = 1, 0


@dataclass
class TargetMaps:
    """The target's L2-normalised features, ready for similarity maps.

    ``normalized``: ``(C, grid * grid)``; ``grid``: side of the feature grid.
    """

    normalized: torch.Tensor
    grid: int


def normalize_target(embedding: ImageEmbedding) -> TargetMaps:
    """L2-normalise each location of the target's features."""
    feats = embedding.features[0]
    channels, grid, _ = feats.shape
    normalized = feats / feats.norm(dim=0, keepdim=True)
    return TargetMaps(normalized.reshape(channels, grid * grid), grid)


def similarity_maps(sam: Sam, prototypes: torch.Tensor, target: TargetMaps, embedding: ImageEmbedding) -> torch.Tensor:
    """Cosine maps of ``prototypes`` ``(k, C)`` at original size: ``(1, k, H, W)``."""
    sim = (prototypes @ target.normalized).reshape(1, -1, target.grid, target.grid)
    sim = F.interpolate(sim, scale_factor=4, mode="bilinear")
    return sam.postprocess_masks(sim, embedding.input_size, embedding.original_size)


def peak_xy(sim_map: torch.Tensor, *, largest: bool = True) -> np.ndarray:
    """Pixel ``[[x, y]]`` of the maximum (or minimum) of a ``(H, W)`` map.

    Uses ``topk`` on the row-major flattening, as the authors do, so ties
    resolve to the same pixel.
    """
    index = int(sim_map.flatten().topk(1, largest=largest)[1][0])
    row, col = divmod(index, sim_map.shape[1])
    return np.array([[col, row]])


def positive_points(part_maps: torch.Tensor) -> np.ndarray:
    """One point per part: the argmax of each ``(1, k, H, W)`` map → ``(k, 2)``.

    For k = 1 the single map is the mean map, so this is its argmax too.
    """
    return np.concatenate([peak_xy(part_maps[0, c]) for c in range(part_maps.shape[1])])


def mean_map(part_maps: torch.Tensor) -> torch.Tensor:
    """Mean over parts of ``(1, k, H, W)`` maps → ``(H, W)``."""
    return part_maps.mean(1)[0]


def attention_bias(mean_sim: torch.Tensor, grid: int) -> torch.Tensor:
    """PerSAM's attention bias ``sigmoid(zscore(mean map))`` on the token grid.

    ``mean_sim``: ``(H, W)`` mean similarity at original size. Returns
    ``(1, 1, 1, grid * grid)``. As in PerSAM and the authors' code, the
    original-size map is stretched to the square grid (misaligned with SAM's
    padded frame for non-square images; kept by default for fidelity).
    A constant map (or a one-pixel image) has no z-score: its bias is 0.5
    everywhere instead of NaN.
    """
    if mean_sim.max() == mean_sim.min():
        z = torch.zeros_like(mean_sim)
    else:
        z = (mean_sim - mean_sim.mean()) / torch.std(mean_sim)
    z = F.interpolate(z[None, None], size=(grid, grid), mode="bilinear")
    return z.sigmoid().flatten(2)[None]
