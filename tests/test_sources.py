"""Frame sources: every layout, file kind and dtype, read one frame at a time."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_p2sam.engine.pixels import intensity_to_uint8
from napari_p2sam.engine.sources import (
    ArrayFrames,
    FolderFrames,
    SourceError,
    TiffFrames,
    VideoFrames,
    natural_key,
    open_source,
    pixels_for,
    stack_limits,
)
from napari_p2sam.io.errors import settings_of

RNG = np.random.default_rng(7)


def write_video(path, frames: np.ndarray, codec: str, pix_fmt: str) -> None:
    """Write ``(T, H, W, 3)`` uint8 frames with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.parametrize(
    "shape, axes, count, frame, channels",
    [
        ((20, 30), None, 1, (20, 30), 0),
        ((20, 30, 3), None, 1, (20, 30), 3),
        ((20, 30, 4), None, 1, (20, 30), 4),
        ((5, 20, 30), None, 5, (20, 30), 0),
        ((5, 20, 30), "ZYX", 5, (20, 30), 0),
        ((5, 20, 30, 3), None, 5, (20, 30), 3),
        ((5, 20, 30, 2), "ZYXC", 5, (20, 30), 2),
        ((20, 30, 2), "YXC", 1, (20, 30), 2),
        ((2, 5, 20, 30), "CTYX", 5, (20, 30), 2),
    ],
)
def test_array_layouts(shape, axes, count, frame, channels):
    data = RNG.integers(0, 255, shape, dtype=np.uint8)
    source = ArrayFrames(data, axes=axes)
    assert (len(source), source.frame_shape, source.channels) == (count, frame, channels)
    last = source.read(count - 1)
    assert last.shape == frame + ((channels,) if channels else ())
    if axes == "CTYX":
        np.testing.assert_array_equal(last, np.moveaxis(data[:, -1], 0, -1))
    elif count > 1:
        np.testing.assert_array_equal(last, data[-1])
    else:
        np.testing.assert_array_equal(last, data)


def test_dask_array_is_read_one_frame_at_a_time():
    da = pytest.importorskip("dask.array")
    data = RNG.integers(0, 255, (6, 16, 16), dtype=np.uint8)
    reads = []

    def block(block_id=None):
        reads.append(block_id[0])
        return data[block_id[0]][None]

    lazy = da.map_blocks(block, chunks=((1,) * 6, (16,), (16,)), dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8))
    source = open_source(lazy)
    np.testing.assert_array_equal(source.read(4), data[4])
    assert reads == [4]


def test_bad_layouts_are_refused_with_the_shape():
    with pytest.raises(SourceError, match=r"shape \(2, 3, 4, 5, 6\)"):
        open_source(np.zeros((2, 3, 4, 5, 6)))
    with pytest.raises(SourceError, match="axes 'TYX'"):
        ArrayFrames(np.zeros((4, 5)), axes="TYX")
    with pytest.raises(IndexError, match="frame 5 is out of range: the array has 5 frame"):
        open_source(np.zeros((5, 8, 8))).read(5)


def test_tiff_stack_is_read_page_by_page(tmp_path):
    stack = RNG.integers(0, 60000, (100, 256, 256), dtype=np.uint16)  # 13 MB, 128 kB a frame
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, compression="zlib")
    source = open_source(path)
    assert isinstance(source, TiffFrames)
    assert (len(source), source.frame_shape, source.dtype) == (100, (256, 256), np.uint16)
    tracemalloc.start()
    frame = source.read(42)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(frame, stack[42])
    assert peak < 1_000_000, f"reading one frame allocated {peak} bytes"


def test_tiff_rgb_image_and_channel_stack(tmp_path):
    rgb = RNG.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    source = open_source(tmp_path / "rgb.tif")
    assert (len(source), source.channels) == (1, 3)
    np.testing.assert_array_equal(source.read(0), rgb)

    hyper = RNG.integers(0, 255, (4, 2, 40, 50), dtype=np.uint16)  # T, C, Y, X
    tifffile.imwrite(tmp_path / "tc.tif", hyper, imagej=True, metadata={"axes": "TCYX"})
    source = open_source(tmp_path / "tc.tif")
    assert (len(source), source.channels) == (4, 2)
    np.testing.assert_array_equal(source.read(3), np.moveaxis(hyper[3], 0, -1))


