"""MobileSAM's TinyViT encoder: checkpoint layout, architecture read from tensors, output equal to MobileSAM's.

The reference data were made with MobileSAM's own code (see tiny_vit_reference.py):
``mobile_sam_vit_t_shapes.json`` is the key → shape layout of ``mobile_sam.pt``,
``mobile_sam_vit_t_reference_output.npy`` MobileSAM's TinyViT output for seeded
weights and input.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_p2sam import P2SAM, load_model
from napari_p2sam.models.tiny_vit import (
    CLASSIFIER_KEYS,
    TinyViT,
    TinyViTShape,
    WindowAttention,
    infer_tiny_vit_shape,
)

from .conftest import tiny_sam
from .tiny_vit_reference import sample, seeded_input, seeded_state

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def published_shapes() -> dict[str, list[int]]:
    return json.loads((DATA / "mobile_sam_vit_t_shapes.json").read_text())["shapes"]


@pytest.fixture(scope="module")
def vit_t_checkpoint(tmp_path_factory, published_shapes) -> Path:
    """A file with exactly mobile_sam.pt's tensors (names, shapes), seeded values."""
    path = tmp_path_factory.mktemp("vit_t") / "mobile_sam.pt"
    torch.save(seeded_state(published_shapes), path)
    return path


@pytest.fixture(scope="module")
def vit_t(vit_t_checkpoint):
    return load_model(vit_t_checkpoint, device="cpu")


def test_architecture_read_from_the_checkpoint(published_shapes):
    # MobileSAM's build_sam_vit_t: embed_dims [64, 128, 160, 320], depths [2, 2, 6, 2],
    # num_heads [2, 4, 5, 10], window_sizes [7, 7, 14, 7] (the first stage has no attention)
    shape = infer_tiny_vit_shape(seeded_state(published_shapes))
    assert shape == TinyViTShape(
        embed_dims=(64, 128, 160, 320), depths=(2, 2, 6, 2), num_heads=(4, 5, 10), window_sizes=(7, 14, 7)
    )
    assert shape.grid == 64


def test_loads_strictly_with_every_published_tensor(vit_t, published_shapes):
    ours = {k: list(v.shape) for k, v in vit_t.sam.state_dict().items()}
    published = {k: v for k, v in published_shapes.items() if not CLASSIFIER_KEYS.match(k)}
    assert ours == published
    dropped = sorted(set(published_shapes) - set(ours))
    assert dropped == [
        "image_encoder.head.bias",
        "image_encoder.head.weight",
        "image_encoder.norm_head.bias",
        "image_encoder.norm_head.weight",
    ]


def test_output_equals_mobilesams(vit_t):
    with torch.inference_mode():
        features = vit_t.sam.image_encoder(seeded_input())
    assert features.shape == (1, 256, 64, 64)
    expected = np.load(DATA / "mobile_sam_vit_t_reference_output.npy")
    np.testing.assert_allclose(sample(features).numpy(), expected, atol=1e-4, rtol=0)


def test_attention_bias_index_follows_the_published_offset_order():
    """TinyViT numbers the (|dy|, |dx|) offsets in the order they first occur over all position pairs."""
    window = 7
    points = list(itertools.product(range(window), range(window)))
    numbers: dict[tuple[int, int], int] = {}
    expected = [numbers.setdefault((abs(a[0] - b[0]), abs(a[1] - b[1])), len(numbers)) for a in points for b in points]
    attention = WindowAttention(dim=8, num_heads=2, window=window)
    assert attention.bias_index.flatten().tolist() == expected
    assert attention.attention_biases.shape == (2, len(numbers))


def test_a_smaller_tiny_vit_loads_and_segments(tmp_path):
    """Any TinyViT's sizes are read from its tensors, and the engine runs on it end to end."""
    shape = TinyViTShape(
        embed_dims=(8, 16, 16, 32),
        depths=(1, 2, 1, 1),
        num_heads=(2, 2, 4),
        window_sizes=(7, 14, 7),
        mlp_ratio=2.0,
        mbconv_expand_ratio=2.0,
        out_chans=64,
    )
    sam = tiny_sam(seed=2)
    torch.manual_seed(2)
    sam.image_encoder = TinyViT(shape)
    path = tmp_path / "small_tiny_vit.pt"
    torch.save(sam.state_dict(), path)
    model = load_model(path, device="cpu")
    assert isinstance(model.sam.image_encoder, TinyViT)
    assert infer_tiny_vit_shape(sam.state_dict()) == shape

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    mask = np.zeros((96, 128), bool)
    mask[30:70, 40:100] = True
    p2sam = P2SAM(model, preset="photos")
    p2sam.set_reference(image, mask)
    result = p2sam.segment(image[::-1].copy())
    assert result.mask.shape == (96, 128) and result.mask.dtype == bool
    assert 1 <= result.k <= 5
