"""``napari-p2sam segment`` on stacks, folders and videos: outputs, cache, resume after SIGKILL, bad inputs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_p2sam import Settings
from napari_p2sam.cli import main
from napari_p2sam.engine.cache import encoder_key
from napari_p2sam.engine.propagate import propagate

from .test_output_safety import tree
from .test_sources import SIZE_CHANGE, write_video, write_video_changing_size

FAST = ["--method", "persam"]


@pytest.fixture
def stack():
    return np.random.default_rng(5).integers(0, 255, (5, 48, 64), dtype=np.uint8)


@pytest.fixture
def mask():
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 15:45] = 255
    return mask


def segment(*args) -> int:
    return main(["segment", *map(str, args), "--quiet"])


def segment_files(checkpoint, input_path, mask, out, *options) -> int:
    """``segment INPUT --checkpoint CKPT --reference-mask MASK --out OUT [OPTIONS]``."""
    return segment(input_path, "--checkpoint", checkpoint, "--reference-mask", mask, "--out", out, *options)


def expected_labels(model, frames, references, settings: Settings | None = None) -> np.ndarray:
    """The driver's own output, for the settings of ``FAST`` unless given."""
    settings = settings or Settings(method="persam")
    return np.stack([r.labels for r in propagate(model, frames, references, settings)])


def test_tiff_stack_with_a_2d_mask(small_checkpoint, small_model, stack, mask, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.tif"
    code = segment(
        tmp_path / "stack.tif",
        "--checkpoint",
        small_checkpoint,
        "--reference-mask",
        tmp_path / "mask.png",
        "--reference-frame",
        2,
        "--out",
        out,
        *FAST,
    )
    assert code == 0
    labels = tifffile.imread(out)
    assert labels.shape == (5, 48, 64) and labels.dtype == np.uint32  # 32-bit: napari opens it as labels
    np.testing.assert_array_equal(labels, expected_labels(small_model, stack, {2: mask}))
    np.testing.assert_array_equal(labels[2], mask)  # the painted frame keeps its paint (value 255)
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".out.tif.napari-p2sam.lock",
        "mask.png",
        "out.tif",
        "stack.tif",
    ]


