"""MobileSAM's image encoder: TinyViT, for inference.

TinyViT (Wu et al., ECCV 2022) as MobileSAM (Zhang et al., 2023) distilled
SAM ViT-H into it. Written from the published architecture; parameter names
follow MobileSAM's checkpoint (``mobile_sam.pt``), so its ``image_encoder.*``
tensors load strictly. The prompt encoder and mask decoder stay
segment-anything's.

Shapes for MobileSAM (``TinyViTShape()``), input ``(B, 3, 1024, 1024)``:

- stem: two stride-2 3×3 convolutions → ``(B, 64, 256, 256)``
- stage 0: MBConv blocks (inverted residual, depthwise 3×3), then a merge
  to 128 channels at 128×128
- stages 1–3: windowed self-attention blocks (a learned bias per head and
  per relative offset inside the window; padding to whole windows), each
  followed by a depthwise 3×3 convolution and an MLP; merges to 160 channels
  at 64×64, then to 320 channels at 64×64 (the last merge keeps the size)
- neck (as SAM's): 1×1 and 3×3 convolutions with channel LayerNorms →
  ``(B, 256, 64, 64)``
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from torch import nn

PREFIX = "image_encoder."
CLASSIFIER_KEYS = re.compile(r"image_encoder\.(norm_head|head)\.")
"""Tensors of TinyViT's ImageNet classifier, saved in mobile_sam.pt but never used by SAM."""


@dataclass(frozen=True)
class TinyViTShape:
    """Hyper-parameters; the defaults are MobileSAM's (``vit_t``).

    ``embed_dims`` / ``depths``: channels and blocks of the four stages.
    ``num_heads`` / ``window_sizes``: of the attention stages 1–3.
    """

    embed_dims: tuple[int, ...] = (64, 128, 160, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (4, 5, 10)
    window_sizes: tuple[int, ...] = (7, 14, 7)
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    out_chans: int = 256
    img_size: int = 1024

    @property
    def grid(self) -> int:
        """Side of the output feature map: 1/4 after the stem, halved by all merges but the last."""
        return self.img_size // 4 // 2 ** (len(self.depths) - 2)


class ConvBN(nn.Module):
    """Convolution without bias followed by batch norm (``c``, ``bn``), run as one convolution.

    Inference only: the batch norm's running statistics are folded into the
    convolution's weights and bias at each call.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.c = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, bn = self.c, self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = c.weight * scale[:, None, None, None]
        return F.conv2d(x, weight, bn.bias - bn.running_mean * scale, c.stride, c.padding, groups=c.groups)


class PatchEmbed(nn.Module):
    """Stem: ``(B, 3, S, S)`` → ``(B, dim, S/4, S/4)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(ConvBN(3, dim // 2, 3, 2), nn.GELU(), ConvBN(dim // 2, dim, 3, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand, depthwise 3×3, 1×1 project, add, GELU. ``(B, C, H, W)``."""

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, groups=hidden)
        self.conv3 = ConvBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return F.gelu(x + self.conv3(y))


class PatchMerging(nn.Module):
    """Change channels and (``stride`` 2) halve the size; map or tokens in, tokens ``(B, L, C)`` out."""

    def __init__(self, dim: int, out_dim: int, size: int, stride: int) -> None:
        super().__init__()
        self.size = size
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = tokens_to_map(x, self.size)
        return map_to_tokens(self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x))))))


