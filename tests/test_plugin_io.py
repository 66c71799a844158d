"""The plugin as napari finds it: manifest, widget, sample data, reader, writers, and the scripting example."""

from __future__ import annotations

import doctest
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_p2sam import _reader, _writer
from napari_p2sam._sample_data import time_lapse_stack
from napari_p2sam.engine.sources import VIDEO_SUFFIXES
from napari_p2sam.launch import open_files
from napari_p2sam.ui.widget import P2SAMWidget

from .plugin_support import one_torch_thread  # noqa: F401  (fixture)
from .test_sources import write_video

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_manifest_is_discovered_and_valid():
    from npe2 import PluginManager, PluginManifest

    manifest = PluginManifest.from_distribution("napari-p2sam")
    manifest.validate_imports()
    pm = PluginManager.instance()
    pm.discover()
    found = pm.get_manifest("napari-p2sam").contributions
    assert [w.display_name for w in found.widgets] == ["One-shot segmentation"]
    assert [s.key for s in found.sample_data] == ["time-lapse", "photo-pan"]
    assert found.readers[0].accepts_directories
    assert found.readers[0].filename_patterns == [f"*{suffix}" for suffix in VIDEO_SUFFIXES]
    assert pm.get_manifest("napari-p2sam").on_activate == "napari_p2sam._reader:prefer_for_videos"
    assert [w.filename_extensions for w in found.writers] == [[".tif", ".tiff"], [".png"]]


def test_widget_and_sample_data_open_from_the_manifest(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-p2sam", "time-lapse")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-p2sam", "One-shot segmentation")
    assert isinstance(widget, P2SAMWidget)
    image, reference = viewer.layers
    assert image.data.shape == (12, 192, 192) and image.data.dtype == np.uint16
    painted = [t for t in range(12) if reference.data[t].any()]
    assert painted == [0] and set(np.unique(reference.data[0])) == {0, 1, 2}
    assert (widget.image.value, widget.reference.value) == (image, reference)

    viewer.open_sample("napari-p2sam", "photo-pan")
    video, empty = viewer.layers[-2:]
    assert video.rgb and video.data.shape == (8, 300, 400, 3) and not empty.data.any()
    # the pan moves: consecutive frames differ, and overlap shifted by the pan step
    assert not np.array_equal(video.data[0], video.data[1])


def test_sample_cells_move_and_keep_their_labels():
    images, truth = time_lapse_stack(frames=4)
    assert images.shape == (4, 192, 192) and truth.shape == images.shape
    centre = [np.argwhere(truth[t] == 1).mean(axis=0) for t in range(4)]
    assert centre[3][1] - centre[0][1] == pytest.approx(15, abs=1)  # cell 1 drifts 5 px per frame
    assert images[0][truth[0] == 2].mean() > images[0][truth[0] == 0].mean() + 500