def test_labels_stack_with_several_painted_frames_and_objects(small_checkpoint, small_model, stack, tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    references = np.zeros(stack.shape, np.uint16)
    references[0, 5:20, 5:25] = 300
    references[0, 25:45, 30:60] = 7
    references[4, 25:45, 30:60] = 7
    tifffile.imwrite(tmp_path / "labels.tif", references)
    out = tmp_path / "out.tif"
    assert segment_files(small_checkpoint, tmp_path / "stack.tif", tmp_path / "labels.tif", out, *FAST) == 0
    labels = tifffile.imread(out)
    assert labels.dtype == np.uint32  # the uint16 labels' values, in 32 bits
    np.testing.assert_array_equal(labels, expected_labels(small_model, stack, references))
    assert set(np.unique(labels[1])) <= {0, 7, 300} and set(np.unique(labels[3])) <= {0, 7}


@pytest.mark.filterwarnings("ignore:<tifffile.TiffWriter.write> data with shape:DeprecationWarning")
def test_plain_3_frame_uint8_stacks_keep_every_painted_frame(small_checkpoint, small_model, tmp_path):
    stack = np.random.default_rng(3).integers(0, 255, (3, 48, 64), dtype=np.uint8)
    references = np.zeros(stack.shape, np.uint8)
    references[0, 5:20, 5:25] = 1
    references[2, 25:45, 30:60] = 2
    tifffile.imwrite(tmp_path / "stack.tif", stack)  # both stored as one planar RGB image by tifffile
    tifffile.imwrite(tmp_path / "labels.tif", references)
    out = tmp_path / "out.tif"
    assert segment_files(small_checkpoint, tmp_path / "stack.tif", tmp_path / "labels.tif", out, *FAST) == 0
    labels = tifffile.imread(out)
    assert labels.shape == (3, 48, 64)
    np.testing.assert_array_equal(labels[[0, 2]], references[[0, 2]])  # frame 2's paint is kept
    np.testing.assert_array_equal(labels, expected_labels(small_model, stack, references))

    Image.fromarray(references[0]).save(tmp_path / "mask.png")
    colour = tmp_path / "colour.tif"  # --axes CYX: the file is one planar colour image
    assert (
        segment(
            tmp_path / "stack.tif",
            "--axes",
            "CYX",
            "--checkpoint",
            small_checkpoint,
            "--reference-mask",
            tmp_path / "mask.png",
            "--out",
            colour,
            *FAST,
        )
        == 0
    )
    np.testing.assert_array_equal(tifffile.imread(colour), references[0])


def test_folder_to_pngs_with_a_frame_range(small_checkpoint, small_model, stack, mask, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(stack):
        Image.fromarray(frame).save(folder / f"f{i}.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "masks"
    assert (
        segment_files(small_checkpoint, folder, tmp_path / "mask.png", out, "--format", "png", "--frames", "1:4", *FAST)
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [".napari-p2sam.json", "00001.png", "00002.png", "00003.png"]
    expected = expected_labels(small_model, stack, {0: mask})
    for i in (1, 2, 3):
        np.testing.assert_array_equal(np.array(Image.open(out / f"{i:05d}.png")), expected[i])


def test_video_input_and_cache_reuse(small_checkpoint, tmp_path, capsys):
    frames = np.random.default_rng(1).integers(0, 255, (4, 32, 48, 3), dtype=np.uint8)
    write_video(tmp_path / "clip.avi", frames, "ffv1", "bgr0")
    mask = np.zeros((32, 48), np.uint8)
    mask[5:25, 10:30] = 1
    Image.fromarray(mask).save(tmp_path / "mask.png")
    common = [
        tmp_path / "clip.avi",
        "--checkpoint",
        small_checkpoint,
        "--reference-mask",
        tmp_path / "mask.png",
        "--cache",
        tmp_path / "cache",
        *FAST,
    ]
    assert segment(*common, "--out", tmp_path / "a.tif") == 0
    assert "encoded 4 frame(s), 0 from the cache" in capsys.readouterr().out
    assert (
        segment(*common, "--out", tmp_path / "b.tif", "--variant", "medical", "--method", "p2sam", "--parts", 1, 2) == 0
    )
    assert "encoded 0 frame(s), 4 from the cache" in capsys.readouterr().out
    assert tifffile.imread(tmp_path / "a.tif").shape == (4, 32, 48)


def test_uint16_stack_with_user_limits(small_checkpoint, small_model, mask, tmp_path):
    raw = np.random.default_rng(2).uniform(0, 4000, (3, 48, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "raw.tif", raw, photometric="minisblack")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    assert (
        segment_files(
            small_checkpoint,
            tmp_path / "raw.tif",
            tmp_path / "mask.png",
            tmp_path / "out.tif",
            "--limits",
            500,
            3000,
            *FAST,
        )
        == 0
    )
    expected = np.stack(
        [r.labels for r in propagate(small_model, raw, {0: mask}, Settings(method="persam"), limits=(500, 3000))]
    )
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), expected)


# --- resume after SIGKILL ----------------------------------------------------------------------


def cached_entries(folder) -> int:
    return sum(1 for group in folder.glob("*/") for p in group.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_killed_run_resumes_with_identical_output(small_checkpoint, small_model, mask, tmp_path):
    frames = np.random.default_rng(9).integers(0, 255, (8, 48, 64), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", frames)
    Image.fromarray(mask).save(tmp_path / "mask.png")
    cache, out = tmp_path / "cache", tmp_path / "out.tif"
    command = [
        sys.executable,
        "-c",
        "import sys; from napari_p2sam.cli import main; sys.exit(main())",
        "segment",
        str(tmp_path / "stack.tif"),
        "--checkpoint",
        str(small_checkpoint),
        "--reference-mask",
        str(tmp_path / "mask.png"),
        "--out",
        str(out),
        "--cache",
        str(cache),
        "--quiet",
        "--variant",
        "medical",
        "--parts",
        "1",
        "2",
    ]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while cached_entries(cache) < 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not out.exists()
    kept = cached_entries(cache)
    assert 3 <= kept < 8

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"encoded {8 - kept} frame(s), {kept} from the cache" in again.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".out.tif.napari-p2sam.lock",
        "cache",
        "mask.png",
        "out.tif",
        "stack.tif",
    ]  # the killed run's partial is gone
    uninterrupted = expected_labels(small_model, frames, {0: mask}, Settings(variant="medical", parts=(1, 2)))
    np.testing.assert_array_equal(tifffile.imread(out), uninterrupted)


# --- bad inputs: a clear message, exit status 1, nothing written or lost --------------------------


@pytest.fixture
def inputs(stack, mask, tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path


def fails(capsys, *args) -> str:
    assert segment(*args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def nothing_written(folder, *keep) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(["stack.tif", "mask.png", "small.pth", *keep])


@pytest.fixture
def checkpoint(small_checkpoint, inputs):
    (inputs / "small.pth").symlink_to(small_checkpoint)
    return inputs / "small.pth"


def test_existing_output_is_never_overwritten(checkpoint, inputs, capsys):
    (inputs / "out.tif").write_bytes(b"precious")
    (inputs / "pngs").mkdir()
    (inputs / "pngs" / "a.png").write_bytes(b"precious too")
    base = [inputs / "stack.tif", "--checkpoint", checkpoint, "--reference-mask", inputs / "mask.png", *FAST]
    assert "out.tif already exists; choose another output, or allow replacing it (--out, --overwrite)" in fails(
        capsys, *base, "--out", inputs / "out.tif"
    )
    assert "pngs already exists" in fails(capsys, *base, "--out", inputs / "pngs", "--format", "png")
    assert "out.tif was not written by napari-p2sam, so it is not replaced" in fails(
        capsys, *base, "--out", inputs / "out.tif", "--overwrite"
    )
    assert (inputs / "out.tif").read_bytes() == b"precious"
    assert (inputs / "pngs" / "a.png").read_bytes() == b"precious too"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--reference-frame", 5], r"reference frame 5 is out of range: .*stack\.tif has 5 frame\(s\) \(0\.\.4\)"),
        (["--frames", "3:9"], r"frames 3:9 cannot be produced: the stack has 5 frame\(s\)"),
        (["--cache", "stack.tif"], "the cache folder .*stack.tif cannot be written to"),
    ],
)
def test_bad_options(checkpoint, inputs, capsys, extra, message):
    extra = [inputs / e if e == "stack.tif" else e for e in extra]
    err = fails(
        capsys,
        inputs / "stack.tif",
        "--checkpoint",
        checkpoint,
        "--reference-mask",
        inputs / "mask.png",
        "--out",
        inputs / "out.tif",
        *extra,
        *FAST,
    )
    assert re.search(message, err), err
    nothing_written(inputs)


def test_reference_of_another_size(checkpoint, inputs, capsys):
    Image.fromarray(np.ones((40, 64), np.uint8)).save(inputs / "small-mask.png")
    err = fails(
        capsys,
        inputs / "stack.tif",
        "--checkpoint",
        checkpoint,
        "--reference-mask",
        inputs / "small-mask.png",
        "--out",
        inputs / "out.tif",
        *FAST,
    )
    assert "the reference for frame 0 is 40×64 but the frames are 48×64" in err
    nothing_written(inputs, "small-mask.png")


def test_no_painted_pixel(checkpoint, inputs, capsys):
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(inputs / "empty.png")
    tifffile.imwrite(inputs / "empty.tif", np.zeros((5, 48, 64), np.uint8))
    for empty in ("empty.png", "empty.tif"):
        err = fails(
            capsys,
            inputs / "stack.tif",
            "--checkpoint",
            checkpoint,
            "--reference-mask",
            inputs / empty,
            "--out",
            inputs / "out.tif",
            *FAST,
        )
        assert "no painted pixel" in err
    nothing_written(inputs, "empty.png", "empty.tif")


def test_labels_stack_of_another_length(checkpoint, inputs, capsys):
    tifffile.imwrite(inputs / "labels.tif", np.ones((3, 48, 64), np.uint8), photometric="minisblack")
    err = fails(
        capsys,
        inputs / "stack.tif",
        "--checkpoint",
        checkpoint,
        "--reference-mask",
        inputs / "labels.tif",
        "--out",
        inputs / "out.tif",
        *FAST,
    )
    assert "has 3 frames but" in err and "has 5" in err
    nothing_written(inputs, "labels.tif")


def test_unreadable_file_in_a_folder(checkpoint, inputs, stack, capsys):
    folder = inputs / "frames"
    folder.mkdir()
    for i, frame in enumerate(stack):
        Image.fromarray(frame).save(folder / f"{i}.png")
    (folder / "2.png").write_bytes(b"not a png")
    base = [folder, "--checkpoint", checkpoint, "--reference-mask", inputs / "mask.png", *FAST]
    err = fails(capsys, *base, "--out", inputs / "out.tif")
    assert "2.png cannot be read" in err and "nothing was skipped" in err and "--skip-unreadable" in err
    nothing_written(inputs, "frames")
    assert segment(*base, "--out", inputs / "out.tif", "--skip-unreadable") == 0
    assert re.search(r"skipped unreadable file .*2\.png", capsys.readouterr().err)
    assert tifffile.imread(inputs / "out.tif").shape == (4, 48, 64)


@pytest.mark.parametrize("compression", ["zlib", None])
def test_a_stack_cut_short_stops_unless_asked_to_go_on(checkpoint, inputs, capsys, compression):
    frames = np.random.default_rng(2).integers(0, 255, (12, 48, 64), dtype=np.uint8)
    tifffile.imwrite(inputs / "cut.tif", frames, compression=compression)
    data = (inputs / "cut.tif").read_bytes()
    (inputs / "cut.tif").write_bytes(data[: len(data) // 2])
    base = [inputs / "cut.tif", "--checkpoint", checkpoint, "--reference-mask", inputs / "mask.png", *FAST]
    err = fails(capsys, *base, "--out", inputs / "out.tif")
    complete = int(re.search(r"cut\.tif is cut short: (\d+) of the 12 pages it claims are complete", err)[1])
    assert complete > 0 and "--skip-unreadable" in err
    nothing_written(inputs, "cut.tif")
    assert segment(*base, "--out", inputs / "out.tif", "--skip-unreadable") == 0
    skipped = rf"skipped unreadable file .*cut\.tif \(cut short: {complete} of the 12 pages"
    assert re.search(skipped, capsys.readouterr().err)
    assert tifffile.imread(inputs / "out.tif").reshape(-1, 48, 64).shape[0] == complete


def test_video_with_no_frames(checkpoint, inputs, capsys):
    import av

    with av.open(str(inputs / "empty.avi"), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "bgr0"
        container.start_encoding()
    err = fails(
        capsys,
        inputs / "empty.avi",
        "--checkpoint",
        checkpoint,
        "--reference-mask",
        inputs / "mask.png",
        "--out",
        inputs / "out.tif",
        *FAST,
    )
    assert "empty.avi is a video with no frames" in err
    nothing_written(inputs, "empty.avi")


@pytest.mark.parametrize("height, width, reference_frame", [(48, 64, 0), (60, 80, 5)])
def test_a_video_that_changes_size_gets_one_message_whichever_size_the_mask_is(
    checkpoint, inputs, capsys, height, width, reference_frame
):
    """Frames 0–3 are 48×64, 4–7 are 60×80: a mask of either size, painted on a frame of its size, is told the same."""
    write_video_changing_size(inputs / "clip.avi")
    Image.fromarray(np.ones((height, width), np.uint8)).save(inputs / "mask.png")
    before = tree(inputs)
    err = fails(
        capsys,
        inputs / "clip.avi",
        "--checkpoint",
        checkpoint,
        "--reference-mask",
        inputs / "mask.png",
        "--reference-frame",
        reference_frame,
        "--out",
        inputs / "out.tif",
        *FAST,
    )
    assert re.search(SIZE_CHANGE, err), err
    after = tree(inputs)
    after.pop(".out.tif.napari-p2sam.lock", None)  # left where the run failed while writing, as lock files are
    assert after == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache_folder(checkpoint, inputs, capsys):
    (inputs / "ro").mkdir(mode=0o500)
    err = fails(
        capsys,
        inputs / "stack.tif",
        "--checkpoint",
        checkpoint,
        "--reference-mask",
        inputs / "mask.png",
        "--out",
        inputs / "out.tif",
        "--cache",
        inputs / "ro",
        *FAST,
    )
    assert "cannot be written to" in err


def test_cache_group_is_named_by_the_model(small_model, checkpoint, inputs):
    assert (
        segment_files(
            checkpoint,
            inputs / "stack.tif",
            inputs / "mask.png",
            inputs / "out.tif",
            "--cache",
            inputs / "cache",
            *FAST,
        )
        == 0
    )
    assert [p.name for p in (inputs / "cache").iterdir()] == [encoder_key(small_model)]


def test_multichannel_stack_needs_a_channel(checkpoint, inputs, stack, capsys):
    two = np.stack([stack, 255 - stack], axis=1)  # T, C, Y, X
    tifffile.imwrite(inputs / "two.tif", two, imagej=True, metadata={"axes": "TCYX"})
    base = [inputs / "two.tif", "--checkpoint", checkpoint, "--reference-mask", inputs / "mask.png", *FAST]
    assert "has 2 channels; choose one" in fails(capsys, *base, "--out", inputs / "out.tif")
    assert not (inputs / "out.tif").exists()
    assert segment(*base, "--out", inputs / "out.tif", "--channel", 1) == 0
    assert tifffile.imread(inputs / "out.tif").shape == (5, 48, 64)