class WindowAttention(nn.Module):
    """Multi-head self-attention over the ``w×w`` tokens of a window, with a learned offset bias.

    Input and output ``(windows, w*w, C)``. The bias of a token pair depends
    on the head and on the absolute row and column offsets ``(dy, dx)``:
    ``attention_biases[head, dy * w + dx]``.
    """

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window * window))
        rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        rows, cols = rows.flatten(), cols.flatten()
        offsets = (rows[:, None] - rows[None]).abs() * window + (cols[:, None] - cols[None]).abs()
        self.register_buffer("bias_index", offsets, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        windows, tokens, dim = x.shape
        # per head, q, k and v lie side by side in qkv's output
        qkv = self.qkv(self.norm(x)).view(windows, tokens, self.num_heads, 3, dim // self.num_heads)
        q, k, v = qkv.permute(3, 0, 2, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5 + self.attention_biases[:, self.bias_index]
        out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(windows, tokens, dim))


class Mlp(nn.Module):
    """LayerNorm, Linear, GELU, Linear on tokens ``(..., C)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Window attention (residual), depthwise 3×3 convolution, MLP (residual). Tokens ``(B, H*W, C)``."""

    def __init__(self, dim: int, size: int, num_heads: int, window: int, mlp_ratio: float) -> None:
        super().__init__()
        self.size = size
        self.window = window
        self.attn = WindowAttention(dim, num_heads, window)
        self.local_conv = ConvBN(dim, dim, 3, groups=dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.windowed_attention(x)
        x = map_to_tokens(self.local_conv(tokens_to_map(x, self.size)))
        return x + self.mlp(x)

    def windowed_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention inside non-overlapping windows; the map is zero-padded to whole windows."""
        batch, _, dim = x.shape
        size, w = self.size, self.window
        padded = math.ceil(size / w) * w
        grid = F.pad(x.view(batch, size, size, dim), (0, 0, 0, padded - size, 0, padded - size))
        n = padded // w
        windows = grid.view(batch, n, w, n, w, dim).transpose(2, 3).reshape(batch * n * n, w * w, dim)
        out = self.attn(windows)
        grid = out.view(batch, n, n, w, w, dim).transpose(2, 3).reshape(batch, padded, padded, dim)
        return grid[:, :size, :size].reshape(batch, size * size, dim)


class ConvStage(nn.Module):
    """Stage 0: MBConv blocks on a map, then a merge to tokens."""

    def __init__(self, dim: int, depth: int, expand_ratio: float, downsample: PatchMerging) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio) for _ in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class AttentionStage(nn.Module):
    """Stages 1–3: TinyViT blocks on tokens, then a merge (none after the last stage)."""

    def __init__(self, blocks: list[TinyViTBlock], downsample: PatchMerging | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class TinyViT(nn.Module):
    """MobileSAM's image encoder: ``(B, 3, S, S)`` → ``(B, out_chans, grid, grid)``; S = ``img_size``."""

    def __init__(self, shape: TinyViTShape = TinyViTShape()) -> None:
        super().__init__()
        self.img_size = shape.img_size
        self.grid = shape.grid
        dims, depths = shape.embed_dims, shape.depths
        last = len(dims) - 1
        sizes = [shape.img_size // 4 // 2**i for i in range(last)] + [shape.grid]
        merges = [PatchMerging(dims[i], dims[i + 1], sizes[i], 1 if i + 1 == last else 2) for i in range(last)]
        self.patch_embed = PatchEmbed(dims[0])
        self.layers = nn.ModuleList([ConvStage(dims[0], depths[0], shape.mbconv_expand_ratio, merges[0])])
        for i in range(1, last + 1):
            heads, window = shape.num_heads[i - 1], shape.window_sizes[i - 1]
            blocks = [TinyViTBlock(dims[i], sizes[i], heads, window, shape.mlp_ratio) for _ in range(depths[i])]
            self.layers.append(AttentionStage(blocks, merges[i] if i < last else None))
        self.neck = nn.Sequential(
            nn.Conv2d(dims[-1], shape.out_chans, 1, bias=False),
            LayerNorm2d(shape.out_chans),
            nn.Conv2d(shape.out_chans, shape.out_chans, 3, padding=1, bias=False),
            LayerNorm2d(shape.out_chans),
        )
        self.to(memory_format=torch.channels_last)  # tokens (B, L, C) are channels-last maps: no copies

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        for layer in self.layers:
            x = layer(x)
        return self.neck(tokens_to_map(x, self.grid)).contiguous()


def tokens_to_map(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, size*size, C)`` → ``(B, C, size, size)``, a channels-last view (no copy)."""
    return x.view(x.shape[0], size, size, x.shape[2]).permute(0, 3, 1, 2)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` → ``(B, H*W, C)``; no copy when ``x`` is channels-last."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


def is_tiny_vit_state(state: dict[str, torch.Tensor]) -> bool:
    """Whether a SAM state dict's image encoder is a TinyViT (convolutional stem, no ViT patch projection)."""
    return f"{PREFIX}patch_embed.seq.0.c.weight" in state


def infer_tiny_vit_shape(state: dict[str, torch.Tensor]) -> TinyViTShape:
    """Read TinyViT's hyper-parameters from a SAM state dict's tensor shapes.

    Channels come from the first block of each stage, depths from the block
    numbers, heads and window sizes from the attention-bias tables
    ``(heads, window²)``. The input size is SAM's 1024.
    """
    depths = []
    for stage in range(4):
        blocks = {int(m.group(1)) for k in state if (m := re.match(rf"{PREFIX}layers\.{stage}\.blocks\.(\d+)\.", k))}
        if not blocks:
            raise ValueError(f"TinyViT stage {stage} has no blocks ('{PREFIX}layers.{stage}.blocks.N.*')")
        depths.append(max(blocks) + 1)
    expand = state[f"{PREFIX}layers.0.blocks.0.conv1.c.weight"]
    dims = [expand.shape[1]] + [state[f"{PREFIX}layers.{i}.blocks.0.attn.qkv.weight"].shape[1] for i in (1, 2, 3)]
    biases = [state[f"{PREFIX}layers.{i}.blocks.0.attn.attention_biases"] for i in (1, 2, 3)]
    windows = [math.isqrt(b.shape[1]) for b in biases]
    if any(w * w != b.shape[1] for w, b in zip(windows, biases)):
        raise ValueError("TinyViT attention-bias tables are not square windows")
    return TinyViTShape(
        embed_dims=tuple(dims),
        depths=tuple(depths),
        num_heads=tuple(b.shape[0] for b in biases),
        window_sizes=tuple(windows),
        mlp_ratio=state[f"{PREFIX}layers.1.blocks.0.mlp.fc1.weight"].shape[0] / dims[1],
        mbconv_expand_ratio=expand.shape[0] / dims[0],
        out_chans=state[f"{PREFIX}neck.0.weight"].shape[0],
    )