def test_reader_opens_an_image_folder_lazily_in_natural_order(tmp_path):
    for index in (10, 2, 1):
        Image.fromarray(np.full((6, 8), index * 10, np.uint8)).save(tmp_path / f"frame{index}.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    reader = _reader.get_reader(str(tmp_path))
    assert reader is not None
    with pytest.warns(UserWarning, match="skipped 1 unreadable file"):
        [(data, meta, kind)] = reader(str(tmp_path))
    assert kind == "image" and meta["name"] == tmp_path.name and not meta["rgb"]
    assert type(data).__module__.startswith("dask") and data.shape == (3, 6, 8)
    assert [int(np.asarray(data[t]).max()) for t in range(3)] == [10, 20, 100]


def test_reader_opens_a_video_lazily(tmp_path):
    path = tmp_path / "clip.avi"
    frames = small_video(path)
    reader = _reader.get_reader(str(path))
    [(data, meta, _kind)] = reader(str(path))
    assert meta["rgb"] and data.shape == (4, 16, 24, 3)
    np.testing.assert_array_equal(np.asarray(data[2]), frames[2])
    np.testing.assert_array_equal(np.asarray(data[0]), frames[0])  # seeking back works


def test_reader_reads_a_file_by_its_content_not_its_suffix(tmp_path):
    stack = np.arange(12, dtype=np.uint8)[:, None, None] * np.ones((12, 6, 8), np.uint8)
    tifffile.imwrite(tmp_path / "stack.mp4", stack, photometric="minisblack")
    [(data, meta, kind)] = _reader.get_reader(str(tmp_path / "stack.mp4"))(str(tmp_path / "stack.mp4"))
    assert kind == "image" and not meta["rgb"] and data.shape == (12, 6, 8)
    np.testing.assert_array_equal(np.asarray(data), stack)


def small_video(path: Path) -> np.ndarray:
    """Write 4 frames ``(4, 16, 24, 3)`` losslessly to ``path`` (.avi or .mkv); returns them."""
    pytest.importorskip("av")
    frames = np.zeros((4, 16, 24, 3), np.uint8)
    for t in range(4):
        frames[t, :, :, t % 3] = 60 * (t + 1)
    write_video(path, frames, "ffv1", "bgr0")
    return frames


def test_napari_opens_videos_with_our_reader_unless_the_user_chose_another(make_napari_viewer, tmp_path):
    """The path of drag and drop and File → Open (``plugin=None``), after the plugin's first use in a session."""
    from napari.errors import MultipleReaderError
    from napari.settings import get_settings

    viewer = make_napari_viewer()  # napari's settings start from their defaults
    frames = small_video(tmp_path / "clip.mkv")
    small_video(tmp_path / "clip.avi")
    with pytest.raises(MultipleReaderError):  # napari's window would ask which reader
        viewer.open(tmp_path / "clip.mkv", plugin=None)

    plugins = get_settings().plugins
    plugins.extension2reader = {"*.avi": "napari"}  # the user's own choice for .avi
    _reader.prefer_for_videos()  # what npe2 runs when the plugin is first used

    [layer] = viewer.open(tmp_path / "clip.mkv", plugin=None)
    assert layer.source.reader_plugin == "napari-p2sam" and type(layer.data).__module__.startswith("dask")
    np.testing.assert_array_equal(np.asarray(layer.data[3]), frames[3])
    assert plugins.extension2reader["*.avi"] == "napari"
    assert {plugins.extension2reader[f"*{suffix}"] for suffix in VIDEO_SUFFIXES if suffix != ".avi"} == {"napari-p2sam"}
    [kept] = viewer.open(tmp_path / "clip.avi", plugin=None)
    assert kept.source.reader_plugin == "napari" and isinstance(kept.data, np.ndarray)


def test_launch_opens_videos_and_image_folders_with_our_reader(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    small_video(tmp_path / "clip.avi")
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(np.full((6, 8), index, np.uint8)).save(folder / f"{index}.png")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((2, 6, 8), np.uint16))

    open_files(viewer, [str(tmp_path / "clip.avi"), str(folder), str(tmp_path / "stack.tif")])
    video, frames, stack = viewer.layers
    assert [layer.source.reader_plugin for layer in viewer.layers] == ["napari-p2sam", "napari-p2sam", "napari"]
    assert type(video.data).__module__.startswith("dask") and video.data.shape == (4, 16, 24, 3)
    assert frames.data.shape == (3, 6, 8) and stack.data.shape == (2, 6, 8)


def test_reader_leaves_other_files_to_napari(tmp_path):
    (tmp_path / "a.tif").write_bytes(b"")
    assert _reader.get_reader(str(tmp_path / "a.tif")) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _reader.get_reader(str(empty)) is None


def test_writers_save_tiff_and_png_folders(tmp_path):
    labels = np.zeros((3, 6, 8), np.int32)
    labels[1, 2:4, 2:5] = 2
    labels[2, 0, 0] = 300
    [tiff] = _writer.write_tiff(str(tmp_path / "out.tif"), labels, {})
    np.testing.assert_array_equal(tifffile.imread(tiff), labels)

    [folder] = _writer.write_png_folder(str(tmp_path / "masks.png"), labels, {})
    names = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert folder == str(tmp_path / "masks") and names == [".napari-p2sam.json", "00000.png", "00001.png", "00002.png"]
    second = np.array(Image.open(tmp_path / "masks" / "00001.png"))
    np.testing.assert_array_equal(second, labels[1])
    assert np.array(Image.open(tmp_path / "masks" / "00002.png"))[0, 0] == 300  # 16-bit when needed

    with pytest.raises(ValueError, match=r"label values -300\.\.0 do not fit a PNG \(0\.\.65535\); save them as TIFF"):
        _writer.write_png_folder(str(tmp_path / "bad"), -labels, {})
    with pytest.raises(ValueError, match=r"label values 0\.\.300000 do not fit a PNG"):
        _writer.write_png_folder(str(tmp_path / "big"), labels * 1000, {})


def painted_labels(dtype) -> np.ndarray:
    """Labels ``(3, 6, 8)``: objects 1 and 2, and 255 in a corner."""
    labels = np.zeros((3, 6, 8), dtype)
    labels[0, 1:3, 1:4] = 1
    labels[1, 2:5, 3:7] = 2
    labels[2, 0, 0] = 255
    return labels


@pytest.mark.parametrize("dtype, largest", [(np.uint8, 255), (np.uint16, 300), (np.int32, 70000)])
def test_saved_labels_reopen_in_napari_as_labels(make_napari_viewer, tmp_path, dtype, largest):
    """Saved through napari with the plugin's writers, reopened through napari's open path."""
    from napari.layers import Labels

    viewer = make_napari_viewer()
    labels = painted_labels(dtype)
    labels[2, 5, 7] = largest
    layer = viewer.add_labels(labels, name="painted")
    layer.save(str(tmp_path / "labels.tif"), plugin="napari-p2sam")

    for plugin in ("napari", None):  # viewer.open's default; drag and drop and File → Open
        [tiff] = viewer.open(tmp_path / "labels.tif", plugin=plugin)
        assert isinstance(tiff, Labels)
        np.testing.assert_array_equal(tiff.data, labels)

    if largest > 65535:
        return  # no PNG holds it (the writer says so, see test_writers_save_tiff_and_png_folders)
    layer.save(str(tmp_path / "masks.png"), plugin="napari-p2sam")
    [pngs] = viewer.open(tmp_path / "masks", plugin="napari-p2sam")  # the reader napari asks about for folders
    assert isinstance(pngs, Labels) and pngs.name == "masks"
    np.testing.assert_array_equal(pngs.data, labels)


def test_batch_outputs_reopen_in_napari_as_labels(make_napari_viewer, small_checkpoint, tmp_path, one_torch_thread):
    from napari.layers import Labels

    from napari_p2sam.cli import main

    viewer = make_napari_viewer()
    tifffile.imwrite(tmp_path / "stack.tif", np.random.default_rng(3).integers(0, 255, (5, 48, 64), np.uint8))
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 15:45] = 7
    Image.fromarray(mask).save(tmp_path / "mask.png")
    common = [
        "segment",
        str(tmp_path / "stack.tif"),
        "--checkpoint",
        str(small_checkpoint),
        "--reference-mask",
        str(tmp_path / "mask.png"),
        "--method",
        "persam",
        "--quiet",
    ]
    assert main([*common, "--out", str(tmp_path / "out.tif")]) == 0
    assert main([*common, "--out", str(tmp_path / "masks"), "--format", "png"]) == 0

    [tiff] = viewer.open(tmp_path / "out.tif")
    [pngs] = viewer.open(tmp_path / "masks", plugin="napari-p2sam")
    for layer in (tiff, pngs):
        assert isinstance(layer, Labels) and layer.data.shape == (5, 48, 64)
        np.testing.assert_array_equal(layer.data[0], mask)  # the painted frame, with its label value
    np.testing.assert_array_equal(tiff.data, pngs.data)


