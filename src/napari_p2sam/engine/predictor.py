"""The Python API: one reference, many targets.

Example
-------
>>> from napari_p2sam import P2SAM
>>> p2sam = P2SAM("sam_vit_b_01ec64.pth", preset="ct-follow-up")  # doctest: +SKIP
>>> p2sam.set_reference(ref_image, ref_mask)                       # doctest: +SKIP
>>> result = p2sam.segment(target_image)                           # doctest: +SKIP
>>> result.mask, result.points, result.labels, result.score, result.k  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..models.loading import SamModel, as_model
from .embeddings import ImageEmbedding, encode_image
from .objects import ReferenceInputError
from .pixels import image_key, to_rgb_uint8, warn_if_blank
from .reference import Reference, prepare_reference
from .segment import Segmentation, segment_embedding
from .settings import Settings, chosen_settings


class P2SAM:
    """Segment the object of one reference image in other images.

    Parameters
    ----------
    model : SamModel, str or Path
        A loaded model, or a SAM checkpoint path (architecture inferred).
    settings : Settings, optional
        Algorithm options; ``preset`` picks the authors' settings by name
        (``photos``, ``endoscopy-video``, ``ct-follow-up``, ``persam``).
    device : str, optional
        ``cuda``, ``mps`` or ``cpu`` (default: the fastest available).
    precision : str, optional
        ``fp32``, ``bf16`` or ``fp16``: the image encoder's number format
        (default: the loaded model's, else fp32; see :mod:`napari_p2sam.models.precision`).

    Images may be 2D grayscale, RGB or RGBA, of any dtype (see
    :func:`napari_p2sam.engine.pixels.to_rgb_uint8`).
    """

    def __init__(
        self,
        model: SamModel | str | Path,
        settings: Settings | None = None,
        *,
        preset: str | None = None,
        device: str | None = None,
        precision: str | None = None,
    ) -> None:
        self.settings = chosen_settings(settings, preset)
        self.model = as_model(model, device, precision)
        self.reference: Reference | None = None
        self._reference_image: tuple[str, ImageEmbedding] | None = None
        self._reference_mask: np.ndarray | None = None
        self._persam_mask: np.ndarray | None = None

    def encode(
        self, image: np.ndarray, *, limits: tuple[float, float] | None = None, name: str = "the image"
    ) -> ImageEmbedding:
        """Encode an image; the reference image's embedding is reused, never recomputed.

        An image SAM sees nothing in (all NaN, constant) is warned about, called ``name``.
        """
        rgb = to_rgb_uint8(image, limits=limits)
        key = image_key(rgb)
        if self._reference_image is not None and self._reference_image[0] == key:
            return self._reference_image[1]
        warn_if_blank(image, rgb, name)
        return encode_image(self.model, rgb)

    def set_reference(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        *,
        limits: tuple[float, float] | None = None,
        embedding: ImageEmbedding | None = None,
        persam_mask: np.ndarray | None = None,
    ) -> Reference:
        """Encode the reference and prepare its patches and part prototypes (once).

        ``mask``: ``(H, W)``, non-zero = object, the image's size.
        ``embedding``: the image's embedding if already computed (it is then
        not encoded again), e.g. shared between methods.
        ``persam_mask``: ``(H, W)`` uint8, the values PerSAM's patch rule reads
        (method ``persam`` only; default: the binarised mask as 0/255). To
        reproduce ``persam.py``, pass the mask file's channel 0 as it reads it.
        """
        image = np.asarray(image)
        mask = np.asarray(mask)
        if mask.shape[:2] != image.shape[:2]:
            raise ReferenceInputError(
                f"the reference mask is {mask.shape[0]}×{mask.shape[1]} but the reference image is "
                f"{image.shape[0]}×{image.shape[1]}; they must be the same size"
            )
        if persam_mask is not None and (persam_mask.shape != image.shape[:2] or persam_mask.dtype != np.uint8):
            raise ReferenceInputError(
                f"persam_mask must be {image.shape[0]}×{image.shape[1]} uint8, "
                f"got {persam_mask.shape} {persam_mask.dtype}"
            )
        if not np.nan_to_num(mask.astype(np.float64)).any():
            raise ReferenceInputError(
                "the reference mask is empty: paint the object (any non-zero value) on the reference frame"
            )
        rgb = to_rgb_uint8(image, limits=limits)
        if embedding is None:
            warn_if_blank(image, rgb, "the reference image")
            embedding = encode_image(self.model, rgb)
        self._reference_image = (image_key(rgb), embedding)
        self._reference_mask = mask
        self._persam_mask = persam_mask
        self._prepare_reference()
        return self.reference

    def _prepare_reference(self) -> None:
        assert self._reference_image is not None and self._reference_mask is not None
        self.reference = prepare_reference(
            self.model, self._reference_image[1], self._reference_mask, self.settings, self._persam_mask
        )

    def update_settings(self, settings: Settings | None = None, **changes) -> None:
        """Change settings; the reference's prototypes are recomputed, its encoding reused."""
        self.settings = replace(settings or self.settings, **changes)
        if self._reference_image is not None:
            self._prepare_reference()

    def segment_embedding(self, embedding: ImageEmbedding) -> Segmentation:
        """Segment an already encoded target."""
        if self.reference is None:
            raise ReferenceInputError("no reference yet: call set_reference(image, mask) first")
        return segment_embedding(self.model, self.reference, embedding, self.settings)

    def segment(self, image: np.ndarray, *, limits: tuple[float, float] | None = None) -> Segmentation:
        """Segment the reference's object in ``image``.

        Returns a :class:`Segmentation`: ``mask`` ``(H, W)`` bool, ``points``
        ``(N, 2)`` (x, y), ``labels``, ``score`` and the chosen ``k``.
        """
        if self.reference is None:
            raise ReferenceInputError("no reference yet: call set_reference(image, mask) first")
        start = time.perf_counter()
        embedding = self.encode(image, limits=limits)
        encoded = time.perf_counter()
        result = self.segment_embedding(embedding)
        result.timings["encoder"] = encoded - start
        return result
