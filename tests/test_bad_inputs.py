"""Bad or unusual inputs to the per-image engine: a clear message, or a documented behaviour."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_p2sam import P2SAM, ImageInputError, ReferenceInputError, Settings
from napari_p2sam.engine.pixels import BlankImageWarning, intensity_to_uint8, to_rgb_uint8
from napari_p2sam.engine.propagate import propagate
from napari_p2sam.engine.settings import preset


@pytest.fixture()
def p2sam(tiny_model):
    return P2SAM(tiny_model, Settings(parts=(1, 3)))


def square(size=128, lo=32, hi=96):
    mask = np.zeros((size, size), np.uint8)
    mask[lo:hi, lo:hi] = 1
    return mask


def textured(size=128, seed=0):
    return np.random.default_rng(seed).integers(0, 255, size=(size, size), dtype=np.uint8)


def test_empty_reference_mask(p2sam):
    with pytest.raises(ReferenceInputError, match="reference mask is empty: paint the object"):
        p2sam.set_reference(textured(), np.zeros((128, 128), np.uint8))
    assert p2sam.reference is None


def test_mask_of_another_size(p2sam):
    with pytest.raises(ReferenceInputError, match=r"mask is 64×64 but the reference image is 128×128"):
        p2sam.set_reference(textured(), square(64, 8, 40))


@pytest.mark.parametrize("persam_mask", [square(64), square().astype(np.float32)])
def test_persam_mask_of_another_size_or_type(tiny_model, persam_mask):
    persam = P2SAM(tiny_model, preset="persam")
    with pytest.raises(ReferenceInputError, match="persam_mask must be 128×128 uint8"):
        persam.set_reference(textured(), square(), persam_mask=persam_mask)


@pytest.mark.parametrize("variant", ["natural", "medical"])
def test_mask_covering_the_whole_image(tiny_model, variant):
    p2sam = P2SAM(tiny_model, Settings(variant=variant, parts=(1, 2)))
    p2sam.set_reference(textured(), np.ones((128, 128), np.uint8))
    # all of the image's patches (16×16 in the 1024 frame) are the object; padding is not
    assert p2sam.reference.foreground.shape[0] == 64 * 64
    result = p2sam.segment(textured(seed=1))
    assert result.mask.shape == (128, 128)


def test_whole_mask_on_a_non_square_image_leaves_padding_as_background(tiny_model):
    p2sam = P2SAM(tiny_model, Settings(variant="medical", parts=(1, 2)))
    p2sam.set_reference(textured()[:, :64], np.ones((128, 64), np.uint8))
    assert p2sam.reference.foreground.shape[0] == 64 * 32
    assert set(p2sam.reference.background_parts) == {1}


def test_mask_smaller_than_one_patch_uses_the_patch_it_is_in(tiny_model):
    p2sam = P2SAM(tiny_model, Settings(parts=(1, 3)))
    mask = np.zeros((1024, 1024), np.uint8)
    mask[100:103, 200:203] = 1  # 3×3 px, off the patch centre
    p2sam.set_reference(textured(1024), mask)
    assert p2sam.reference.foreground.shape[0] == 1
    assert list(p2sam.reference.parts) == [1]
    assert p2sam.reference.skipped_parts == (2, 3)
    assert p2sam.segment(textured(1024, seed=2)).k == 1


def test_more_parts_than_patches_are_skipped(tiny_model):
    p2sam = P2SAM(tiny_model, Settings(parts=(1, 5)))
    mask = np.zeros((1024, 1024), np.uint8)
    mask[0:32, 0:48] = 1  # 2×3 = 6 patches... minus none: k 1..5 all fit
    p2sam.set_reference(textured(1024), mask)
    assert p2sam.reference.foreground.shape[0] == 6 and p2sam.reference.skipped_parts == ()
    mask[:] = 0
    mask[0:16, 0:48] = 1  # 3 patches: k = 4, 5 cannot be clustered
    p2sam.set_reference(textured(1024), mask)
    assert p2sam.reference.skipped_parts == (4, 5)
    assert [c.k for c in p2sam.segment(textured(1024, seed=3)).candidates] == [1, 2, 3]


def test_no_usable_part_count(tiny_model):
    p2sam = P2SAM(tiny_model, Settings(parts=(4, 5)))
    mask = np.zeros((1024, 1024), np.uint8)
    mask[0:16, 0:32] = 1  # 2 patches
    with pytest.raises(ReferenceInputError, match="covers only 2 feature patches.*lower the parts range"):
        p2sam.set_reference(textured(1024), mask)


def test_segment_before_reference(p2sam):
    with pytest.raises(ReferenceInputError, match="call set_reference"):
        p2sam.segment(textured())


def test_nan_pixels_become_zero_and_do_not_break_segmentation(p2sam):
    image = np.random.default_rng(0).random((128, 128)).astype(np.float32)
    image[10:20, :] = np.nan
    rgb = to_rgb_uint8(image)
    assert (rgb[10:20] == 0).all() and rgb.dtype == np.uint8
    p2sam.set_reference(image, square())
    assert p2sam.segment(image).mask.shape == (128, 128)


def test_uint16_and_float_are_stretched_by_percentiles():
    ramp = np.linspace(0, 60000, 128 * 128).reshape(128, 128).astype(np.uint16)
    out = to_rgb_uint8(ramp)
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    low, high = np.percentile(ramp, [0.5, 99.5])
    middle = ramp[64, 64]
    assert out[64, 64, 0] == round((float(middle) - low) * 255 / (high - low))
    assert np.array_equal(to_rgb_uint8(ramp.astype(np.float64)), out)


def test_fixed_limits_apply_one_mapping():
    image = np.array([[0, 500, 1000]], dtype=np.uint16)
    assert intensity_to_uint8(image, (0, 1000)).tolist() == [[0, 128, 255]]


def test_uint8_passes_through_unchanged():
    rgb = np.random.default_rng(0).integers(0, 255, size=(20, 30, 3), dtype=np.uint8)
    assert np.array_equal(to_rgb_uint8(rgb), rgb)
    gray = rgb[..., 0]
    assert np.array_equal(to_rgb_uint8(gray), np.repeat(gray[..., None], 3, axis=2))


def test_rgba_drops_alpha():
    rgba = np.random.default_rng(0).integers(0, 255, size=(20, 30, 4), dtype=np.uint8)
    assert np.array_equal(to_rgb_uint8(rgba), rgba[..., :3])


def test_two_channel_image_needs_a_channel_choice():
    two = np.zeros((20, 30, 2), np.uint16)
    two[..., 1] = 7
    with pytest.raises(ImageInputError, match=r"2 channels; choose one with channel=N \(0..1\)"):
        to_rgb_uint8(two)
    with pytest.raises(ImageInputError, match="channel 5 does not exist"):
        to_rgb_uint8(two, channel=5)
    assert to_rgb_uint8(two, channel=1).shape == (20, 30, 3)


def test_stack_given_as_one_image():
    with pytest.raises(ImageInputError, match=r"shape \(2, 3, 4, 5\)"):
        to_rgb_uint8(np.zeros((2, 3, 4, 5)))


def test_one_pixel_image(tiny_model):
    p2sam = P2SAM(tiny_model, Settings(parts=(1, 2)))
    p2sam.set_reference(np.array([[200]], np.uint8), np.array([[1]], np.uint8))
    result = p2sam.segment(np.array([[100]], np.uint8))
    assert result.mask.shape == (1, 1)
    assert result.points.tolist() == [[0, 0], [0, 0]]


def test_constant_and_bool_images():
    assert not to_rgb_uint8(np.full((4, 4), 3.5)).any()
    assert to_rgb_uint8(np.eye(3, dtype=bool))[0, 0, 0] == 255


def test_bad_settings_are_refused_with_the_range():
    with pytest.raises(ValueError, match="parts must be a range MIN MAX"):
        Settings(parts=(3, 2))
    with pytest.raises(ValueError, match="variant must be one of"):
        Settings(variant="xray")


def test_constant_similarity_gives_a_neutral_attention_bias():
    import torch

    from napari_p2sam.engine.prompts import attention_bias

    for flat in (torch.full((5, 7), 0.3), torch.full((1, 1), 0.3)):
        bias = attention_bias(flat, 64)
        assert torch.equal(bias, torch.full((1, 1, 1, 64 * 64), 0.5))


def image_given_as_mask(size: int = 64) -> np.ndarray:
    """An 8-bit gradient 'mask': 255 label values, as when a photo is picked instead of its mask."""
    return (np.arange(size * size).reshape(size, size) % 255 + 1).astype(np.uint8)


def test_an_image_given_as_the_mask_stops_before_any_work(small_model):
    from napari_p2sam import TooManyObjectsError, segment_stack

    frames = np.zeros((3, 64, 64), np.uint8)
    with pytest.raises(TooManyObjectsError, match=r"holds 255 objects .* is it an image rather than a mask"):
        segment_stack(frames, {0: image_given_as_mask()}, model=small_model)
    few = np.zeros((64, 64), np.uint8)
    for label in range(1, 51):  # exactly the limit: runs
        few[label, :] = label
    labels = segment_stack(frames[:1], {0: few}, model=small_model)
    np.testing.assert_array_equal(labels[0], few)


def test_the_cli_refuses_an_image_given_as_the_mask_and_names_the_option(tmp_path, small_checkpoint):
    import subprocess
    import sys

    import tifffile
    from PIL import Image

    tifffile.imwrite(tmp_path / "movie.tif", np.zeros((3, 64, 64), np.uint8))
    Image.fromarray(image_given_as_mask()).save(tmp_path / "photo.png")
    command = [
        sys.executable,
        "-m",
        "napari_p2sam",
        "segment",
        str(tmp_path / "movie.tif"),
        "--checkpoint",
        str(small_checkpoint),
        "--reference-mask",
        str(tmp_path / "photo.png"),
        "--out",
        str(tmp_path / "out.tif"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode != 0 and "holds 255 objects" in done.stderr and "--max-objects 255" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out.tif").exists()


def test_infinite_pixels_become_zero_without_numpy_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = np.full((4, 4), np.inf)
        assert not to_rgb_uint8(image).any()
        image[0, 0] = 2.0
        assert not to_rgb_uint8(image, limits=(2.0, 2.0)).any()


def said(caught) -> list[str]:
    """The warnings' messages, after checking they are all ours."""
    assert [w.category for w in caught] == [BlankImageWarning] * len(caught), [str(w.message) for w in caught]
    return [str(w.message) for w in caught]