def test_reader_opens_only_our_png_folders_as_labels(tmp_path):
    folder = tmp_path / "masks"
    _writer.write_png_folder(str(folder), painted_labels(np.uint8), {})
    assert _reader.get_reader(str(folder))(str(folder))[0][2] == "labels"
    (folder / ".napari-p2sam.json").unlink()  # e.g. copied without its hidden file: PNGs like any others
    [(data, _meta, kind)] = _reader.get_reader(str(folder))(str(folder))
    assert kind == "image"
    np.testing.assert_array_equal(np.asarray(data), painted_labels(np.uint8))


def test_scripting_example_runs(make_napari_viewer, tiny_checkpoint, one_torch_thread):
    """docs/scripting.md's example, with the tiny random SAM as ``checkpoint``.

    (``make_napari_viewer``: napari checks that the viewer the example opens is closed again.)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = doctest.testfile(
            str(DOCS / "scripting.md"), module_relative=False, globs={"checkpoint": tiny_checkpoint}, report=True
        )
    assert result.attempted >= 8 and result.failed == 0


def test_launch_opens_on_the_painted_frame(tmp_path):
    from napari_p2sam.launch import open_viewer

    tifffile.imwrite(tmp_path / "movie.tif", np.zeros((6, 16, 16), np.uint8))
    painted = np.zeros((6, 16, 16), np.uint8)
    painted[3, 4:9, 4:9] = 1
    _writer.write_tiff(str(tmp_path / "painted.tif"), painted, {})  # saved labels reopen as labels
    viewer, widget = open_viewer([str(tmp_path / "movie.tif"), str(tmp_path / "painted.tif")], show=False)
    try:
        assert viewer.dims.current_step[0] == 3
        assert widget.reference.value is viewer.layers["painted"]
    finally:
        viewer.close()
