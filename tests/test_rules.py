"""Each rule of docs/algorithm.md §1–6, pinned on small cases and the real CT pair."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide

from napari_p2sam import P2SAM, Settings
from napari_p2sam.engine.embeddings import encode_image
from napari_p2sam.engine.pixels import to_rgb_uint8
from napari_p2sam.engine.prompts import attention_bias, mean_map, normalize_target, peak_xy, similarity_maps
from napari_p2sam.engine.reference import part_prototypes, patch_mask, persam_patch_mask
from napari_p2sam.engine.retrieval import EMPTY_SCORE, candidate_patches, emd_score
from napari_p2sam.engine.segment import lowest_score

TRANSFORM = ResizeLongestSide(1024)


def test_patch_mask_selects_patches_whose_centre_is_inside():
    mask = np.zeros((512, 512), np.uint8)
    mask[:256, :256] = 255  # the top-left 512×512 of the 1024 frame = 32×32 patches
    selected = patch_mask(mask, TRANSFORM, 1024, 64)
    expected = np.zeros((64, 64), bool)
    expected[:32, :32] = True
    assert np.array_equal(selected.numpy(), expected)


def test_patch_mask_samples_centres_not_area():
    mask = np.zeros((1024, 1024), np.uint8)
    mask[:16, :5] = 255  # a sliver of patch (0, 0), far from its centre
    mask[16:32, 16:32] = 255  # all of patch (1, 1)
    selected = patch_mask(mask, TRANSFORM, 1024, 64).numpy()
    assert selected[1, 1] and not selected[0, 0]
    assert selected.sum() == 1


def test_patch_mask_of_a_non_square_image_leaves_padding_out():
    mask = np.full((512, 256), 255, np.uint8)  # tall image: resized to 1024×512, padded on the right
    selected = patch_mask(mask, TRANSFORM, 1024, 64).numpy()
    assert selected[:, :32].all() and not selected[:, 32:].any()


def test_persam_patch_mask_thresholds_each_patch_centre_at_sams_red_mean():
    # each patch samples the 2×2 pixels at its centre (offsets 7 and 8); object where their mean > 123.675
    values = np.zeros((1024, 1024), np.uint8)
    values[:16, :16] = 128  # patch (0, 0): 128
    values[:16, 16:32] = 123  # patch (0, 1): 123, below the mean
    values[16:24, 32:48] = 255  # patch (1, 2): 2 of its 4 centre pixels, mean 127.5
    values[16:24, 48:56] = 255  # patch (1, 3): 1 of 4, mean 63.75
    selected = persam_patch_mask(values, TRANSFORM, 1024, 64, 123.675, 58.395).numpy()
    assert selected[0, 0] and selected[1, 2]
    assert selected.sum() == 2


def test_persam_chooses_reference_patches_by_its_own_rule(tiny_model):
    mask = np.zeros((1024, 1024), np.uint8)
    mask[:32, :32] = 1  # 2×2 patches, whole
    mask[32:40, :32] = 1  # the next 2 patches: 2 of their 4 centre pixels
    image = np.random.default_rng(0).integers(0, 255, size=(1024, 1024), dtype=np.uint8)
    embedding = encode_image(tiny_model, to_rgb_uint8(image))

    def patches(method: str, **extra) -> int:
        p2sam = P2SAM(tiny_model, Settings(method=method, parts=(1, 1)))
        return p2sam.set_reference(image, mask, embedding=embedding, **extra).foreground.shape[0]

    assert patches("p2sam") == 4  # midpoint rule: a half-covered centre (127.5) is not above 127.5
    assert patches("persam") == 6  # PerSAM's rule on 0/255: 127.5 > 123.675
    assert patches("persam", persam_mask=mask * 128) == 4  # on PerSeg's 0/128: 64 is not


def test_peak_is_x_column_then_y_row():
    sim = torch.zeros(30, 50)
    sim[7, 41] = 1.0
    sim[20, 3] = -1.0
    assert peak_xy(sim).tolist() == [[41, 7]]
    assert peak_xy(sim, largest=False).tolist() == [[3, 20]]


def test_kmeans_parts_are_deterministic_normalised_cluster_means():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 10
    feats = np.concatenate([c + rng.normal(size=(40, 16)) for c in centres]).astype(np.float32)
    feats = torch.from_numpy(feats)
    protos = part_prototypes(feats, 3)
    assert torch.equal(protos, part_prototypes(feats, 3))
    assert torch.allclose(protos.norm(dim=1), torch.ones(3))
    means = torch.stack([feats[i * 40 : (i + 1) * 40].mean(0) for i in range(3)])
    means = means / means.norm(dim=1, keepdim=True)
    # each prototype is one cluster's normalised mean (k-means order is its own)
    match = protos @ means.T
    assert torch.allclose(match.max(dim=1).values, torch.ones(3), atol=1e-5)
    assert sorted(match.argmax(dim=1).tolist()) == [0, 1, 2]
    mean = feats.mean(0)
    assert torch.allclose(part_prototypes(feats, 1)[0], mean / mean.norm())


@pytest.fixture(scope="module")
def ct_natural(tiny_model, lung_ct):
    p2sam = P2SAM(tiny_model, Settings(variant="natural", parts=(1, 4)))
    p2sam.set_reference(lung_ct["ref_image"], lung_ct["ref_mask"])
    return p2sam


def test_natural_variant_points(ct_natural, lung_ct, tiny_model):
    embedding = ct_natural.encode(lung_ct["test_image"])
    result = ct_natural.segment_embedding(embedding)
    target = normalize_target(embedding)
    for cand in result.candidates:
        maps = similarity_maps(tiny_model.sam, ct_natural.reference.parts[cand.k], target, embedding)
        assert cand.labels.tolist() == [1] * cand.k + [0]
        for c in range(cand.k):
            assert cand.points[c].tolist() == peak_xy(maps[0, c]).tolist()[0]
        assert cand.points[-1].tolist() == peak_xy(mean_map(maps), largest=False).tolist()[0]


def test_medical_variant_negative_points_are_background_maxima(tiny_model, lung_ct):
    p2sam = P2SAM(tiny_model, Settings(variant="medical", parts=(1, 3), background_parts=(1, 2)))
    p2sam.set_reference(lung_ct["ref_image"], lung_ct["ref_mask"])
    embedding = p2sam.encode(lung_ct["test_image"])
    result = p2sam.segment_embedding(embedding)
    target = normalize_target(embedding)
    assert [(c.k, c.n) for c in result.candidates] == [(k, n) for k in (1, 2, 3) for n in (1, 2)]
    for cand in result.candidates:
        maps = similarity_maps(tiny_model.sam, p2sam.reference.background_parts[cand.n], target, embedding)
        negatives = [peak_xy(maps[0, c]).tolist()[0] for c in range(cand.n)]
        assert cand.points[cand.k :].tolist() == negatives
        assert cand.labels.tolist() == [1] * cand.k + [0] * cand.n


def test_attention_bias_formula():
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(96, 128)).astype(np.float32)
    z = (sim - sim.mean()) / sim.std(ddof=1)
    resized = F.interpolate(torch.from_numpy(z)[None, None], size=(64, 64), mode="bilinear").numpy()
    expected = 1.0 / (1.0 + np.exp(-resized.reshape(1, 1, 1, -1)))
    assert np.allclose(attention_bias(torch.from_numpy(sim), 64).numpy(), expected, atol=1e-6)


def test_emd_of_a_hand_computed_case():
    ref = torch.zeros(2, 4)
    ref[1, 0] = 10.0
    target = torch.zeros(2, 4)
    target[0, 0], target[1, 0] = 1.0, 12.0
    # optimal matching 0→1 and 10→12: mean squared distance (1 + 4) / 2
    assert emd_score(ref, target) == pytest.approx(2.5)
    # weighted: all mass on the target point at 1 → (1 + 81) / 2
    assert emd_score(ref, target, target_logits=torch.tensor([50.0, -50.0])) == pytest.approx(41.0, rel=1e-6)
    assert emd_score(ref, target[:0]) == EMPTY_SCORE


def test_candidate_patches_threshold_logits_on_the_feature_grid():
    logits = torch.full((256, 256), -5.0)
    logits[:64, :32] = 5.0  # covers feature rows 0..15, columns 0..7
    features = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 1, 64, 64)
    keep, patches, values = candidate_patches(logits, features)
    assert keep.sum() == 16 * 8 and keep[:16, :8].all()
    assert patches.shape == (128, 1) and float(patches[1, 0]) == 1.0


def test_lowest_score_keeps_the_earliest_on_ties():
    assert lowest_score([3.0, 1.0, 1.0, 2.0]) == 1
    assert lowest_score([EMPTY_SCORE, 5.0, EMPTY_SCORE]) == 1
    assert lowest_score([EMPTY_SCORE, EMPTY_SCORE]) == 0


def test_retrieval_keeps_the_lowest_scoring_candidate(ct_natural, lung_ct):
    result = ct_natural.segment(lung_ct["test_image"])
    scores = [c.score for c in result.candidates]
    assert result.k == result.candidates[lowest_score(scores)].k
    assert result.score == min(scores)


def test_persam_tries_one_candidate_without_retrieval(tiny_model, lung_ct):
    p2sam = P2SAM(tiny_model, preset="persam")
    p2sam.set_reference(lung_ct["ref_image"], lung_ct["ref_mask"])
    result = p2sam.segment(lung_ct["test_image"])
    assert [c.k for c in result.candidates] == [1]
    assert np.isnan(result.score)
    assert result.mask.shape == (512, 512)


def test_reference_work_is_done_once(tiny_model, lung_ct, monkeypatch):
    calls = []
    forward = tiny_model.sam.image_encoder.forward
    monkeypatch.setattr(tiny_model.sam.image_encoder, "forward", lambda x: calls.append(1) or forward(x))
    p2sam = P2SAM(tiny_model, Settings(parts=(1, 3)))
    p2sam.set_reference(lung_ct["ref_image"], lung_ct["ref_mask"])
    prototypes = p2sam.reference.parts
    p2sam.segment(lung_ct["test_image"])
    p2sam.segment(lung_ct["ref_image"])  # the reference image itself: its embedding is reused
    assert len(calls) == 2
    assert p2sam.reference.parts is prototypes


def test_encoding_matches_segment_anything_predictor(tiny_model, lung_ct):
    from segment_anything import SamPredictor

    predictor = SamPredictor(tiny_model.sam)
    rgb = to_rgb_uint8(lung_ct["test_image"])
    predictor.set_image(rgb)
    ours = encode_image(tiny_model, rgb)
    assert torch.equal(ours.features, predictor.features)
    assert ours.input_size == predictor.input_size and ours.original_size == predictor.original_size


def test_minmax_normalization_rescales_the_image_to_unit_range(tiny_checkpoint, lung_ct):
    from napari_p2sam import load_model
    from napari_p2sam.engine.embeddings import model_input

    medsam_like = load_model(tiny_checkpoint, device="cpu", normalization="minmax")
    rgb = to_rgb_uint8(lung_ct["test_image"])
    x, (h, w) = model_input(medsam_like, rgb)
    resized = torch.as_tensor(TRANSFORM.apply_image(rgb)).permute(2, 0, 1).float()
    expected = (resized - resized.min()) / (resized.max() - resized.min())
    assert torch.allclose(x[0, :, :h, :w], expected)
    assert not x[0, :, h:, :].any() and not x[0, :, :, w:].any()
    sam_style = encode_image(load_model(tiny_checkpoint, device="cpu"), rgb).features
    assert not torch.allclose(encode_image(medsam_like, rgb).features, sam_style)
