"""Shared fixtures: tiny randomly initialised SAMs built from segment-anything's own classes."""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything.build_sam import _build_sam
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from napari_p2sam import load_model

DATA = Path(__file__).resolve().parent / "data"
SHARED_CASES = Path(__file__).resolve().parents[2] / "shared" / "cases"
"""The project's shared cases beside the clone: the CT images, which are not copied into the repository."""
# sha256 of the authors' parity checkpoint (shared/cases/parity/tiny_sam_seed1.pth): see tensors_sha256.
PARITY_TENSORS_SHA256 = "e1c681cb063c93b8917afba6768fb7235e5f00cf104d641b706039f281cf5aa0"


def tiny_sam(
    *,
    seed: int = 0,
    embed_dim: int = 32,
    depth: int = 2,
    num_heads: int = 2,
    window_size: int = 7,
    global_attn_indexes: tuple[int, ...] = (1,),
    mlp_ratio: float = 2.0,
    prompt_dim: int = 64,
    img_size: int = 1024,
    patch_size: int = 16,
) -> Sam:
    """A randomly initialised SAM with small sizes (real segment-anything modules)."""
    torch.manual_seed(seed)
    grid = img_size // patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=depth,
            embed_dim=embed_dim,
            img_size=img_size,
            mlp_ratio=mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=num_heads,
            patch_size=patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=global_attn_indexes,
            window_size=window_size,
            out_chans=prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=128, num_heads=8),
            transformer_dim=prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=64,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


def save_tiny_sam(path: Path, **sizes) -> Path:
    torch.save(tiny_sam(**sizes).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Path of a tiny random SAM checkpoint file."""
    return save_tiny_sam(tmp_path_factory.mktemp("ckpt") / "tiny_sam.pth")


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint):
    """The tiny SAM loaded through the product's own loader, on CPU."""
    return load_model(tiny_checkpoint, device="cpu")


def tensors_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over each tensor's bytes, in key order (the file's own bytes depend on torch's format)."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(state_dict[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def parity_checkpoint(tmp_path_factory) -> Path:
    """The authors' parity SAM rebuilt as data/parity's README says: seed 1, segment-anything's builder.

    Skips where this torch build draws other random weights than the authors' (the hash differs).
    """
    torch.manual_seed(1)
    sam = _build_sam(encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=[1])
    state_dict = sam.state_dict()
    digest = tensors_sha256(state_dict)
    if digest != PARITY_TENSORS_SHA256:
        pytest.skip(
            f"torch {torch.__version__} rebuilds other parity weights than the authors' "
            f"(tensor sha256 {digest[:12]}…, expected {PARITY_TENSORS_SHA256[:12]}…)"
        )
    path = tmp_path_factory.mktemp("parity") / "tiny_sam_seed1.pth"
    torch.save(state_dict, path)
    return path


@pytest.fixture(scope="session")
def parity_model(parity_checkpoint):
    """The authors' parity SAM (random weights, torch seed 1), loaded through the product's loader."""
    return load_model(parity_checkpoint, device="cpu")


def case_file(folder: str, relative: str) -> Path:
    """``folder/relative`` from tests/data, else from ../shared/cases; skips (saying why) if in neither.

    The CT pair and images cut from it stay in ../shared/cases only: its
    README asks that they are not copied into the repository.
    """
    for root in (DATA, SHARED_CASES):
        path = (root / folder / relative).resolve()
        if path.is_file():
            return path
    pytest.skip(f"{folder}/{relative} is a CT image kept only in ../shared/cases (not redistributed here)")


def read_image(path: Path) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(path))


@pytest.fixture(scope="session")
def lung_ct() -> dict[str, np.ndarray]:
    """The real CT pair: 512×512 uint8 grayscale slices and 0/255 masks."""
    names = ("ref_image", "ref_mask", "test_image", "test_mask")
    return {name: read_image(case_file("lung-ct", f"{name}.png")) for name in names}


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """A tiny random SAM with a 256-px input (16×16 feature grid): fast enough for whole stacks."""
    return save_tiny_sam(tmp_path_factory.mktemp("ckpt") / "small_sam.pth", img_size=256, window_size=4)


@pytest.fixture(scope="session")
def small_model(small_checkpoint):
    """:func:`small_checkpoint` loaded on CPU."""
    return load_model(small_checkpoint, device="cpu")
