"""Encode one image with SAM's image encoder, exactly as ``SamPredictor`` does.

The image is resized so its longest side is the encoder's input size (1024
for SAM), normalised, padded bottom/right to a square and encoded. The
result keeps the sizes needed to map between original pixels and the
padded frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide

from ..models.loading import SamModel


@dataclass(frozen=True)
class ImageEmbedding:
    """SAM's neck output for one image.

    ``features``: raw (not normalised) ``(1, 256, 64, 64)`` float32 tensor on
    the model's device. ``input_size``: (h, w) of the resized, unpadded image
    in the padded frame. ``original_size``: (H, W) of the image in pixels.
    """

    features: torch.Tensor
    input_size: tuple[int, int]
    original_size: tuple[int, int]


def resizer(model: SamModel) -> ResizeLongestSide:
    """The longest-side transform every image, mask, point and box goes through."""
    return ResizeLongestSide(model.sam.image_encoder.img_size)


def model_input(model: SamModel, image_rgb: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    """Resize, normalise and pad an ``(H, W, 3)`` uint8 image; returns ``(1, 3, S, S)`` and (h, w)."""
    resized = resizer(model).apply_image(image_rgb)
    x = torch.as_tensor(resized, device=model.device).permute(2, 0, 1).contiguous()[None].float()
    if model.normalization == "minmax":
        x = (x - x.min()) / torch.clamp(x.max() - x.min(), min=1e-8)
    else:
        x = (x - model.sam.pixel_mean) / model.sam.pixel_std
    size = model.sam.image_encoder.img_size
    h, w = resized.shape[:2]
    return F.pad(x, (0, size - w, 0, size - h)), (h, w)


def encode_image(model: SamModel, image_rgb: np.ndarray) -> ImageEmbedding:
    """Run the image encoder (in the model's precision) on an ``(H, W, 3)`` uint8 image."""
    return encode_images(model, [image_rgb])[0]


@torch.inference_mode()
def encode_images(model: SamModel, images_rgb: list[np.ndarray]) -> list[ImageEmbedding]:
    """Encode ``(H, W, 3)`` uint8 images; one embedding each, in order, as :func:`encode_image` gives it.

    On CUDA the images go through the encoder in one call. Elsewhere each has
    its own call: on the CPU a batched call changes the features' float
    rounding (seen with small SAMs), and results must stay bitwise those of
    one image at a time.
    """
    inputs = [model_input(model, image) for image in images_rgb]
    if model.device.type == "cuda":
        batch = model.encode(torch.cat([x for x, _ in inputs]))
        features = [batch[i : i + 1] for i in range(len(inputs))]
    else:
        features = [model.encode(x) for x, _ in inputs]
    return [
        ImageEmbedding(f, input_size, tuple(image.shape[:2]))
        for f, (_, input_size), image in zip(features, inputs, images_rgb)
    ]
