"""The guided, batched mask decoder and the three-stage cascade (docs/algorithm.md §4–5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from napari_p2sam.engine.decode import Prompt, cascade, decoder_call, embed_prompts, mask_box, to_original
from napari_p2sam.engine.embeddings import encode_image
from napari_p2sam.engine.pixels import to_rgb_uint8
from napari_p2sam.models.guidance import Guidance, attend, decode


@pytest.fixture(scope="module")
def ct_embedding(tiny_model, lung_ct):
    return encode_image(tiny_model, to_rgb_uint8(lung_ct["test_image"]))


def prompts_of_several_sizes() -> list[Prompt]:
    rng = np.random.default_rng(0)
    prompts = []
    for k in range(1, 6):
        points = rng.integers(0, 512, size=(k + 1, 2))
        prompts.append(Prompt(points, np.array([1] * k + [0])))
    return prompts


def test_unguided_decoder_equals_segment_anything(tiny_model, ct_embedding):
    sam = tiny_model.sam
    [prompt] = prompts_of_several_sizes()[2:3]
    sparse, dense, valid = embed_prompts(tiny_model, ct_embedding, [prompt], None, None)
    assert valid is None
    ours, our_iou = decode(sam.mask_decoder, ct_embedding.features, sam.prompt_encoder.get_dense_pe(), sparse, dense)
    with torch.no_grad():
        theirs, their_iou = sam.mask_decoder.predict_masks(
            ct_embedding.features, sam.prompt_encoder.get_dense_pe(), sparse, dense
        )
    # Same ops on the same weights; the image→token softmax runs in another
    # memory order (faster on CPU), so equal up to float32 rounding.
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(our_iou, their_iou, rtol=1e-5, atol=1e-6)


def test_attention_bias_is_added_after_the_softmax(tiny_model):
    attn = tiny_model.sam.mask_decoder.transformer.layers[0].cross_attn_token_to_image
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 5, 64), torch.randn(2, 30, 64), torch.randn(2, 30, 64)
    bias = torch.rand(2, 1, 1, 30)
    heads, dim = attn.num_heads, attn.internal_dim // attn.num_heads

    def split(x):
        return x.reshape(2, -1, heads, dim).transpose(1, 2)

    qh, kh, vh = split(attn.q_proj(q)), split(attn.k_proj(k)), split(attn.v_proj(v))
    weights = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(dim), dim=-1)
    weights = torch.softmax(weights + bias, dim=-1)
    expected = attn.out_proj((weights @ vh).transpose(1, 2).reshape(2, -1, heads * dim))
    with torch.no_grad():
        assert torch.allclose(attend(attn, q, k, v, bias=bias), expected, atol=1e-6)
        assert not torch.allclose(attend(attn, q, k, v), expected, atol=1e-3)


def authors_transformer(transformer, image_embedding, image_pe, tokens, attn_sim, target_embedding):
    """The reference code's guided TwoWayTransformer, written out literally (in-place ``+=`` included)."""
    bs, c, h, w = image_embedding.shape
    keys = image_embedding.flatten(2).permute(0, 2, 1)
    image_pe = image_pe.flatten(2).permute(0, 2, 1)
    point_embedding = tokens.clone()
    queries = point_embedding
    for layer in transformer.layers:
        queries += target_embedding
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + point_embedding
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)
        q, k = queries + point_embedding, keys + image_pe
        queries = layer.norm2(queries + attend(layer.cross_attn_token_to_image, q, k, keys, bias=attn_sim))
        queries = layer.norm3(queries + layer.mlp(queries))
        q, k = queries + point_embedding, keys + image_pe
        keys = layer.norm4(keys + layer.cross_attn_image_to_token(q=k, k=q, v=queries))
    q = queries + point_embedding
    q += target_embedding
    k = keys + image_pe
    queries = transformer.norm_final_attn(queries + transformer.final_attn_token_to_image(q=q, k=k, v=keys))
    return queries, keys


def test_semantic_prompt_reaches_the_positional_encoding_as_in_the_authors_code(tiny_model, ct_embedding):
    from napari_p2sam.models.guidance import _transformer

    sam = tiny_model.sam
    torch.manual_seed(1)
    tokens = torch.randn(1, 8, 64)
    prompt = torch.randn(1, 1, 64)
    bias = torch.rand(1, 1, 1, 64 * 64)
    src = ct_embedding.features
    pe = sam.prompt_encoder.get_dense_pe()
    with torch.no_grad():
        ours = _transformer(sam.mask_decoder.transformer, src, pe, tokens, None, Guidance(bias, prompt))
        theirs = authors_transformer(sam.mask_decoder.transformer, src, pe, tokens, bias, prompt)
    assert torch.allclose(ours[0], theirs[0], atol=1e-5)
    assert torch.allclose(ours[1], theirs[1], atol=1e-5)


