"""SAM's mask decoder with PerSAM's guidance and padded-prompt batching.

These functions drive segment-anything's own modules (``MaskDecoder``,
``TwoWayTransformer``, ``Attention``) with their own weights: no fork, no
copy, and the state-dict keys are untouched, so any SAM checkpoint works.
They add two things to the decoder's forward pass:

* PerSAM's guidance (docs/algorithm.md §4): a semantic prompt ``t`` added to the
  queries, and an attention bias ``A`` in each block's token→image attention,
  ``softmax(softmax(QKᵀ/√d) + A)``;
* a key mask for prompt tokens, so prompts with different numbers of points
  can share one batched call: padded tokens are never attended to, which is
  what one call per prompt computes (SAM's attention has no padding mask).

With no guidance and no padding the result equals ``MaskDecoder.forward``
up to float32 rounding (two steps run in a faster memory order, see ``attend``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from segment_anything.modeling import MaskDecoder
from segment_anything.modeling.transformer import Attention, TwoWayAttentionBlock, TwoWayTransformer
from torch import Tensor


@dataclass
class Guidance:
    """PerSAM's guidance for the first decoder call.

    ``attention_bias``: ``(B or 1, 1, 1, grid * grid)`` added after the
    softmax of token→image attention. ``semantic_prompt``: ``(1, 1, C)``.
    Either may be None.
    """

    attention_bias: Tensor | None = None
    semantic_prompt: Tensor | None = None


def attend(
    attn: Attention,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    key_valid: Tensor | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """segment-anything's ``Attention.forward`` plus a key mask and PerSAM's bias.

    ``key_valid``: ``(B, N_k)`` bool, False keys get no attention.
    ``bias``: broadcast to ``(B, heads, N_q, N_k)``, added after the softmax
    and followed by a second softmax.
    """
    # (B, heads, N, C / heads), contiguous so that matmul reads the transposes in place
    q, k, v = (
        attn._separate_heads(proj(x), attn.num_heads).contiguous()
        for proj, x in ((attn.q_proj, q), (attn.k_proj, k), (attn.v_proj, v))
    )
    scale = math.sqrt(q.shape[-1])
    if bias is None and q.shape[-2] > k.shape[-2]:
        # Image→token attention: 4,096 queries, a dozen keys. A softmax along
        # such a short last axis is slow on CPU (28 ms per vit_b call for 5
        # prompts); with keys as rows it runs along the long axis (3.5 ms).
        # Same values up to float32 rounding (≤ 1 ulp).
        logits = k @ q.transpose(-1, -2) / scale
        if key_valid is not None:
            logits = logits.masked_fill(~key_valid[:, None, :, None], float("-inf"))
        weights = torch.softmax(logits, dim=-2).transpose(-1, -2)
    else:
        logits = q @ k.transpose(-1, -2) / scale
        if key_valid is not None:
            logits = logits.masked_fill(~key_valid[:, None, None, :], float("-inf"))
        weights = torch.softmax(logits, dim=-1)
        if bias is not None:
            weights = torch.softmax(weights + bias, dim=-1)
    return attn.out_proj(attn._recombine_heads(weights @ v))


def _block(
    block: TwoWayAttentionBlock,
    queries: Tensor,
    keys: Tensor,
    query_pe: Tensor,
    key_pe: Tensor,
    token_valid: Tensor | None,
    bias: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """One ``TwoWayAttentionBlock`` step; the bias acts on token→image attention only."""
    if block.skip_first_layer_pe:
        queries = attend(block.self_attn, queries, queries, queries, key_valid=token_valid)
    else:
        q = queries + query_pe
        queries = queries + attend(block.self_attn, q, q, queries, key_valid=token_valid)
    queries = block.norm1(queries)

    k = keys + key_pe  # the keys do not change before the image→token step: one sum serves both
    queries = block.norm2(queries + attend(block.cross_attn_token_to_image, queries + query_pe, k, keys, bias=bias))
    queries = block.norm3(queries + block.mlp(queries))

    q = queries + query_pe
    keys = block.norm4(keys + attend(block.cross_attn_image_to_token, k, q, queries, key_valid=token_valid))
    return queries, keys


def _transformer(
    transformer: TwoWayTransformer,
    image_embedding: Tensor,
    image_pe: Tensor,
    tokens: Tensor,
    token_valid: Tensor | None,
    guidance: Guidance,
) -> tuple[Tensor, Tensor]:
    """``TwoWayTransformer.forward`` with guidance and a token mask."""
    # (B, g², C), contiguous: SAM's permuted view makes every add and
    # projection on the 4,096 image tokens copy or stride (≈20% of a call on CPU).
    keys = image_embedding.flatten(2).transpose(1, 2).contiguous()
    key_pe = image_pe.flatten(2).transpose(1, 2).contiguous()
    prompt = guidance.semantic_prompt
    queries, query_pe = tokens, tokens
    for i, layer in enumerate(transformer.layers):
        if prompt is not None:
            queries = queries + prompt
            if i == 0:
                # The reference code adds t in place, and on the first pass the
                # queries tensor *is* the query positional encoding, so the
                # encoding carries +t from then on. It produced the published
                # numbers, so we reproduce it.
                query_pe = queries
        queries, keys = _block(layer, queries, keys, query_pe, key_pe, token_valid, guidance.attention_bias)
    q = queries + query_pe
    if prompt is not None:
        q = q + prompt
    k = keys + key_pe
    queries = queries + attend(transformer.final_attn_token_to_image, q, k, keys)
    return transformer.norm_final_attn(queries), keys


def decode(
    decoder: MaskDecoder,
    image_embedding: Tensor,
    image_pe: Tensor,
    sparse: Tensor,
    dense: Tensor,
    *,
    token_valid: Tensor | None = None,
    guidance: Guidance | None = None,
) -> tuple[Tensor, Tensor]:
    """All of SAM's mask tokens for a batch of prompts on one image.

    ``image_embedding``: ``(1, C, g, g)``; ``sparse``: ``(B, N, C)`` prompt
    tokens, padded where ``token_valid`` ``(B, N)`` is False; ``dense``:
    ``(B, C, g, g)``, or ``(1, C, g, g)`` when it is the same for all prompts
    (image-side work before the first image→token attention then runs once).
    Returns low-res logits ``(B, M, 4g, 4g)`` and IoU
    predictions ``(B, M)`` for all M mask tokens (index 0 = single-mask output).
    """
    guidance = guidance or Guidance()
    batch = sparse.shape[0]
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat([output_tokens[None].expand(batch, -1, -1), sparse], dim=1)
    if token_valid is not None:
        fixed = torch.ones(batch, output_tokens.shape[0], dtype=torch.bool, device=sparse.device)
        token_valid = torch.cat([fixed, token_valid], dim=1)
    src = image_embedding + dense
    c, h, w = src.shape[1:]
    hs, src = _transformer(decoder.transformer, src, image_pe, tokens, token_valid, guidance)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1 : 1 + decoder.num_mask_tokens, :]
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(batch, c, h, w))
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1
    )
    b, c, h, w = upscaled.shape
    masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    return masks, decoder.iou_prediction_head(iou_token_out)
