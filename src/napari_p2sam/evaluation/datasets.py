"""Find the frames of an evaluation dataset and read its ground-truth masks.

Three layouts, each turned into :class:`Sequence` objects (one reference
frame and the frames scored against it):

- **PerSeg**: ``Images/<object>/NN.jpg`` and ``Annotations/<object>/NN.png``;
  image ``00`` is each object's reference and is not scored.
- **CVC-ClinicDB** as distributed: ``Original/<n>.tif`` and
  ``Ground Truth/<n>.tif``, 612 frames sorted by their number ``n``, split
  into the 29 videos of :data:`CVC_VIDEOS`; each video's 3rd frame is its
  reference and its first three frames are not scored.
- **folder**: any images in IMAGES with a mask of the same file name (any
  image extension) in MASKS, in natural order (``2`` before ``10``), with a
  reference frame chosen by index.

Ground-truth masks (:func:`read_mask`): a colour mask becomes gray as
OpenCV's ``BGR2GRAY`` does (ITU-R 601 luma, rounded; alpha ignored), as in
the authors' evaluation; a pixel is object when its gray value is above a
threshold, 0 by default, which is the published rule (any non-zero pixel).
A mask is *binary* when its non-zero pixels all have one value; masks that
are not (JPEG artefacts, soft edges, several labels) are reported by
:func:`check`, and a higher threshold (e.g. 127 for 8-bit) can be chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.sources import image_size, natural_key
from ..io.images import TIFF_SUFFIXES, read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", *TIFF_SUFFIXES)
PERSEG_REFERENCE = "00"

CVC_FRAME_COUNT = 612
CVC_VIDEOS: tuple[tuple[int, int], ...] = (
    (0, 25), (25, 50), (50, 67), (67, 78), (78, 103), (103, 126), (126, 151), (151, 177),
    (177, 199), (199, 205), (205, 227), (227, 252), (252, 277), (277, 297), (297, 317),
    (317, 342), (342, 363), (363, 383), (383, 408), (408, 428), (428, 447), (447, 466),
    (466, 478), (478, 503), (503, 528), (528, 546), (546, 571), (571, 591), (591, 612),
)  # fmt: skip
"""The 29 videos of CVC-ClinicDB: 0-based, half-open ranges of the frames sorted by number."""
CVC_REFERENCE_OFFSET = 2
"""Each video's reference is its 3rd frame."""
CVC_UNSCORED = 3
"""Each video's first three frames (the reference included) are not scored."""

SHOWN_PROBLEMS = 5


class DatasetError(ValueError):
    """A dataset folder that cannot be evaluated, with what to fix."""


@dataclass(frozen=True)
class Frame:
    """One image and its ground-truth mask; ``name`` names the saved prediction."""

    name: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class Sequence:
    """One reference frame and the frames scored against it, in order.

    ``unscored``: frames of the sequence that are neither reference nor
    scored (CVC-ClinicDB's first two frames of each video).
    """

    name: str
    reference: Frame
    targets: tuple[Frame, ...]
    unscored: tuple[Frame, ...] = ()


def image_files(folder: Path) -> list[Path]:
    """Image files of ``folder`` (hidden files skipped), in natural order of their names."""
    files = [
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def _require_folder(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DatasetError(f"{path} is not a folder; {what}")


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN_PROBLEMS])
    return shown + (f" and {len(items) - SHOWN_PROBLEMS} more" if len(items) > SHOWN_PROBLEMS else "")


def _raise_missing_masks(missing: list[str], hint: str) -> None:
    if missing:
        raise DatasetError(f"no ground-truth mask for {len(missing)} image(s): {_listing(missing)}; {hint}")


# ---------------------------------------------------------------- PerSeg

PERSEG_LAYOUT = "a PerSeg folder holds Images/<object>/NN.jpg and Annotations/<object>/NN.png"