@pytest.mark.parametrize("guided", [False, True])
def test_batched_decoding_equals_one_by_one(tiny_model, ct_embedding, guided):
    prompts = prompts_of_several_sizes()
    guidance = None
    if guided:
        torch.manual_seed(2)
        guidance = Guidance(torch.rand(len(prompts), 1, 1, 64 * 64), torch.randn(1, 1, 64))
    with torch.no_grad():
        batched = decoder_call(tiny_model, ct_embedding, prompts, multimask=True, guidance=guidance)
        for i, prompt in enumerate(prompts):
            single_guidance = guidance and Guidance(guidance.attention_bias[i : i + 1], guidance.semantic_prompt)
            single = decoder_call(tiny_model, ct_embedding, [prompt], multimask=True, guidance=single_guidance)
            assert torch.allclose(batched[i], single[0], atol=1e-4), f"candidate {i} differs"


def test_padding_without_a_mask_would_change_the_result(tiny_model, ct_embedding):
    """Why the key mask exists: 'not a point' padding tokens change SAM's output."""
    short, long = prompts_of_several_sizes()[0], prompts_of_several_sizes()[4]
    sparse, dense, valid = embed_prompts(tiny_model, ct_embedding, [short, long], None, None)
    sam = tiny_model.sam
    pe = sam.prompt_encoder.get_dense_pe()
    with torch.no_grad():
        masked, _ = decode(sam.mask_decoder, ct_embedding.features, pe, sparse, dense, token_valid=valid)
        unmasked, _ = decode(sam.mask_decoder, ct_embedding.features, pe, sparse, dense)
        alone, _ = decode(sam.mask_decoder, ct_embedding.features, pe, sparse[:1, : int(valid[0].sum())], dense[:1])
    assert torch.allclose(masked[0], alone[0], atol=1e-4)
    assert not torch.allclose(unmasked[0], alone[0], atol=1e-3)


def stock_cascade(predictor: SamPredictor, prompt: Prompt, multimask: bool) -> np.ndarray:
    """The authors' cascade with segment-anything's own SamPredictor (no guidance)."""
    _, scores, logits = predictor.predict(prompt.points, prompt.labels, multimask_output=False)
    masks, scores, logits = predictor.predict(
        prompt.points, prompt.labels, mask_input=logits[:1], multimask_output=multimask
    )
    best = int(np.argmax(scores)) if multimask else 0
    box = mask_box(masks[best])
    masks, scores, logits = predictor.predict(
        prompt.points,
        prompt.labels,
        box=box[None] if box is not None else None,
        mask_input=logits[best : best + 1],
        multimask_output=multimask,
    )
    best = int(np.argmax(scores)) if multimask else 0
    return logits[best]


@pytest.mark.parametrize("multimask", [False, True], ids=["medical-single-mask", "natural-multimask"])
def test_cascade_matches_segment_anything_predictor(tiny_model, lung_ct, ct_embedding, multimask):
    predictor = SamPredictor(tiny_model.sam)
    predictor.set_image(to_rgb_uint8(lung_ct["test_image"]))
    assert torch.equal(predictor.features, ct_embedding.features)
    prompts = prompts_of_several_sizes()
    result = cascade(tiny_model, ct_embedding, prompts, multimask=multimask, guidance=None)
    for i, prompt in enumerate(prompts):
        expected = stock_cascade(predictor, prompt, multimask)
        assert np.allclose(result.logits[i].numpy(), expected, atol=1e-3), f"candidate {i}"


def test_empty_stage_two_mask_skips_the_box(tiny_model, ct_embedding):
    prompts = prompts_of_several_sizes()[:2]
    threshold = tiny_model.sam.mask_threshold
    tiny_model.sam.mask_threshold = 1e9  # no pixel passes: every stage-2 mask is empty
    try:
        result = cascade(tiny_model, ct_embedding, prompts, multimask=True, guidance=None)
        final = to_original(tiny_model, ct_embedding, result.logits)
    finally:
        tiny_model.sam.mask_threshold = threshold
    assert result.boxes == [None, None]
    assert not final.any()
    assert result.logits.shape == (2, 256, 256)


def test_mask_box_is_x_then_y():
    mask = np.zeros((10, 20), bool)
    mask[2:5, 7:15] = True
    assert mask_box(mask).tolist() == [7, 2, 14, 4]
    assert mask_box(np.zeros((3, 3), bool)) is None
