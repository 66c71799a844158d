"""Dataset layouts and the protocol details: reference excluded, the CVC-ClinicDB split, mask rules, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_p2sam.evaluation import datasets
from napari_p2sam.evaluation.datasets import DatasetError, gray_levels, is_binary, persam_mask_values, read_mask
from napari_p2sam.evaluation.runner import sequence_limits

from .evaldata import make_cvc, make_folder, make_perseg, write_png

# The published split (docs/algorithm.md §9), restated here from the paper's text rather than from our module.
PUBLISHED_RANGES = """0-25, 25-50, 50-67, 67-78, 78-103, 103-126, 126-151, 151-177, 177-199, 199-205, 205-227,
227-252, 252-277, 277-297, 297-317, 317-342, 342-363, 363-383, 383-408, 408-428, 428-447, 447-466, 466-478,
478-503, 503-528, 528-546, 546-571, 571-591, 591-612"""


@pytest.fixture(scope="module")
def cvc_root(tmp_path_factory):
    return make_cvc(tmp_path_factory.mktemp("cvc"))


# ---------------------------------------------------------------- PerSeg


def test_perseg_reference_00_is_not_scored(tmp_path):
    make_perseg(tmp_path, {"dog": 3, "cat": 12})
    sequences = datasets.perseg(tmp_path)
    assert [s.name for s in sequences] == ["cat", "dog"]
    cat = sequences[0]
    assert cat.reference.name == "00" and cat.reference.image.name == "00.jpg"
    assert cat.reference.mask == tmp_path / "Annotations" / "cat" / "00.png"
    assert [f.name for f in cat.targets] == [f"{i:02d}" for i in range(1, 12)]


def test_perseg_missing_mask_names_the_image(tmp_path):
    make_perseg(tmp_path, {"cat": 3})
    (tmp_path / "Annotations" / "cat" / "02.png").unlink()
    with pytest.raises(DatasetError, match=r"no ground-truth mask for 1 image.*cat/02\.jpg.*Annotations/cat/02\.png"):
        datasets.perseg(tmp_path)


def test_perseg_empty_or_wrong_folder(tmp_path):
    with pytest.raises(DatasetError, match="Images/<object>/NN.jpg"):
        datasets.perseg(tmp_path)
    (tmp_path / "Images").mkdir()
    (tmp_path / "Annotations").mkdir()
    with pytest.raises(DatasetError, match="no object folders"):
        datasets.perseg(tmp_path)


def test_perseg_needs_reference_and_targets(tmp_path):
    make_perseg(tmp_path, {"cat": 1})
    with pytest.raises(DatasetError, match="only its reference image"):
        datasets.perseg(tmp_path)
    (tmp_path / "Images" / "cat" / "00.jpg").rename(tmp_path / "Images" / "cat" / "07.jpg")
    with pytest.raises(DatasetError, match="no reference image 00.jpg"):
        datasets.perseg(tmp_path)


# ---------------------------------------------------------------- CVC-ClinicDB


def test_cvc_split_is_the_published_one():
    expected = [tuple(int(x) for x in r.split("-")) for r in PUBLISHED_RANGES.replace("\n", " ").split(", ")]
    videos = datasets.cvc_videos(612)
    assert [(v.start, v.stop) for v in videos] == expected
    assert len(videos) == 29
    assert sum(len(v) for v in videos) == 612
    assert all(a.stop == b.start for a, b in zip(videos, videos[1:]))


def test_cvc_reference_third_frame_first_three_not_scored(cvc_root):
    sequences = datasets.cvc(cvc_root)
    assert len(sequences) == 29
    # Frames are files 1.tif … 612.tif: 0-based position p is file number p + 1.
    video_4 = sequences[3]  # frames 67-78
    assert video_4.name == "video_04"
    assert video_4.reference.name == "70"  # position 69: the 3rd frame
    assert [f.name for f in video_4.unscored] == ["68", "69"]
    assert [f.name for f in video_4.targets] == [str(n) for n in range(71, 79)]
    assert video_4.reference.mask == cvc_root / "Ground Truth" / "70.tif"
    assert sum(len(s.targets) for s in sequences) == 612 - 3 * 29
    for sequence, (start, stop) in zip(sequences, datasets.CVC_VIDEOS):
        assert [int(f.name) - 1 for f in (*sequence.unscored, sequence.reference, *sequence.targets)] == list(
            range(start, stop)
        )


def test_cvc_frames_sorted_by_number_not_by_text(cvc_root):
    video_1 = datasets.cvc(cvc_root, videos=[1])[0]
    assert [f.name for f in video_1.targets][:8] == ["4", "5", "6", "7", "8", "9", "10", "11"]


def test_cvc_video_subset(cvc_root):
    sequences = datasets.cvc(cvc_root, videos=[10, 4])
    assert [s.name for s in sequences] == ["video_04", "video_10"]
    with pytest.raises(DatasetError, match=r"no video 30.*1\.\.29"):
        datasets.cvc(cvc_root, videos=[30])


def test_cvc_other_frame_count_is_refused_with_a_way_out(tmp_path):
    make_cvc(tmp_path, count=40)
    with pytest.raises(DatasetError, match=r"found 40 frames.*612.*eval folder IMAGES MASKS --reference-frame N"):
        datasets.cvc(tmp_path)


def test_cvc_missing_mask_and_odd_names(tmp_path):
    make_cvc(tmp_path, count=5)
    (tmp_path / "Ground Truth" / "3.tif").unlink()
    with pytest.raises(DatasetError, match=r"no ground-truth mask for 1 image.*Original/3\.tif"):
        datasets.cvc(tmp_path)
    (tmp_path / "Original" / "3.tif").rename(tmp_path / "Original" / "frame3.tif")
    with pytest.raises(DatasetError, match="not named by frame number: frame3.tif"):
        datasets.cvc(tmp_path)


def test_cvc_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="Original/<n>.tif"):
        datasets.cvc(tmp_path)
    (tmp_path / "Original").mkdir()
    (tmp_path / "Ground Truth").mkdir()
    with pytest.raises(DatasetError, match="no .tif images"):
        datasets.cvc(tmp_path)


# ---------------------------------------------------------------- folder


def test_folder_natural_order_and_reference(tmp_path):
    images, masks = make_folder(tmp_path, ["f10", "f2", "f1"])
    (sequence,) = datasets.folder(images, masks, reference_frame=1)
    assert sequence.reference.name == "f2"
    assert [f.name for f in sequence.targets] == ["f1", "f10"]


@pytest.mark.parametrize("spelling", ["images/sub/..", "images/.", "."])
def test_folder_sequence_is_named_after_the_folder_itself(tmp_path, monkeypatch, spelling):
    images, masks = make_folder(tmp_path, ["a", "b"])
    (images / "sub").mkdir()
    monkeypatch.chdir(tmp_path if spelling != "." else images)
    assert datasets.folder(spelling, masks)[0].name == "images"


def test_folder_masks_may_use_another_extension(tmp_path):
    images, masks = make_folder(tmp_path, ["a", "b"])
    (masks / "b.png").rename(masks / "b.tif")
    (sequence,) = datasets.folder(images, masks)
    assert sequence.targets[0].mask == masks / "b.tif"


def test_folder_bad_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        datasets.folder(tmp_path / "empty", tmp_path / "empty")
    images, masks = make_folder(tmp_path, ["a", "b", "c"])
    with pytest.raises(DatasetError, match=r"--reference-frame 3 is out of range.*3 images \(0\.\.2\)"):
        datasets.folder(images, masks, reference_frame=3)
    (masks / "c.png").unlink()
    with pytest.raises(DatasetError, match=r"no ground-truth mask for 1 image.*c\.png"):
        datasets.folder(images, masks)


# ---------------------------------------------------------------- masks and check()


def test_colour_masks_become_gray_like_opencv():
    colour = np.array([[[0, 0, 0], [128, 0, 0], [0, 0, 1], [0, 0, 5], [255, 255, 255]]], np.uint8)
    # OpenCV BGR2GRAY on these RGB pixels: 0, round(0.299*128)=38, round(0.114*1)=0, round(0.57)=1, 255.
    assert gray_levels(colour).tolist() == [[0, 38, 0, 1, 255]]
    assert gray_levels(np.dstack([colour, np.full((1, 5), 7, np.uint8)])).tolist() == [[0, 38, 0, 1, 255]]


def test_threshold_rule(tmp_path):
    soft = np.array([[0, 1, 127, 128, 255]], np.uint8)
    path = write_png(tmp_path / "soft.png", soft)
    assert read_mask(path).tolist() == [[False, True, True, True, True]]  # published: > 0
    assert read_mask(path, threshold=127).tolist() == [[False, False, False, True, True]]


def test_persam_reads_channel_0_of_the_mask_file_like_persam_py(tmp_path):
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)  # PerSeg's annotations: object colour (128, 0, 0)
    palette.save(tmp_path / "perseg.png")
    assert persam_mask_values(tmp_path / "perseg.png").tolist() == [[0, 128]]
    gray = write_png(tmp_path / "gray.png", np.array([[0, 7]], np.uint8))
    assert persam_mask_values(gray).tolist() == [[0, 7]]
    Image.fromarray(np.array([[False, True]])).save(tmp_path / "bits.png")
    assert persam_mask_values(tmp_path / "bits.png").tolist() == [[0, 255]]
    deep = write_png(tmp_path / "deep.png", np.array([[0, 300]], np.uint16))
    with pytest.raises(DatasetError, match="uint16; PerSAM's reference rule reads 8-bit masks"):
        persam_mask_values(deep)


def test_binary_means_one_object_value():
    assert is_binary(np.array([[0, 255, 255]])) and is_binary(np.array([[0, 1]])) and is_binary(np.zeros((2, 2)))
    assert not is_binary(np.array([[0, 254, 255]]))


def test_check_reports_masks_that_are_not_binary(tmp_path):
    images, masks = make_folder(tmp_path, ["a", "b", "c"])
    jpeg_like = np.array(Image.open(masks / "b.png"))
    jpeg_like[jpeg_like == 255] = 250
    jpeg_like[0, 0] = 3
    write_png(masks / "b.png", jpeg_like)
    assert datasets.check(datasets.folder(images, masks)) == [masks / "b.png"]


def test_check_image_and_mask_of_different_sizes(tmp_path):
    images, masks = make_folder(tmp_path, ["a", "b"])
    write_png(masks / "b.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(DatasetError, match=r"1 mask\(s\) differ in size.*b\.png is 10×10 but b\.png is 24×32"):
        datasets.check(datasets.folder(images, masks))


def test_check_tiff_sizes_from_headers(cvc_root):
    assert datasets.image_size(cvc_root / "Original" / "1.tif") == (16, 16)
    assert datasets.check(datasets.cvc(cvc_root, videos=[10])) == []


def test_check_empty_reference_mask(tmp_path):
    images, masks = make_folder(tmp_path, ["a", "b"])
    write_png(masks / "a.png", np.zeros((24, 32), np.uint8))
    with pytest.raises(DatasetError, match=r"reference mask\(s\) with no object pixel above the threshold 0.*a\.png"):
        datasets.check(datasets.folder(images, masks))


def test_one_intensity_mapping_per_sequence_of_16_bit_images(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i, size in enumerate([(20, 30), (25, 30), (20, 35)]):  # sizes may differ between frames
        image = np.full(size, 1000 * (i + 1), np.uint16)
        image[0, 0] = 0
        tifffile.imwrite(tmp_path / "images" / f"{i}.tif", image)
        write_png(tmp_path / "masks" / f"{i}.png", np.full(size, 255, np.uint8))
    (sequence,) = datasets.folder(tmp_path / "images", tmp_path / "masks")
    low, high = sequence_limits(sequence)
    assert low == pytest.approx(1000) and high == pytest.approx(3000)  # 0.5 and 99.5 percentiles of all frames
    images, masks = make_folder(tmp_path / "rgb", ["a", "b"])
    assert sequence_limits(datasets.folder(images, masks)[0]) is None  # 8-bit images pass unchanged
