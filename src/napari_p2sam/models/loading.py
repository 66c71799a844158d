"""Build a Segment Anything model from a checkpoint file.

The architecture is read from the tensors' shapes, so Meta's vit_b / vit_l /
vit_h files, MobileSAM's vit_t (TinyViT encoder), MedSAM, micro-sam
fine-tunes and small test models all load without the user naming the
architecture. A registry name (``"vit_b"``) stands for its verified file in
the model cache. Checkpoints are always read with
``torch.load(..., weights_only=True)``: nothing in a file is executed.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

from ..io.errors import for_settings
from ..io.paths import user_path
from .download import download
from .precision import check_compile, check_precision
from .registry import MODELS, registry_name
from .tiny_vit import CLASSIFIER_KEYS, TinyViT, infer_tiny_vit_shape, is_tiny_vit_state

NORMALIZATIONS = ("sam", "minmax")
_REQUIRED_KEYS = (
    "image_encoder.neck.0.weight",
    "prompt_encoder.point_embeddings.0.weight",
    "mask_decoder.iou_token.weight",
)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used as a SAM model."""


@dataclass(frozen=True)
class EncoderShape:
    """Image-encoder hyper-parameters read from a state dict."""

    img_size: int
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    window_size: int
    global_attn_indexes: tuple[int, ...]
    out_chans: int


