"""Named models: where each official checkpoint lives and how to recognise it.

Every entry's sha256 was published by the model's authors or by a project
that downloads the same file (see ``docs/models.md`` for each source); a
download is used only if its sha256 matches. All files are plain state dicts
of segment-anything's ``Sam`` (vit_t: MobileSAM's TinyViT image encoder with
segment-anything's prompt encoder and mask decoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..io.paths import user_path


@dataclass(frozen=True)
class ModelInfo:
    """One downloadable checkpoint.

    ``name``: what users type (``vit_b``). ``file_name``: the upstream file
    name, which is also the name in the cache folder. ``size_mb``: about
    how large the file is (10^6 bytes). ``normalization``: the input
    normalisation the model was trained with (``"sam"`` or ``"minmax"``).
    ``data`` and ``hardware``: which images and which device it suits.
    """

    name: str
    title: str
    url: str
    sha256: str
    file_name: str
    size_mb: int
    normalization: str
    data: str
    hardware: str


MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo(
            name="vit_t",
            title="MobileSAM (TinyViT)",
            url="https://raw.githubusercontent.com/ChaoningZhang/MobileSAM/"
            "a509aac54fdd7af59f843135f2f7cee307283c88/weights/mobile_sam.pt",
            sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
            file_name="mobile_sam.pt",
            size_mb=41,
            normalization="sam",
            data="photos and general images; SAM ViT-H distilled into a small encoder",
            hardware="fast on CPU: the laptop choice",
        ),
        ModelInfo(
            name="vit_b",
            title="SAM ViT-B",
            url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
            sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            file_name="sam_vit_b_01ec64.pth",
            size_mb=375,
            normalization="sam",
            data="photos and general images",
            hardware="CPU (seconds per frame) or GPU",
        ),
        ModelInfo(
            name="vit_l",
            title="SAM ViT-L",
            url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
            sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            file_name="sam_vit_l_0b3195.pth",
            size_mb=1250,
            normalization="sam",
            data="photos and general images; more accurate than ViT-B",
            hardware="GPU recommended",
        ),
        ModelInfo(
            name="vit_h",
            title="SAM ViT-H",
            url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
            sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            file_name="sam_vit_h_4b8939.pth",
            size_mb=2565,
            normalization="sam",
            data="photos and general images; the most accurate SAM",
            hardware="GPU",
        ),
        ModelInfo(
            name="medsam_vit_b",
            title="MedSAM (ViT-B)",
            url="https://zenodo.org/records/10689643/files/medsam_vit_b.pth?download=1",
            sha256="34b34b78c1d18cb8c6bf84cf9c00e135d6d6c965699f3c0e31ef1bc9dcb5be74",
            file_name="medsam_vit_b.pth",
            size_mb=375,
            normalization="minmax",
            data="medical scans (CT, MR, X-ray, ultrasound, endoscopy); inputs min-max normalised",
            hardware="CPU (seconds per frame) or GPU",
        ),
        ModelInfo(
            name="vit_b_lm",
            title="micro-sam light microscopy (ViT-B)",
            url="https://zenodo.org/records/10524791/files/vit_b_lm.pth?download=1",
            sha256="e8f5feb1ad837a7507935409c7f83f7c8af11c6e39cfe3df03f8d3bd4a358449",
            file_name="vit_b_lm.pth",
            size_mb=375,
            normalization="sam",
            data="cells and nuclei in light microscopy (fluorescence, phase contrast, bright field)",
            hardware="CPU (seconds per frame) or GPU",
        ),
        ModelInfo(
            name="vit_b_em_organelles",
            title="micro-sam EM organelles (ViT-B)",
            url="https://zenodo.org/records/10524828/files/vit_b_em_organelles.pth?download=1",
            sha256="8fabbe38a427a0c91bbe6518a5c0f103f36b73e6ee6c86fbacd32b4fc66294b4",
            file_name="vit_b_em_organelles.pth",
            size_mb=375,
            normalization="sam",
            data="mitochondria, nuclei and other organelles in electron microscopy",
            hardware="CPU (seconds per frame) or GPU",
        ),
    )
}


class UnknownModelError(ValueError):
    """A model name that is not in the registry."""


def model_info(name: str) -> ModelInfo:
    """The registry entry called ``name``; the error lists the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(MODELS)} (see `napari-p2sam models list`)"
        ) from None


def registry_name(checkpoint: str | Path) -> str | None:
    """``checkpoint`` if it names a registry model (``vit_b``) and no file of that name exists, else None."""
    if isinstance(checkpoint, str) and checkpoint in MODELS and not user_path(checkpoint).exists():
        return checkpoint
    return None
