"""Tiny synthetic evaluation datasets written to disk (PerSeg, CVC-ClinicDB, plain folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def scene(seed: int, size: tuple[int, int] = (24, 32)) -> tuple[np.ndarray, np.ndarray]:
    """A noisy RGB image with a bright square object, and its 0/255 mask."""
    rng = np.random.default_rng(seed)
    h, w = size
    image = rng.integers(0, 90, (h, w, 3), dtype=np.uint8)
    top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
    mask = np.zeros((h, w), np.uint8)
    mask[top : top + h // 3, left : left + w // 3] = 255
    image[mask > 0] = (220, 180, 60)
    return image, mask


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_perseg(root: Path, objects: dict[str, int], size: tuple[int, int] = (24, 32)) -> Path:
    """``objects``: name → image count (00, 01, …); masks as 0/255 PNG."""
    for o, (name, count) in enumerate(objects.items()):
        for i in range(count):
            image, mask = scene(100 * o + i, size)
            Image.fromarray(image).save(_parent(root / "Images" / name / f"{i:02d}.jpg"), quality=95)
            write_png(root / "Annotations" / name / f"{i:02d}.png", mask)
    return root


def make_cvc(root: Path, count: int = 612, size: tuple[int, int] = (16, 16)) -> Path:
    """``count`` frames named 1.tif … count.tif, RGB images and 0/255 gray masks."""
    _parent(root / "Original" / "x")
    _parent(root / "Ground Truth" / "x")
    for n in range(1, count + 1):
        image, mask = scene(n, size)
        tifffile.imwrite(root / "Original" / f"{n}.tif", image, photometric="rgb")
        tifffile.imwrite(root / "Ground Truth" / f"{n}.tif", mask)
    return root


def make_folder(root: Path, names: list[str], size: tuple[int, int] = (24, 32)) -> tuple[Path, Path]:
    """IMAGES and MASKS folders with one PNG pair per name."""
    for i, name in enumerate(names):
        image, mask = scene(i, size)
        write_png(root / "images" / f"{name}.png", image)
        write_png(root / "masks" / f"{name}.png", mask)
    return root / "images", root / "masks"


def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