@pytest.mark.parametrize("count", [3, 4])
def test_a_plain_3_or_4_frame_uint8_stack_is_read_as_frames_as_napari_shows_it(tmp_path, count):
    import imageio.v3 as iio

    stack = RNG.integers(0, 255, (count, 20, 30), dtype=np.uint8)
    with pytest.warns(DeprecationWarning):  # tifffile stores it as one planar RGB(A) image
        tifffile.imwrite(tmp_path / "stack.tif", stack)
    assert iio.imread(tmp_path / "stack.tif").shape == (count, 20, 30)  # what napari's reader gets: 3 or 4 frames
    source = open_source(tmp_path / "stack.tif")
    assert (len(source), source.channels) == (count, 0)
    for index in range(count):
        np.testing.assert_array_equal(source.read(index), stack[index])
    source.close()
    colour = open_source(tmp_path / "stack.tif", axes="CYX")  # the choice for a planar colour image
    assert (len(colour), colour.channels) == (1, count)
    np.testing.assert_array_equal(colour.read(0), np.moveaxis(stack, 0, -1))
    colour.close()


def test_tiff_with_two_frame_axes_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "tz.tif", np.zeros((3, 4, 16, 16), np.uint8), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(SourceError, match="one frame axis"):
        open_source(tmp_path / "tz.tif")


@pytest.mark.parametrize("name", ["stack.png", "stack.mp4", "stack.jpg"])
def test_a_file_is_read_by_its_content_not_its_suffix(tmp_path, name):
    stack = RNG.integers(0, 255, (12, 20, 30), dtype=np.uint8)
    tifffile.imwrite(tmp_path / name, stack, photometric="minisblack")
    source = open_source(tmp_path / name)
    assert isinstance(source, TiffFrames) and len(source) == 12
    np.testing.assert_array_equal(source.read(11), stack[11])
    source.close()


def test_a_png_named_tif_and_a_video_named_png_are_read_by_their_content(tmp_path):
    image = RNG.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "photo.tif", format="PNG")
    np.testing.assert_array_equal(open_source(tmp_path / "photo.tif").read(0), image)
    write_numbered_video(tmp_path / "clip.png", 6, "mpeg4", "avi")
    source = open_source(tmp_path / "clip.png")
    assert isinstance(source, VideoFrames) and len(source) == 6
    source.close()


def test_a_stack_named_png_in_a_folder_is_refused_not_cut_to_one_frame(tmp_path):
    for i in range(2):
        Image.fromarray(np.full((20, 30), i, np.uint8)).save(tmp_path / f"{i}.png")
    tifffile.imwrite(tmp_path / "2.png", np.zeros((5, 20, 30), np.uint8), photometric="minisblack")
    with pytest.raises(SourceError, match=r"2\.png holds a stack .* \(5, 20, 30\).*skip unreadable files") as refused:
        open_source(tmp_path)
    assert settings_of(refused.value) == ("skip_unreadable",)
    source = open_source(tmp_path, skip_unreadable=True)
    assert [p.name for p in source.files] == ["0.png", "1.png"]
    assert [p.name for p, _ in source.skipped] == ["2.png"]


