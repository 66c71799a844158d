"""Loading SAM checkpoints: architecture read from the tensors, safe loading, clear errors."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import pytest
import torch

from napari_p2sam import CheckpointError, load_model
from napari_p2sam.models.loading import infer_encoder_shape

from .conftest import save_tiny_sam, tiny_sam

SHAPES = [
    dict(embed_dim=32, depth=2, num_heads=2, window_size=7, global_attn_indexes=(1,), mlp_ratio=2.0),
    dict(embed_dim=48, depth=3, num_heads=3, window_size=4, global_attn_indexes=(0, 2), mlp_ratio=4.0),
    dict(embed_dim=64, depth=4, num_heads=4, window_size=14, global_attn_indexes=(1, 3), mlp_ratio=3.0),
    dict(
        embed_dim=32,
        depth=2,
        num_heads=1,
        window_size=8,
        global_attn_indexes=(1,),
        mlp_ratio=2.0,
        img_size=512,
        patch_size=8,
    ),
]


@pytest.mark.parametrize("sizes", SHAPES, ids=lambda s: f"dim{s['embed_dim']}-depth{s['depth']}-heads{s['num_heads']}")
def test_architecture_is_read_from_tensors(tmp_path, sizes):
    path = save_tiny_sam(tmp_path / "m.pth", seed=3, **sizes)
    state = torch.load(path, weights_only=True)
    shape = infer_encoder_shape(state)
    assert shape.embed_dim == sizes["embed_dim"]
    assert shape.depth == sizes["depth"]
    assert shape.num_heads == sizes["num_heads"]
    assert shape.window_size == sizes["window_size"]
    assert shape.global_attn_indexes == sizes["global_attn_indexes"]
    assert shape.mlp_ratio == sizes["mlp_ratio"]
    assert shape.img_size == sizes.get("img_size", 1024)
    assert shape.patch_size == sizes.get("patch_size", 16)

    model = load_model(path, device="cpu")
    original = tiny_sam(seed=3, **sizes)
    x = torch.randn(1, 3, shape.img_size, shape.img_size)
    with torch.no_grad():
        assert torch.equal(model.sam.image_encoder(x), original.image_encoder(x))


def test_parity_checkpoint_architecture(parity_model):
    encoder = parity_model.sam.image_encoder
    assert encoder.img_size == 1024
    assert len(encoder.blocks) == 2
    assert encoder.blocks[0].window_size == 14 and encoder.blocks[1].window_size == 0
    assert encoder.blocks[0].attn.num_heads == 2


def test_identity_is_the_file_hash(tiny_checkpoint, tmp_path):
    other = save_tiny_sam(tmp_path / "other.pth", seed=7)
    a, b = load_model(tiny_checkpoint, device="cpu"), load_model(other, device="cpu")
    assert len(a.identity) == 64 and a.identity != b.identity
    assert load_model(tiny_checkpoint, device="cpu").identity == a.identity


def test_nested_state_dict_loads(tmp_path):
    path = tmp_path / "nested.pth"
    torch.save({"model": tiny_sam().state_dict()}, path)
    assert load_model(path, device="cpu").sam.image_encoder.patch_embed.proj.out_channels == 32


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*missing.pth"):
        load_model(tmp_path / "missing.pth")


def test_not_a_sam_checkpoint(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3)}, path)
    with pytest.raises(CheckpointError, match=r"resnet\.pth.*not a Segment Anything state dict"):
        load_model(path)


def test_truncated_checkpoint(tmp_path, tiny_checkpoint):
    path = tmp_path / "truncated.pth"
    path.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"truncated\.pth.*expected a Segment Anything"):
        load_model(path)


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def write_raw_pickle(path):
    with open(path, "wb") as fh:
        pickle.dump({"x": Payload()}, fh)


def write_torch_pickle(path):
    torch.save({"x": Payload()}, path)


@pytest.mark.parametrize("write", [write_raw_pickle, write_torch_pickle], ids=["raw-pickle", "torch-save"])
def test_pickled_code_is_never_executed(tmp_path, capsys, write):
    path = tmp_path / "evil.pth"
    write(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match=r"evil\.pth holds (a )?Python objects?.* besides tensors") as err:
            load_model(path)
    assert "weights_only" not in str(err.value) and "trust" not in str(err.value)
    assert "this must never run" not in capsys.readouterr().out
    assert [str(w.message) for w in caught] == []


def test_a_refused_object_is_named(tmp_path):
    path = tmp_path / "with_args.pth"
    torch.save({**tiny_sam().state_dict(), "args": Path("runs")}, path)
    with pytest.raises(CheckpointError, match=r"with_args\.pth holds a Python object \(pathlib\.\w*Path\)") as err:
        load_model(path)
    assert "weights_only" not in str(err.value)


def save_state(path, **changes):
    state = tiny_sam().state_dict()
    for key, change in changes.items():
        state[key.replace("__", ".")] = change(state[key.replace("__", ".")])
    torch.save(state, path)
    return path


def test_a_zero_patch_size_is_refused_in_words(tmp_path):
    path = save_state(tmp_path / "zero_patch.pth", image_encoder__patch_embed__proj__weight=lambda w: w[:, :, :0, :0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(
            CheckpointError,
            match=r"zero_patch\.pth: not a usable SAM checkpoint: tensor image_encoder\.patch_embed\.proj\.weight "
            r"is empty \(shape 32×3×0×0\).*use another checkpoint",
        ):
            load_model(path)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_when_loaded(tmp_path, value):
    path = save_state(tmp_path / "diverged.pth", mask_decoder__iou_token__weight=lambda w: w.fill_(value))
    with pytest.raises(
        CheckpointError,
        match=r"diverged\.pth: not a usable SAM checkpoint: 1 tensor\(s\) hold NaN or infinite values "
        r"\(first mask_decoder\.iou_token\.weight\).*use another checkpoint",
    ):
        load_model(path)


def test_tensors_that_do_not_fit(tmp_path):
    state = tiny_sam().state_dict()
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 99)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_model(path)


def test_bad_normalization_and_device(tiny_checkpoint):
    with pytest.raises(ValueError, match="normalization"):
        load_model(tiny_checkpoint, normalization="zscore")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            load_model(tiny_checkpoint, device="cuda")


def timm_style(state: dict) -> dict:
    """The authors' fine-tune layout: timm MLP names in the encoder and a classifier head."""
    renamed = {
        (
            k.replace(".mlp.lin1.", ".mlp.fc1.").replace(".mlp.lin2.", ".mlp.fc2.")
            if k.startswith("image_encoder.")
            else k
        ): v
        for k, v in state.items()
    }
    renamed["image_encoder.head.weight"] = torch.zeros(10, 32)
    return {"model": renamed}


def test_authors_timm_style_fine_tunes_load(tmp_path):
    original = tiny_sam(seed=5)
    path = tmp_path / "endoscopy_full_base.pth"
    torch.save(timm_style(original.state_dict()), path)
    model = load_model(path, device="cpu")
    x = torch.randn(1, 3, 1024, 1024)
    with torch.no_grad():
        assert torch.equal(model.sam.image_encoder(x), original.image_encoder(x))
    # the mask decoder's own mlp.lin1 names are untouched
    assert torch.equal(
        model.sam.mask_decoder.transformer.layers[0].mlp.lin1.weight,
        original.mask_decoder.transformer.layers[0].mlp.lin1.weight,
    )


def test_lora_fine_tunes_are_refused_clearly(tmp_path):
    state = timm_style(tiny_sam().state_dict())
    state["model"]["image_encoder.blocks.0.attn.qkv.lora_A"] = torch.zeros(4, 32)
    path = tmp_path / "endoscopy_lora_base.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"endoscopy_lora_base\.pth: LoRA fine-tunes .* not supported"):
        load_model(path)
