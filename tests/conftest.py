"""Shared fixtures: tiny randomly initialised SAMs built from segment-anything's own classes."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from napari_p2sam import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared"
CASES = SHARED / "cases"


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


@pytest.fixture(scope="session")
def parity_model():
    """The authors' parity SAM (random weights, torch seed 1) from shared/cases/parity."""
    return load_model(CASES / "parity" / "tiny_sam_seed1.pth", device="cpu")


def read_image(path: Path) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(path))


@pytest.fixture(scope="session")
def lung_ct() -> dict[str, np.ndarray]:
    """The real CT pair: 512×512 uint8 grayscale slices and 0/255 masks."""
    root = CASES / "lung-ct"
    return {name: read_image(root / f"{name}.png") for name in ("ref_image", "ref_mask", "test_image", "test_mask")}


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """A tiny random SAM with a 256-px input (16×16 feature grid): fast enough for whole stacks."""
    return save_tiny_sam(tmp_path_factory.mktemp("ckpt") / "small_sam.pth", img_size=256, window_size=4)


@pytest.fixture(scope="session")
def small_model(small_checkpoint):
    """:func:`small_checkpoint` loaded on CPU."""
    return load_model(small_checkpoint, device="cpu")


@pytest.fixture
def fresh_references(monkeypatch):
    """Forget the stack driver's references remembered by earlier tests (its in-process memo)."""
    import napari_p2sam.engine.propagate as propagate_module

    monkeypatch.setattr(propagate_module, "REFERENCES", propagate_module.ReferenceMemo())
