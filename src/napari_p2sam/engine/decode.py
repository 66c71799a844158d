"""The three-stage decoder cascade, every candidate of a stage in one call.

Stage 1: points (+ guidance), single mask. Stage 2: points + stage-1 logits
as mask input. Stage 3: points + box of the stage-2 mask (skipped when that
mask is empty) + stage-2 logits. Stages 2 and 3 keep the mask with the best
predicted IoU of SAM's three outputs (natural variant) or its single-mask
output (medical variant).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ..models.guidance import Guidance, decode
from ..models.loading import SamModel
from .embeddings import ImageEmbedding, resizer


@dataclass
class Prompt:
    """One candidate's point prompt: ``points`` ``(N, 2)`` (x, y) in original pixels, ``labels`` ``(N,)``."""

    points: np.ndarray
    labels: np.ndarray


@dataclass
class CascadeResult:
    """Per candidate: final low-res logits ``(B, 256, 256)`` in the padded frame and the stage-2 boxes."""

    logits: torch.Tensor
    boxes: list[np.ndarray | None]


def embed_prompts(
    model: SamModel,
    embedding: ImageEmbedding,
    prompts: list[Prompt],
    mask_inputs: torch.Tensor | None,
    boxes: list[np.ndarray | None] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Prompt-encode each candidate; pad to one batch.

    Returns sparse ``(B, N_max, C)``, dense ``(B, C, g, g)`` (``(1, C, g, g)``
    without mask inputs: the same for all) and the token mask ``(B, N_max)``
    (None when no candidate needed padding).
    """
    transform = resizer(model)
    encoder = model.sam.prompt_encoder
    device = model.device
    sparse, dense = [], []
    for i, prompt in enumerate(prompts):
        coords = transform.apply_coords(prompt.points, embedding.original_size)
        points = (
            torch.as_tensor(coords, dtype=torch.float, device=device)[None],
            torch.as_tensor(prompt.labels, dtype=torch.int, device=device)[None],
        )
        box = None
        if boxes is not None and boxes[i] is not None:
            box = torch.as_tensor(
                transform.apply_boxes(boxes[i][None], embedding.original_size), dtype=torch.float, device=device
            )
        mask = None if mask_inputs is None else mask_inputs[i : i + 1, None]
        s, d = encoder(points=points, boxes=box, masks=mask)
        sparse.append(s[0])
        dense.append(d)
    lengths = [s.shape[0] for s in sparse]
    padded = pad_sequence(sparse, batch_first=True)
    valid = None
    if len(set(lengths)) > 1:
        valid = torch.arange(padded.shape[1], device=device)[None] < torch.tensor(lengths, device=device)[:, None]
    # Without mask inputs every candidate has SAM's same "no mask" embedding:
    # one copy lets the decoder project the image tokens once for the batch.
    return padded, (torch.cat(dense) if mask_inputs is not None else dense[0]), valid


def decoder_call(
    model: SamModel,
    embedding: ImageEmbedding,
    prompts: list[Prompt],
    *,
    mask_inputs: torch.Tensor | None = None,
    boxes: list[np.ndarray | None] | None = None,
    multimask: bool = False,
    guidance: Guidance | None = None,
    image_pe: torch.Tensor | None = None,
) -> torch.Tensor:
    """One batched decoder call; returns the kept low-res logits ``(B, 256, 256)``.

    ``multimask``: keep the best-IoU mask of SAM's three outputs, else the
    single-mask output. ``image_pe``: the prompt encoder's dense positional
    encoding ``(1, C, g, g)`` if already computed.
    """
    sparse, dense, valid = embed_prompts(model, embedding, prompts, mask_inputs, boxes)
    logits, iou = decode(
        model.sam.mask_decoder,
        embedding.features,
        model.sam.prompt_encoder.get_dense_pe() if image_pe is None else image_pe,
        sparse,
        dense,
        token_valid=valid,
        guidance=guidance,
    )
    if not multimask:
        return logits[:, 0]
    best = iou[:, 1:].argmax(dim=1) + 1
    return logits[torch.arange(len(prompts)), best]


def to_original(model: SamModel, embedding: ImageEmbedding, logits: torch.Tensor) -> torch.Tensor:
    """Low-res logits ``(B, 256, 256)`` → bool masks ``(B, H, W)`` at original size."""
    full = model.sam.postprocess_masks(logits[:, None], embedding.input_size, embedding.original_size)
    return full[:, 0] > model.sam.mask_threshold


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """Bounding box ``[x_min, y_min, x_max, y_max]`` of a ``(H, W)`` mask, None if empty."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    return np.array([cols.min(), rows.min(), cols.max(), rows.max()])


@torch.inference_mode()
def cascade(
    model: SamModel,
    embedding: ImageEmbedding,
    prompts: list[Prompt],
    *,
    multimask: bool,
    guidance: Guidance | None,
) -> CascadeResult:
    """Run the three stages for all candidates of one target."""
    pe = model.sam.prompt_encoder.get_dense_pe()  # 3 sin/cos maps of 64×64×128: once, not per stage
    stage1 = decoder_call(model, embedding, prompts, multimask=False, guidance=guidance, image_pe=pe)
    stage2 = decoder_call(model, embedding, prompts, mask_inputs=stage1, multimask=multimask, image_pe=pe)
    stage2_masks = to_original(model, embedding, stage2).cpu().numpy()
    boxes = [mask_box(m) for m in stage2_masks]
    stage3 = decoder_call(model, embedding, prompts, mask_inputs=stage2, boxes=boxes, multimask=multimask, image_pe=pe)
    return CascadeResult(stage3, boxes)