def perseg(root: Path) -> list[Sequence]:
    """One sequence per object folder of ``root/Images``, reference ``00``, sorted by object name."""
    images_root, masks_root = Path(root) / "Images", Path(root) / "Annotations"
    _require_folder(images_root, PERSEG_LAYOUT)
    _require_folder(masks_root, PERSEG_LAYOUT)
    objects = sorted(p for p in images_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not objects:
        raise DatasetError(f"no object folders in {images_root}; {PERSEG_LAYOUT}")
    sequences, missing = [], []
    for folder in objects:
        frames = []
        for image in image_files(folder):
            mask = masks_root / folder.name / f"{image.stem}.png"
            if not mask.is_file():
                missing.append(f"{folder.name}/{image.name} (expected {mask})")
            frames.append(Frame(image.stem, image, mask))
        reference = [f for f in frames if f.name == PERSEG_REFERENCE]
        if not reference:
            raise DatasetError(f"object {folder.name!r} has no reference image {PERSEG_REFERENCE}.jpg in {folder}")
        targets = tuple(f for f in frames if f.name != PERSEG_REFERENCE)
        if not targets:
            raise DatasetError(f"object {folder.name!r} has only its reference image: nothing to score")
        sequences.append(Sequence(folder.name, reference[0], targets))
    _raise_missing_masks(missing, "every image needs Annotations/<object>/<same name>.png")
    return sequences


# ---------------------------------------------------------------- CVC-ClinicDB

CVC_LAYOUT = "a CVC-ClinicDB folder holds Original/<n>.tif and 'Ground Truth'/<n>.tif, n = 1..612"


def numbered_tiffs(folder: Path) -> dict[int, Path]:
    """``{n: path}`` of the ``<n>.tif`` files in ``folder``."""
    _require_folder(folder, CVC_LAYOUT)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES]
    unnumbered = [p.name for p in files if not p.stem.isdigit()]
    if unnumbered:
        raise DatasetError(f"{folder} has TIFF files not named by frame number: {_listing(unnumbered)}; {CVC_LAYOUT}")
    return {int(p.stem): p for p in files}


def cvc_videos(frame_count: int = CVC_FRAME_COUNT) -> list[range]:
    """The 29 videos as ranges of 0-based frame positions; only defined for 612 frames."""
    if frame_count != CVC_FRAME_COUNT:
        raise DatasetError(
            f"found {frame_count} frames, but the published CVC-ClinicDB split into 29 videos needs all "
            f"{CVC_FRAME_COUNT}; for another sequence use: napari-p2sam eval folder IMAGES MASKS --reference-frame N"
        )
    return [range(start, stop) for start, stop in CVC_VIDEOS]


def cvc(root: Path, videos: list[int] | None = None) -> list[Sequence]:
    """One sequence per video (``video_01`` … ``video_29``); ``videos``: 1-based numbers to keep (default all)."""
    images = numbered_tiffs(Path(root) / "Original")
    masks = numbered_tiffs(Path(root) / "Ground Truth")
    if not images:
        raise DatasetError(f"no .tif images in {Path(root) / 'Original'}; {CVC_LAYOUT}")
    _raise_missing_masks(
        [f"Original/{images[n].name}" for n in sorted(images) if n not in masks],
        "every Original/<n>.tif needs 'Ground Truth'/<n>.tif",
    )
    ranges = cvc_videos(len(images))
    chosen = videos or list(range(1, len(ranges) + 1))
    wrong = [str(v) for v in chosen if not 1 <= v <= len(ranges)]
    if wrong:
        raise DatasetError(f"no video {', '.join(wrong)}: CVC-ClinicDB's videos are numbered 1..{len(ranges)}")
    numbers = sorted(images)
    sequences = []
    for video in sorted(set(chosen)):
        frames = [Frame(str(numbers[i]), images[numbers[i]], masks[numbers[i]]) for i in ranges[video - 1]]
        sequences.append(
            Sequence(
                f"video_{video:02d}",
                reference=frames[CVC_REFERENCE_OFFSET],
                targets=tuple(frames[CVC_UNSCORED:]),
                unscored=tuple(frames[:CVC_REFERENCE_OFFSET]),
            )
        )
    return sequences


# ---------------------------------------------------------------- any folder