@dataclass
class SamModel:
    """A loaded SAM, what identifies it and how its image encoder runs.

    ``identity`` names the weights (the file's sha256), so caches keyed by it
    never mix two models. ``normalization`` is ``"sam"`` (SAM's pixel
    mean/std) or ``"minmax"`` (MedSAM's rescaling of each image to [0, 1]).
    ``precision``: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (:mod:`.precision`),
    checked against the device here. ``compile``: run the encoder through
    ``torch.compile`` (compiled on its first call, where the model runs).
    ``dataclasses.replace(model, precision=...)`` shares the weights.
    """

    sam: Sam
    identity: str
    normalization: str
    source: str
    precision: str = "fp32"
    compile: bool = False
    _compiled: Callable | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_precision(self.precision, self.device.type)
        if self.compile:
            check_compile(self.device.type)

    @property
    def device(self) -> torch.device:
        return self.sam.device

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """The image encoder on normalised, padded ``(B, 3, S, S)`` pixels; ``(B, C, h, w)`` float32 features.

        bf16/fp16 run under ``torch.autocast``; the features come back as float32 for the decoder.
        """
        encoder = self.sam.image_encoder
        if self.compile:
            if self._compiled is None:
                self._compiled = torch.compile(encoder)
            encoder = self._compiled
        if self.precision == "fp32":
            return encoder(pixels)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype):
            return encoder(pixels).float()


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` if given, else cuda, then mps, then cpu."""
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise for_settings(
                ValueError("device 'cuda' was asked for but no CUDA GPU is available; use the CPU"), "device"
            )
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise for_settings(
                ValueError("device 'mps' was asked for but Apple's MPS is not available; use the CPU"), "device"
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def infer_encoder_shape(state: dict[str, torch.Tensor]) -> EncoderShape:
    """Read the ViT image encoder's hyper-parameters from tensor shapes.

    Heads come from the relative-position tables (``rel_pos_h`` is
    ``(2 * size - 1, head_dim)``); a block whose table spans the whole
    feature grid is a global-attention block, the others share one window.
    """
    patch = state["image_encoder.patch_embed.proj.weight"]
    embed_dim, _, patch_size, _ = patch.shape
    grid = state["image_encoder.pos_embed"].shape[1]
    block_ids = sorted({int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))})
    if not block_ids:
        raise CheckpointError("no image-encoder blocks ('image_encoder.blocks.N.*')")
    depth = block_ids[-1] + 1
    heads, windows, global_ids = set(), set(), []
    for i in range(depth):
        rel = state.get(f"image_encoder.blocks.{i}.attn.rel_pos_h")
        if rel is None:
            raise CheckpointError(f"block {i} has no relative-position table ('attn.rel_pos_h')")
        size = (rel.shape[0] + 1) // 2
        heads.add(embed_dim // rel.shape[1])
        if size == grid:
            global_ids.append(i)
        else:
            windows.add(size)
    if len(heads) != 1 or len(windows) > 1:
        raise CheckpointError("image-encoder blocks disagree on heads or window size")
    hidden = state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]
    return EncoderShape(
        img_size=grid * patch_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=heads.pop(),
        mlp_ratio=hidden / embed_dim,
        window_size=windows.pop() if windows else 0,
        global_attn_indexes=tuple(global_ids),
        out_chans=state["image_encoder.neck.0.weight"].shape[0],
    )


def build_image_encoder(state: dict[str, torch.Tensor]) -> tuple[torch.nn.Module, int]:
    """SAM's ViT or MobileSAM's TinyViT, as the tensors describe it; also returns its output grid side."""
    if is_tiny_vit_state(state):
        shape = infer_tiny_vit_shape(state)
        return TinyViT(shape), shape.grid
    for key in ("image_encoder.patch_embed.proj.weight", "image_encoder.pos_embed"):
        if key not in state:
            raise CheckpointError(f"not a Segment Anything state dict: missing {key}")
    enc = infer_encoder_shape(state)
    encoder = ImageEncoderViT(
        depth=enc.depth,
        embed_dim=enc.embed_dim,
        img_size=enc.img_size,
        mlp_ratio=enc.mlp_ratio,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=enc.num_heads,
        patch_size=enc.patch_size,
        qkv_bias="image_encoder.blocks.0.attn.qkv.bias" in state,
        use_rel_pos=True,
        global_attn_indexes=enc.global_attn_indexes,
        window_size=enc.window_size,
        out_chans=enc.out_chans,
    )
    return encoder, enc.img_size // enc.patch_size


def build_sam(state: dict[str, torch.Tensor]) -> Sam:
    """Build segment-anything's ``Sam`` with the shapes found in ``state`` and load it.

    TinyViT's ImageNet classifier tensors (in ``mobile_sam.pt``, unused by
    SAM) are left out; every other tensor must fit.
    """
    missing = [k for k in _REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"not a Segment Anything state dict: missing {', '.join(missing)}")
    encoder, grid = build_image_encoder(state)
    state = {k: v for k, v in state.items() if not CLASSIFIER_KEYS.match(k)}
    prompt_dim = state["image_encoder.neck.0.weight"].shape[0]
    img_size = encoder.img_size
    decoder_depth = 1 + max(
        int(m.group(1)) for k in state if (m := re.match(r"mask_decoder\.transformer\.layers\.(\d+)\.", k))
    )
    decoder_mlp = state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]
    iou_hidden = state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]
    iou_depth = 1 + max(
        int(m.group(1)) for k in state if (m := re.match(r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.", k))
    )
    num_mask_tokens = state["mask_decoder.mask_tokens.weight"].shape[0]
    sam = Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=4 * state["prompt_encoder.mask_downscaling.0.weight"].shape[0],
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=num_mask_tokens - 1,
            transformer=TwoWayTransformer(
                depth=decoder_depth, embedding_dim=prompt_dim, mlp_dim=decoder_mlp, num_heads=8
            ),
            transformer_dim=prompt_dim,
            iou_head_depth=iou_depth,
            iou_head_hidden_dim=iou_hidden,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"tensors do not fit the inferred SAM architecture: {err}") from None
    return sam.eval()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint's tensors safely (``weights_only=True``).

    Accepts a plain state dict or one nested under ``"model"`` /
    ``"state_dict"`` (as training scripts such as micro-sam's save them).
    torch's own warnings while reading are not shown: a file it cannot read
    is reported by the error alone.
    """
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(refused_pickle_message(path, err)) from None
    except Exception as err:  # torch raises many types for bad files
        raise CheckpointError(
            f"cannot read {path} as a PyTorch checkpoint ({type(err).__name__}: {str(err)[:200]}); "
            "expected a Segment Anything .pth file such as sam_vit_b_01ec64.pth"
        ) from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors; expected a Segment Anything checkpoint")
    return obj


def refused_pickle_message(path: Path, err: pickle.UnpicklingError) -> str:
    """Why torch's safe reader refused ``path``, in our words (never torch's advice to turn safety off)."""
    found = re.search(r"GLOBAL (\S+) was not an allowed global", str(err))
    what = f"a Python object ({found.group(1)})" if found else "Python objects or code"
    return (
        f"{path} holds {what} besides tensors, or is damaged; napari-p2sam reads only tensors from a "
        "checkpoint and never runs anything in it. Use a Segment Anything checkpoint that holds only "
        "tensors (a state dict), such as sam_vit_b_01ec64.pth"
    )


def check_usable(state: dict[str, torch.Tensor]) -> None:
    """Refuse tensors no working SAM holds: empty ones (e.g. a patch size of 0) and NaN or infinite values."""
    for key, tensor in state.items():
        if tensor.numel() == 0:
            shape = "×".join(map(str, tensor.shape))
            raise CheckpointError(
                f"not a usable SAM checkpoint: tensor {key} is empty (shape {shape}), so a size of the model "
                "(e.g. its patch size) is 0; the file is damaged or was not saved from a SAM: use another checkpoint"
            )
    broken = [key for key, tensor in state.items() if not torch.isfinite(tensor).all()]
    if broken:
        raise CheckpointError(
            f"not a usable SAM checkpoint: {len(broken)} tensor(s) hold NaN or infinite values "
            f"(first {broken[0]}); the file is damaged or was saved from a training run that diverged: "
            "use another checkpoint"
        )


def segment_anything_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a timm-style SAM image encoder to segment-anything's keys.

    The P²SAM authors' fine-tuned SAMs (``endoscopy_full_*``, ``nsclc_full_*``)
    store their encoder as timm's ``VisionTransformerSAM``: the same tensors as
    segment-anything's ``ImageEncoderViT`` except the MLP names (``mlp.fc1`` /
    ``mlp.fc2`` for ``mlp.lin1`` / ``mlp.lin2``) and an unused classifier head.
    Other checkpoints pass through unchanged.
    """
    if "image_encoder.blocks.0.mlp.fc1.weight" not in state:
        return state  # segment-anything names already (TinyViT's own fc1/fc2 live under image_encoder.layers)
    if any("lora_" in k for k in state):
        raise CheckpointError(
            "LoRA fine-tunes (lora_A/lora_B tensors) are not supported; use a fully fine-tuned "
            "checkpoint (e.g. the authors' endoscopy_full_* or nsclc_full_*)"
        )
    renamed = {}
    for key, value in state.items():
        if key.startswith(("image_encoder.head.", "image_encoder.fc_norm.")):
            continue
        if key.startswith("image_encoder.blocks."):
            key = key.replace(".mlp.fc1.", ".mlp.lin1.").replace(".mlp.fc2.", ".mlp.lin2.")
        renamed[key] = value
    return renamed


def as_model(
    model: SamModel | str | Path, device: str | torch.device | None = None, precision: str | None = None
) -> SamModel:
    """``model`` if already loaded, else :func:`load_model` of it (a checkpoint path or a registry name).

    ``precision``: how the encoder runs (default: the loaded model's, else fp32); a loaded
    model given another precision shares its weights with the returned one.
    """
    if not isinstance(model, SamModel):
        return load_model(model, device=device, precision=precision or "fp32")
    return model if precision in (None, model.precision) else replace(model, precision=precision)


def load_model(
    checkpoint: str | Path,
    *,
    device: str | torch.device | None = None,
    normalization: str | None = None,
    precision: str = "fp32",
    compile: bool = False,
    download_progress: object = True,
) -> SamModel:
    """Load a SAM checkpoint (architecture inferred) onto ``device``.

    ``checkpoint``: a file path (``~`` and ``$VARS`` expanded), or a registry
    name such as ``"vit_b"`` (``napari-p2sam models list``) that stands for
    its file: downloaded on first use, used only after its sha256 matched.
    ``download_progress``: as in :func:`~napari_p2sam.models.download.download`.
    ``normalization``: ``"sam"`` (pixel mean/std, SAM and its fine-tunes) or
    ``"minmax"`` (MedSAM); default: the registry model's, ``"sam"`` for files.
    ``precision`` and ``compile``: how the image encoder runs (:class:`SamModel`),
    checked against the device before the file is read.
    """
    device = choose_device(device)
    check_precision(precision, device.type)
    if compile:
        check_compile(device.type)
    if normalization is not None and normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    name = registry_name(checkpoint)
    if name is not None:
        path, identity = download(name, progressbar=download_progress), MODELS[name].sha256
        normalization = normalization or MODELS[name].normalization
    else:
        path, identity = user_path(checkpoint), None
        if not path.is_file():
            raise CheckpointError(
                f"checkpoint not found: {path} (neither a file nor a model name: {', '.join(MODELS)})"
            )
    state = read_state_dict(path)
    try:
        check_usable(state)
        sam = build_sam(segment_anything_names(state))
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    except (KeyError, IndexError, ValueError) as err:
        raise CheckpointError(f"{path}: not a Segment Anything checkpoint ({err})") from None
    return SamModel(
        sam=sam.to(device),
        identity=identity or file_sha256(path),
        normalization=normalization or "sam",
        source=str(path),
        precision=precision,
        compile=compile,
    )
