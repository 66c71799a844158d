"""Turn any 2D image into the 8-bit RGB that SAM takes.

SAM (and the P²SAM authors) feed 8-bit RGB as it is, so ``uint8`` passes
through unchanged and ``uint8`` grayscale is repeated into three channels.
Every other type (uint16, signed, float, bool) is mapped to ``uint8`` by one
rule, :func:`intensity_to_uint8`: a linear stretch between two percentiles
(0.5 and 99.5 by default), NaN ignored and drawn as 0. Stacks pass their
own percentile limits so that every frame shares one mapping.

An image that becomes one flat colour (all NaN, constant, or flattened by
the mapping) shows SAM nothing: :func:`warn_if_blank` says so, in words.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

DEFAULT_PERCENTILES = (0.5, 99.5)


class ImageInputError(ValueError):
    """An image the engine cannot use, with a message saying what to do."""


class BlankImageWarning(UserWarning):
    """An image SAM sees as one flat colour: masks found with it mean nothing."""


def intensity_limits(values: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> tuple[float, float]:
    """Return the (low, high) intensities at ``percentiles``, NaN ignored.

    Returns (0, 0) when no finite value exists.
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 0.0
    low, high = np.percentile(finite, percentiles)
    return float(low), float(high)


def intensity_to_uint8(image: np.ndarray, limits: tuple[float, float] | None = None) -> np.ndarray:
    """Stretch ``image`` linearly so ``limits`` map to 0 and 255; NaN becomes 0.

    ``limits`` defaults to the image's own 0.5–99.5 percentiles. A constant
    image maps to 0.
    """
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    low, high = intensity_limits(image) if limits is None else limits
    values = np.asarray(image, dtype=np.float64)
    values = np.where(np.isfinite(values), values, low)  # NaN and ±inf become 0, never inf × 0
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.round(np.clip((values - low) * scale, 0, 255)).astype(np.uint8)


def to_rgb_uint8(
    image: np.ndarray,
    *,
    channel: int | None = None,
    limits: tuple[float, float] | None = None,
) -> np.ndarray:
    """Return ``image`` as an ``(H, W, 3)`` uint8 array for SAM.

    Accepts ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` and ``(H, W, 4)`` (alpha
    dropped). Other channel counts need ``channel``: the index of the channel
    to use as grayscale. ``limits`` fixes the intensity mapping for non-uint8
    input (see :func:`intensity_to_uint8`).
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ImageInputError(
            f"expected one 2D image (H, W) or (H, W, C), got shape {image.shape}; "
            "pass a single frame, or use a stack function for stacks"
        )
    if image.ndim == 3:
        channels = image.shape[2]
        if channel is not None:
            if not 0 <= channel < channels:
                raise ImageInputError(f"channel {channel} does not exist: the image has {channels} channels")
            image = image[..., channel]
        elif channels == 1:
            image = image[..., 0]
        elif channels == 4:
            image = image[..., :3]
        elif channels != 3:
            raise ImageInputError(
                f"the image has {channels} channels; choose one with channel=N (0..{channels - 1}), "
                "since SAM takes grayscale or RGB"
            )
    if min(image.shape[:2]) < 1:
        raise ImageInputError(f"the image is empty (shape {image.shape})")
    if image.dtype != np.uint8:
        image = intensity_to_uint8(image, limits)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image)


def blank_image_note(image: np.ndarray, rgb: np.ndarray) -> str | None:
    """Why SAM sees nothing in ``image`` (its ``rgb`` is one flat colour), in words; None when it shows something."""
    if not (rgb == rgb[:1, :1]).all():
        return None
    values = np.asarray(image)
    if values.dtype.kind in "fc" and not np.isfinite(values).any():
        return "has no finite pixel (all are NaN or infinite)"
    first = values.reshape(-1, *values.shape[2:])[0]
    if (values == first).all():
        return f"is constant (all pixels {_pixel_words(first)})"
    return "becomes one flat colour under the intensity mapping"


def _pixel_words(pixel: np.ndarray) -> str:
    numbers = [f"{v:g}" if isinstance(v, float) else str(v) for v in np.ravel(pixel).tolist()]
    return numbers[0] if len(numbers) == 1 else f"({', '.join(numbers)})"


def warn_if_blank(image: np.ndarray, rgb: np.ndarray, name: str) -> None:
    """One :class:`BlankImageWarning` naming ``name`` when SAM sees nothing in ``image`` (see :func:`blank_image_note`)."""
    warn_blank(name, blank_image_note(image, rgb), stacklevel=4)


def warn_blank(name: str, note: str | None, *, stacklevel: int = 3) -> None:
    """One :class:`BlankImageWarning` naming ``name`` when :func:`blank_image_note` gave a ``note``."""
    if note is not None:
        warnings.warn(
            f"{name} {note}: SAM sees nothing in it, so masks found with it mean nothing",
            BlankImageWarning,
            stacklevel=stacklevel,
        )


def to_binary_mask(mask: np.ndarray) -> np.ndarray:
    """Return a ``(H, W)`` bool mask: non-zero (and not NaN) pixels are the object.

    A colour mask ``(H, W, C)`` uses its first channel, as the authors' code does.
    """
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ImageInputError(f"a reference mask must be 2D (H, W), got shape {mask.shape}")
    if np.issubdtype(mask.dtype, np.floating):
        return np.nan_to_num(mask, nan=0.0) != 0
    return mask != 0


def image_key(image_rgb: np.ndarray) -> str:
    """Content hash of an ``(H, W, 3)`` uint8 image (shape included)."""
    digest = hashlib.blake2b(image_rgb.tobytes(), digest_size=16)
    digest.update(repr(image_rgb.shape).encode())
    return digest.hexdigest()