def folder(images: Path, masks: Path, reference_frame: int = 0) -> list[Sequence]:
    """One sequence: every image of ``images`` (natural order) with the same-named mask in ``masks``."""
    images, masks = Path(images), Path(masks)
    _require_folder(images, "IMAGES must be a folder of images")
    _require_folder(masks, "MASKS must be a folder of masks named like the images")
    files = image_files(images)
    if not files:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images}")
    by_stem: dict[str, list[Path]] = {}
    for mask in image_files(masks):
        by_stem.setdefault(mask.stem, []).append(mask)
    ambiguous = [f"{stem} ({', '.join(p.name for p in paths)})" for stem, paths in by_stem.items() if len(paths) > 1]
    if ambiguous:
        raise DatasetError(f"several masks share a name in {masks}: {_listing(ambiguous)}; keep one per image")
    _raise_missing_masks(
        [p.name for p in files if p.stem not in by_stem],
        f"every image needs a mask of the same name (any image extension) in {masks}",
    )
    if not 0 <= reference_frame < len(files):
        raise DatasetError(
            f"--reference-frame {reference_frame} is out of range: "
            f"{images} has {len(files)} images (0..{len(files) - 1})"
        )
    frames = [Frame(p.stem, p, by_stem[p.stem][0]) for p in files]
    targets = tuple(f for i, f in enumerate(frames) if i != reference_frame)
    if not targets:
        raise DatasetError(f"{images} holds only the reference image: nothing to score")
    return [Sequence(folder_name(images), frames[reference_frame], targets)]


def folder_name(path: Path) -> str:
    """The name of the folder ``path`` leads to: ``images/sub/..`` and ``.`` are named like the folder itself."""
    return path.resolve().name


# ---------------------------------------------------------------- masks


def gray_levels(mask: np.ndarray) -> np.ndarray:
    """A ``(H, W)`` gray version of a mask: colour via OpenCV's ITU-R 601 luma, NaN as 0."""
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        mask = mask.astype(np.uint8)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    elif mask.ndim == 3 and mask.shape[2] in (3, 4):
        r, g, b = (mask[..., c] for c in range(3))
        if mask.dtype == np.uint8:  # OpenCV's fixed-point rounding, bit for bit
            mask = (
                (r.astype(np.uint32) * 4899 + g.astype(np.uint32) * 9617 + b.astype(np.uint32) * 1868 + 8192) >> 14
            ).astype(np.uint8)
        else:
            mask = np.rint(0.299 * r.astype(np.float64) + 0.587 * g + 0.114 * b)
    if mask.ndim != 2:
        raise DatasetError(f"a mask must be a 2D gray or colour image, got shape {mask.shape}")
    return np.nan_to_num(mask, nan=0) if np.issubdtype(mask.dtype, np.floating) else mask


def is_binary(gray: np.ndarray) -> bool:
    """True when all non-zero pixels share one value (0/255, 0/1, one colour)."""
    values = gray[gray != 0]
    return values.size == 0 or bool((values == values.flat[0]).all())


def read_mask(path: Path, threshold: float = 0) -> np.ndarray:
    """The ground truth at ``path`` as a ``(H, W)`` bool mask: gray value > ``threshold``."""
    return gray_levels(read_image(path)) > threshold


def persam_mask_values(path: Path) -> np.ndarray:
    """The ``(H, W)`` uint8 values PerSAM's patch rule reads from a mask file.

    Channel 0 as ``persam.py`` reads it (OpenCV, then BGR→RGB): red for a colour
    or palette file (PerSeg's masks: 128), the gray value for a gray one
    (255 for a 1-bit file).
    """
    mask = read_image(path)
    if mask.dtype == np.bool_:
        mask = mask.astype(np.uint8) * 255
    if mask.dtype != np.uint8:
        raise DatasetError(f"{path} is {mask.dtype}; PerSAM's reference rule reads 8-bit masks")
    return mask if mask.ndim == 2 else mask[..., 0]


def check(sequences: list[Sequence], threshold: float = 0) -> list[Path]:
    """Read every mask once, before any work: sizes must match their images and
    references must hold the object. Returns the masks that are not binary."""
    wrong_size, empty_reference, not_binary = [], [], []
    for sequence in sequences:
        for frame in (sequence.reference, *sequence.targets):
            gray = gray_levels(read_image(frame.mask))
            size = image_size(frame.image)
            if gray.shape != size:
                wrong_size.append(
                    f"{frame.mask} is {gray.shape[0]}×{gray.shape[1]} but {frame.image.name} is {size[0]}×{size[1]}"
                )
            if not is_binary(gray):
                not_binary.append(frame.mask)
            if frame is sequence.reference and not (gray > threshold).any():
                empty_reference.append(str(frame.mask))
    if wrong_size:
        raise DatasetError(f"{len(wrong_size)} mask(s) differ in size from their image: {_listing(wrong_size)}")
    if empty_reference:
        raise DatasetError(
            f"reference mask(s) with no object pixel above the threshold {threshold:g}: {_listing(empty_reference)}"
        )
    return not_binary