NOTHING = ": SAM sees nothing in it, so masks found with it mean nothing"


@pytest.mark.parametrize(
    "dtype, reference_value, target_value, words",
    [
        (np.uint8, 3, 12, ("is constant (all pixels 3)", "is constant (all pixels 12)")),
        (np.float32, np.nan, 7.5, ("has no finite pixel (all are NaN or infinite)", "is constant (all pixels 7.5)")),
    ],
    ids=["constant", "all-nan"],
)
def test_a_blank_frame_is_warned_once_in_our_words(small_model, dtype, reference_value, target_value, words):
    stack = np.random.default_rng(1).integers(0, 255, (5, 48, 48)).astype(dtype)
    stack[0], stack[2] = reference_value, target_value
    paint = np.zeros(stack.shape, np.uint8)
    paint[0, 10:30, 10:30] = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = list(propagate(small_model, stack, paint, preset("endoscopy-video")))
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert said(caught) == [f"frame 0 of the array {words[0]}{NOTHING}", f"frame 2 of the array {words[1]}{NOTHING}"]


def test_a_blank_image_is_named_in_the_warning(small_model):
    p2sam = P2SAM(small_model, preset("photos"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p2sam.set_reference(np.full((48, 48, 3), (12, 30, 40), np.uint8), square(48, 10, 30))
        p2sam.segment(np.full((48, 48), np.nan, np.float32))
        p2sam.segment(textured(48))
    assert said(caught) == [
        f"the reference image is constant (all pixels (12, 30, 40)){NOTHING}",
        f"the image has no finite pixel (all are NaN or infinite){NOTHING}",
    ]