def cut(path, keep: float) -> None:
    """Truncate the file at ``path`` to ``keep`` (0..1) of its bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_truncated_compressed_image_is_named_alone_and_skipped_in_a_folder_when_asked(tmp_path):
    frames = RNG.integers(0, 255, (3, 64, 64), dtype=np.uint8)
    for i, frame in enumerate(frames):
        tifffile.imwrite(tmp_path / f"{i}.tif", frame, compression="zlib")
    cut(tmp_path / "1.tif", 0.5)
    damaged = (tmp_path / "1.tif").read_bytes()
    for skip in (False, True):  # alone, there is nothing to go on with
        with pytest.raises(SourceError, match=r"1\.tif is cut short: 0 of the 1 pages .*no frame can be read"):
            open_source(tmp_path / "1.tif", skip_unreadable=skip)
    with pytest.raises(
        SourceError, match=r"1\.tif is cut short.*nothing was skipped.*skip unreadable files"
    ) as refused:
        open_source(tmp_path)
    assert settings_of(refused.value) == ("skip_unreadable",)
    source = open_source(tmp_path, skip_unreadable=True)
    assert [p.name for p in source.files] == ["0.tif", "2.tif"]
    assert [(p.name, "cut short" in why) for p, why in source.skipped] == [("1.tif", True)]
    np.testing.assert_array_equal(source.read(1), frames[2])
    assert (tmp_path / "1.tif").read_bytes() == damaged  # nothing touched


@pytest.mark.parametrize("compression", ["zlib", None])
def test_a_stack_cut_short_says_how_many_pages_are_there_and_goes_on_only_when_asked(tmp_path, compression):
    stack = RNG.integers(0, 255, (12, 64, 64), dtype=np.uint8)
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as tiff:  # page by page, so that the pages before the cut are whole
        for frame in stack:
            tiff.write(frame, compression=compression, photometric="minisblack", contiguous=False, metadata=None)
    cut(path, 0.5)
    with pytest.raises(
        SourceError,
        match=r"stack\.tif is cut short: 5 of the 7 or more pages it claims are complete, "
        r"page 5 on is missing; nothing was read.*by skipping what cannot be read",
    ) as refused:
        open_source(path)
    assert settings_of(refused.value) == ("skip_unreadable",)  # the command line adds --skip-unreadable
    source = open_source(path, skip_unreadable=True)
    assert len(source) == 5 and "5 of the 7 or more pages" in source.skipped[0][1]
    for index in range(5):
        np.testing.assert_array_equal(source.read(index), stack[index])


@pytest.mark.parametrize("compression, complete", [("zlib", 5), (None, 6)])  # None: the data is one block
def test_a_shaped_stack_cut_short_says_how_many_of_its_12_frames_are_there(tmp_path, compression, complete):
    stack = RNG.integers(0, 255, (12, 64, 64), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack, compression=compression)  # its metadata says 12 frames
    cut(tmp_path / "stack.tif", 0.5)
    with pytest.raises(SourceError, match=rf"{complete} of the 12 pages it claims are complete, page {complete} on"):
        open_source(tmp_path / "stack.tif")
    source = open_source(tmp_path / "stack.tif", skip_unreadable=True)
    assert len(source) == complete
    for index in range(complete):
        np.testing.assert_array_equal(source.read(index), stack[index])
    with pytest.raises(IndexError):
        source.read(complete)


def test_a_damaged_page_names_the_file_and_the_frame(tmp_path):
    stack = RNG.integers(0, 255, (6, 64, 64), dtype=np.uint8)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, compression="zlib")
    with tifffile.TiffFile(path) as tif:
        start, length = tif.pages[3].dataoffsets[0], tif.pages[3].databytecounts[0]
    data = bytearray(path.read_bytes())
    data[start + length // 2 : start + length] = bytes(length - length // 2)  # zeros over the second half
    path.write_bytes(bytes(data))
    source = open_source(path)
    np.testing.assert_array_equal(source.read(2), stack[2])
    with pytest.raises(SourceError, match=r"frame 3 of .*stack\.tif cannot be read \(.*\): the file is damaged"):
        source.read(3)
    np.testing.assert_array_equal(source.read(4), stack[4])


def huge_header_tiff(path, side: int) -> None:
    """A 16×16 TIFF whose header then claims ``side``×``side`` pixels."""
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), compression="zlib", metadata=None)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        for tag in ("ImageWidth", "ImageLength", "RowsPerStrip"):
            tif.pages[0].tags[tag].overwrite(side)


def test_a_frame_too_large_for_memory_is_refused_before_it_is_allocated(tmp_path):
    huge_header_tiff(tmp_path / "huge.tif", 400_000)  # 149 GiB: over a quarter of any test machine's memory
    with pytest.raises(
        SourceError,
        match=r"huge\.tif: one frame is 400000×400000 pixels of uint8 \(149\.0 GiB\), "
        r"more than a quarter of this machine's .*crop or downscale",
    ):
        open_source(tmp_path / "huge.tif")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(SourceError, match=r"huge\.tif: one frame is 400000×400000"):
        open_source(tmp_path)


def test_folder_in_natural_order(tmp_path):
    frames = RNG.integers(0, 255, (12, 24, 32), dtype=np.uint8)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(tmp_path)
    assert isinstance(source, FolderFrames)
    assert [p.name for p in source.files][:4] == ["img0.png", "img1.png", "img2.png", "img3.png"]
    assert source.files[10].name == "img10.png"
    np.testing.assert_array_equal(source.read(10), frames[10])
    assert sorted(["b10", "b2", "a"], key=natural_key) == ["a", "b2", "b10"]


def test_single_image_files_and_16_bit_folders(tmp_path):
    rgba = RNG.integers(0, 255, (20, 30, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "one.png")
    source = open_source(tmp_path / "one.png")
    assert (len(source), source.channels) == (1, 4)
    np.testing.assert_array_equal(pixels_for(source).rgb(source.read(0)), rgba[..., :3])

    folder = tmp_path / "deep"
    folder.mkdir()
    frames = RNG.integers(0, 4000, (3, 20, 30), dtype=np.uint16)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i}.png")
    source = open_source(folder)
    assert source.dtype == np.uint16
    np.testing.assert_array_equal(source.read(2), frames[2])
    assert pixels_for(source).limits == pytest.approx(tuple(np.percentile(frames.astype(float), (0.5, 99.5))))


def test_folder_with_an_unreadable_file_names_it(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "1.png").write_bytes(b"broken")
    with pytest.raises(
        SourceError, match=r"1\.png cannot be read.*nothing was skipped.*skip unreadable files"
    ) as refused:
        open_source(tmp_path)
    assert settings_of(refused.value) == ("skip_unreadable",)
    source = open_source(tmp_path, skip_unreadable=True)
    assert [p.name for p in source.files] == ["0.png", "2.png"]
    assert [p.name for p, _ in source.skipped] == ["1.png"]
    assert (tmp_path / "1.png").read_bytes() == b"broken"  # nothing touched


def test_folder_frames_of_other_sizes_are_refused(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "0.png")
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(tmp_path / "1.png")
    with pytest.raises(SourceError, match=r"1\.png is 8×9 but 0\.png is 8×8"):
        open_source(tmp_path)


def test_avi_video_reads_exact_frames_in_any_order(tmp_path):
    frames = RNG.integers(0, 255, (7, 32, 48, 3), dtype=np.uint8)
    write_video(tmp_path / "clip.avi", frames, "ffv1", "bgr0")
    source = open_source(tmp_path / "clip.avi")
    assert isinstance(source, VideoFrames)
    assert (len(source), source.frame_shape, source.channels) == (7, (32, 48), 3)
    for index in (0, 1, 2, 5, 3, 6, 0):
        np.testing.assert_array_equal(source.read(index), frames[index])
    source.close()


def test_mp4_video_frame_count_and_content(tmp_path):
    frames = np.stack([np.full((32, 32, 3), 20 * i, np.uint8) for i in range(9)])
    write_video(tmp_path / "clip.mp4", frames, "mpeg4", "yuv420p")
    source = open_source(tmp_path / "clip.mp4")
    assert len(source) == 9
    means = [source.read(i).mean() for i in (8, 4, 0)]
    assert np.allclose(means, [160, 80, 0], atol=4)


def write_numbered_video(path, count: int, codec: str, container_format: str | None = None) -> None:
    """``count`` 48×64 frames, frame i a constant gray 10·i, key frames every 5 frames."""
    import av

    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = 5
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def write_video_changing_size(path) -> None:
    """An MPEG-4 AVI whose frames 0–3 are 48×64 and frames 4–7 are 60×80 (one stream, two encoders).

    Each frame is a gradient moved by 2 px, so that only frames 0 and 4 are key frames.
    """
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for part, (height, width) in enumerate(((48, 64), (60, 80))):
            encoder = av.CodecContext.create("mpeg4", "w")
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            encoder.time_base = Fraction(1, 10)
            frames = []
            for i in range(4):
                row = (np.arange(width) * 3 + i * 2).astype(np.uint8)
                pixels = np.ascontiguousarray(np.broadcast_to(row[:, None], (height, width, 3)))
                frames.append(av.VideoFrame.from_ndarray(pixels, format="rgb24"))
                frames[-1].pts = 4 * part + i
            for frame in [*frames, None]:  # None: the encoder's last packets
                for packet in encoder.encode(frame):
                    packet.stream = stream
                    container.mux(packet)


SIZE_CHANGE = (
    r"clip\.avi: its frames are not all one size: frames 0–3 are 48×64 and frames 4–7 are 60×80 \(height×width\); "
    "P²SAM needs one size: split the video where its size changes, or resize it to one size"
)


def test_a_video_that_changes_size_says_which_frames_have_which_size(tmp_path):
    write_video_changing_size(tmp_path / "clip.avi")
    source = open_source(tmp_path / "clip.avi")
    assert (len(source), source.frame_shape) == (8, (48, 64))  # the stream's header: its first size
    assert [source.read(i).shape for i in range(4)] == [(48, 64, 3)] * 4
    with pytest.raises(SourceError, match=SIZE_CHANGE):
        source.read(4)
    source.close()
    with pytest.raises(SourceError, match=SIZE_CHANGE):
        open_source(tmp_path / "clip.avi").read(6)  # read first, out of order


@pytest.mark.parametrize(
    "name, codec, container_format",
    [
        ("ts_named.mp4", "mpeg2video", "mpegts"),  # MPEG-TS content under an .mp4 name
        ("h264_ts.mp4", "libx264", "mpegts"),
        ("h264.mp4", "libx264", None),
        ("clip.avi", "mpeg4", None),
    ],
)
def test_video_random_access_matches_sequential_decoding(tmp_path, name, codec, container_format):
    write_numbered_video(tmp_path / name, 20, codec, container_format)
    source = open_source(tmp_path / name)
    sequential = [source.read(i) for i in range(len(source))]
    assert len(source) == 20
    assert [round(frame.mean() / 10) for frame in sequential] == list(range(20))
    source.close()
    for index in (7, 3, 15, 0, 19, 10, 11, 2):
        np.testing.assert_array_equal(source.read(index), sequential[index], err_msg=f"frame {index} of {name}")
    source.close()


@pytest.mark.parametrize("name, codec, pix_fmt", [("empty.mp4", "mpeg4", "yuv420p"), ("empty.avi", "ffv1", "bgr0")])
def test_video_with_no_frames_is_refused(tmp_path, name, codec, pix_fmt):
    import av

    with av.open(str(tmp_path / name), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, pix_fmt
        container.start_encoding()
    with pytest.raises(SourceError, match="is a video with no frames"):
        open_source(tmp_path / name)


def test_unreadable_video(tmp_path):
    (tmp_path / "zero.avi").write_bytes(b"")
    with pytest.raises(SourceError, match=r"zero\.avi cannot be read as a video"):
        open_source(tmp_path / "zero.avi")


def test_unknown_file_kind_and_missing_path(tmp_path):
    (tmp_path / "x.xyz").write_text("?")
    with pytest.raises(SourceError, match="unknown kind of file"):
        open_source(tmp_path / "x.xyz")
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(tmp_path / "missing.tif")


# --- pixels: channels and dtypes ---------------------------------------------------------------


def test_uint8_frames_pass_unchanged_gray_repeated_rgba_drops_alpha():
    gray = RNG.integers(0, 255, (3, 10, 12), dtype=np.uint8)
    rgba = RNG.integers(0, 255, (3, 10, 12, 4), dtype=np.uint8)
    gray_pixels = pixels_for(open_source(gray))
    assert gray_pixels.limits is None
    np.testing.assert_array_equal(gray_pixels.rgb(gray[1]), np.repeat(gray[1][..., None], 3, axis=2))
    np.testing.assert_array_equal(pixels_for(open_source(rgba)).rgb(rgba[2]), rgba[2, ..., :3])


def test_other_channel_counts_need_a_choice():
    five = RNG.integers(0, 255, (2, 10, 12, 5), dtype=np.uint8)
    source = open_source(five)
    with pytest.raises(SourceError, match="has 5 channels; choose one"):
        pixels_for(source)
    with pytest.raises(SourceError, match=r"channel 7 cannot be used.*\(0\.\.4\)"):
        pixels_for(source, channel=7)
    one = pixels_for(source, channel=3)
    np.testing.assert_array_equal(one.rgb(five[1]), np.repeat(five[1, ..., 3:4], 3, axis=2))
    three = pixels_for(source, channel=(4, 0, 2))
    np.testing.assert_array_equal(three.rgb(five[0]), five[0][..., [4, 0, 2]])
    with pytest.raises(SourceError, match="grayscale"):
        pixels_for(open_source(np.zeros((2, 8, 8), np.uint8)), channel=0)


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float32, np.float64, np.int32])
def test_other_dtypes_share_one_mapping_over_the_stack(dtype):
    stack = RNG.uniform(0, 1000, (4, 20, 20)).astype(dtype)
    stack[3] += 5000
    pixels = pixels_for(open_source(stack))
    expected = tuple(np.percentile(stack.astype(np.float64), (0.5, 99.5)))
    assert pixels.limits == pytest.approx(expected)
    rgb = pixels.rgb(stack[0])
    assert rgb.dtype == np.uint8 and rgb.shape == (20, 20, 3)
    np.testing.assert_array_equal(rgb[..., 0], intensity_to_uint8(stack[0], expected))
    assert pixels.rgb(stack[3]).mean() > rgb.mean() + 50  # frame 3 is brighter: not stretched on its own


def test_nan_ignored_and_drawn_black():
    stack = RNG.uniform(0, 1, (3, 10, 10)).astype(np.float32)
    stack[1, :5] = np.nan
    pixels = pixels_for(open_source(stack))
    finite = stack[np.isfinite(stack)].astype(np.float64)
    assert pixels.limits == pytest.approx(tuple(np.percentile(finite, (0.5, 99.5))))
    assert (pixels.rgb(stack[1])[:5] == 0).all()


def test_user_limits_and_percentiles():
    stack = np.arange(4 * 10 * 10, dtype=np.uint16).reshape(4, 10, 10)
    source = open_source(stack)
    assert pixels_for(source, limits=(100, 300)).limits == (100.0, 300.0)
    assert pixels_for(source, percentiles=(0, 100)).limits == (0.0, 399.0)
    assert stack_limits(source, percentiles=(50, 50)) == pytest.approx((199.5, 199.5))
    with pytest.raises(SourceError, match="LOW <= HIGH"):
        pixels_for(source, limits=(5, 1))


def test_large_stack_limits_sample_every_frame_deterministically(monkeypatch):
    import napari_p2sam.engine.sources as sources

    monkeypatch.setattr(sources, "LIMIT_SAMPLES", 4000)
    stack = np.stack([np.full((50, 50), 100 * i, np.uint16) for i in range(10)])
    first = stack_limits(open_source(stack), percentiles=(0, 100))
    assert first == (0.0, 900.0)  # the darkest and brightest frames both took part
    assert stack_limits(open_source(stack)) == stack_limits(open_source(stack))
