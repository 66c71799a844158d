"""The batch manifest: CSV and pattern forms, paths, and every problem reported at once with its row, before any work."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_p2sam.batch.manifest import (
    ManifestError,
    check_items,
    items_from_patterns,
    plan_manifest,
    read_manifest,
)
from napari_p2sam.batch.records import write_item_record
from napari_p2sam.io.label_files import write_label_tiff

from .test_download import read_only

HEADER = "input,reference_mask,reference_frame,preset,output\n"


@pytest.fixture
def data(tmp_path) -> Path:
    """``data/``: a uint16 stack (5 frames), a uint8 stack (6), masks of the right size, of another, and empty."""
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    tifffile.imwrite(folder / "cells.tif", rng.integers(0, 4000, (5, 40, 48), dtype=np.uint16))
    tifffile.imwrite(folder / "video.tif", rng.integers(0, 255, (6, 40, 48), dtype=np.uint8))
    mask = np.zeros((40, 48), np.uint8)
    mask[5:20, 10:30] = 1
    Image.fromarray(mask).save(folder / "mask.png")
    Image.fromarray(np.ones((20, 24), np.uint8)).save(folder / "small.png")
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(folder / "empty.png")
    return folder


def manifest(folder: Path, rows: str, name: str = "manifest.csv") -> Path:
    path = folder / name
    path.write_text(HEADER + rows)
    return path


def problems(err: pytest.ExceptionInfo) -> list[str]:
    return err.value.problems


def test_every_problem_is_reported_at_once_with_its_row(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "video_labels.tif").write_text("someone's notes")  # an output that is not ours
    (tmp_path / "a_file").write_text("")
    path = manifest(
        data,
        "cells.tif,mask.png,,,\n"  # row 2: fine
        "missing.tif,mask.png,,,\n"  # row 3
        "cells.tif,small.png,,,\n"  # row 4
        "cells.tif,empty.png,,,\n"  # row 5
        "video.tif,mask.png,,,\n"  # row 6: its default output exists
        "cells.tif,mask.png,7,,\n"  # row 7: frame 7 of 5
        f"video.tif,mask.png,,,{out / 'cells_labels.tif'}\n"  # row 8: row 2's output
        "video.tif,mask.png,,,mask.png\n"  # row 9: output on its own mask
        f"video.tif,mask.png,,,{tmp_path / 'a_file' / 'labels.tif'}\n",  # row 10: under a regular file
    )
    items = read_manifest(path, out)
    with pytest.raises(ManifestError) as err:
        check_items(items, out, overwrite=False)
    lines = problems(err)
    expected = [
        r"^row 3 \(missing\.tif\): input: no such file or folder: .*missing\.tif",
        r"^row 4 \(cells\.tif\): reference_mask: the reference for frame 0 is 20×24 but the frames are 40×48",
        r"^row 5 \(cells\.tif\): reference_mask: no painted pixel",
        r"^row 6 \(video\.tif\): .*video_labels\.tif already exists; choose another output or pass --overwrite",
        r"^row 7 \(cells\.tif\): reference_mask: reference frame 7 is out of range: .* has 5 frame",
        r"^row 8 \(video\.tif\): output .*cells_labels\.tif is also the output of row 2 \(cells\.tif\)",
        r"^row 9 \(video\.tif\): output .*mask\.png is the reference mask",
        r"^row 10 \(video\.tif\): output .*labels\.tif: .*a_file is a file, not a folder",
    ]
    for pattern in expected:
        assert sum(bool(re.search(pattern, line)) for line in lines) == 1, (pattern, lines)
    assert len(lines) == len(expected), lines
    assert str(err.value).startswith("9 item(s): 8 problems, nothing was run:")
    assert (out / "video_labels.tif").read_text() == "someone's notes"
    assert sorted(p.name for p in out.iterdir()) == ["video_labels.tif"]


def test_a_manifest_that_is_not_csv_or_lacks_columns(data, tmp_path):
    (data / "binary.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ManifestError, match=r"(?s)binary\.csv: 1 problem.*\n  not a CSV file \(it is not UTF-8 text\)"):
        read_manifest(data / "binary.csv", tmp_path)
    (data / "semicolons.csv").write_text("input;reference_mask\ncells.tif;mask.png\n")
    with pytest.raises(ManifestError, match=r"row 1: the header has no column input or reference_mask \(the columns "):
        read_manifest(data / "semicolons.csv", tmp_path)
    (data / "typo.csv").write_text("input,refrence_mask\ncells.tif,mask.png\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(data / "typo.csv", tmp_path)
    assert problems(err) == [
        "row 1: the header has no column reference_mask",
        "row 1: unknown column(s) 'refrence_mask'; the columns are input, reference_mask, reference_frame, preset, "
        "output",
    ]
    (data / "empty.csv").write_text("")
    with pytest.raises(ManifestError, match="the first row must be the header: input,reference_mask"):
        read_manifest(data / "empty.csv", tmp_path)
    with pytest.raises(
        ManifestError, match=r"(?s)nothing\.csv: 1 problem.*cannot be read \(no such file or directory\)"
    ):
        read_manifest(data / "nothing.csv", tmp_path)


def test_bad_cells_of_several_rows_are_reported_together(data, tmp_path):
    path = manifest(data, "cells.tif,mask.png,first,,\n,,,,\n,mask.png,-1,fast,\ncells.tif,mask.png,0,,,extra\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(path, tmp_path)
    assert problems(err) == [
        "row 2: reference_frame 'first' is not a frame number (0, 1, 2, ...)",
        "row 4: the input cell is empty",
        "row 4: reference_frame '-1' is not a frame number (0, 1, 2, ...)",
        "row 4: unknown preset 'fast'; choose one of photos, endoscopy-video, ct-follow-up, persam or leave it empty",
        "row 5: 6 cells but the header has 5 columns",
    ]


def test_bad_cells_and_bad_files_are_reported_together(data, tmp_path):
    path = manifest(data, "cells.tif,mask.png,first,,\nmissing.tif,mask.png,,,\nvideo.tif,mask.png,,,\n")
    with pytest.raises(ManifestError) as err:
        plan_manifest(path, tmp_path / "out", overwrite=False)
    assert str(err.value).startswith(f"manifest {path}: 2 problems, nothing was run:")
    assert problems(err) == [
        "row 2: reference_frame 'first' is not a frame number (0, 1, 2, ...)",
        f"row 3 (missing.tif): input: no such file or folder: {data / 'missing.tif'}",
    ]
    manifest(data, "cells.tif,mask.png,1,,\nvideo.tif,mask.png,,,\n")
    plans = plan_manifest(path, tmp_path / "out", overwrite=False)
    assert [(plan.item.name, sorted(plan.painted)) for plan in plans] == [("cells", [1]), ("video", [0])]


def test_paths_are_relative_to_the_manifest_and_expanded(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(data.parent))
    monkeypatch.setenv("MASKS", str(data))
    path = manifest(
        data,
        "cells.tif,$MASKS/mask.png,2,ct-follow-up,\n"
        "~/data/video.tif,mask.png,,,labels/video.tif\n"
        "sub/cells.tif,mask.png,,,\n",
    )
    first, second, third = read_manifest(Path("data/manifest.csv"), Path("out"))
    assert (first.row, first.input, first.reference_mask) == (2, Path("data/cells.tif"), data / "mask.png")
    assert (first.reference_frame, first.preset, first.output) == (2, "ct-follow-up", Path("out/cells_labels.tif"))
    assert (second.input, second.output, second.name) == (data / "video.tif", Path("data/labels/video.tif"), "video")
    assert (second.reference_frame, second.preset) == (None, None)
    assert (third.name, third.output) == ("cells-2", Path("out/cells-2_labels.tif"))
    assert path.exists()


def test_plans_carry_what_segment_reads_and_the_whole_stack_limits(data, tmp_path):
    labels = np.zeros((5, 40, 48), np.uint16)
    labels[1, 5:20, 10:30] = 3
    labels[3, 20:30, 5:15] = 7
    tifffile.imwrite(data / "painted.tif", labels)
    path = manifest(data, "cells.tif,painted.tif,,,\nvideo.tif,mask.png,2,photos,\n")
    cells, video = check_items(read_manifest(path, tmp_path / "out"), tmp_path / "out", overwrite=False)
    assert (cells.frames, cells.frame_shape, sorted(cells.painted)) == (5, (40, 48), [1, 3])
    np.testing.assert_array_equal(cells.painted[3], labels[3])
    stack = tifffile.imread(data / "cells.tif")
    assert cells.pixels.limits == tuple(np.percentile(stack, [0.5, 99.5]))  # every frame of the stack counts
    assert (video.frames, sorted(video.painted), video.pixels.limits) == (6, [2], None)  # uint8 passes unchanged
    assert (cells.settings.variant, video.settings.parts) == ("natural", (1, 5))
    assert not cells.resumed


def test_presets_come_from_the_row_or_the_batch(data, tmp_path):
    path = manifest(data, "cells.tif,mask.png,,ct-follow-up,\nvideo.tif,mask.png,,,\n")
    items = read_manifest(path, tmp_path / "out")
    cells, video = check_items(items, tmp_path / "out", overwrite=False, preset="endoscopy-video")
    assert (cells.settings.parts, video.settings.parts, video.settings.variant) == ((1, 3), (1, 5), "medical")
    with pytest.raises(ManifestError, match=r"row 3 \(video\.tif\): unknown preset 'nope'"):
        check_items(items, tmp_path / "out", overwrite=False, preset="nope")


def test_this_batchs_own_outputs_are_accepted_others_only_with_overwrite(data, tmp_path):
    out = tmp_path / "out"
    path = manifest(data, "cells.tif,mask.png,,,\nvideo.tif,mask.png,,,\n")
    cells, video = read_manifest(path, out)
    out.mkdir()
    for item in (cells, video):
        write_label_tiff(item.output, (np.zeros((40, 48), np.uint8) for _ in range(2)), (2, 40, 48), np.uint8)
    write_item_record(out, cells, {"checkpoint": "tiny"})
    with pytest.raises(ManifestError) as err:
        check_items([cells, video], out, overwrite=False)
    assert [line.split(":")[0] for line in problems(err)] == ["row 3 (video.tif)"]
    plans = check_items([cells, video], out, overwrite=True)  # both are label TIFFs we wrote
    assert [plan.resumed for plan in plans] == [True, False]
    video.output.unlink()
    video.output.write_text("not ours")
    with pytest.raises(ManifestError, match=r"row 3 .*video_labels\.tif was not written by napari-p2sam"):
        check_items([cells, video], out, overwrite=True)
    moved = read_manifest(manifest(data, "cells.tif,mask.png,,,other.tif\n", "moved.csv"), out)
    assert not check_items(moved, out, overwrite=False)[0].resumed  # another output: not the recorded item


def test_an_output_folder_that_is_not_writable(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    path = manifest(data, "cells.tif,mask.png,,,\n")
    with read_only(out):
        with pytest.raises(ManifestError) as err:
            check_items(read_manifest(path, out), out, overwrite=False)
    assert problems(err) == [
        f"--out {out / 'report.csv'}: cannot write in {out} (permission denied); choose another --out",
        f"row 2 (cells.tif): output {out / 'cells_labels.tif'}: cannot write in {out} (permission denied); "
        "choose another output",
    ]


def test_the_pattern_form(data, tmp_path, monkeypatch):
    monkeypatch.chdir(data)
    for number in (10, 2, 1):
        (data / f"img{number}.tif").write_bytes((data / "video.tif").read_bytes())
        (data / f"img{number}_mask.png").write_bytes((data / "mask.png").read_bytes())
    (data / "more").mkdir()
    (data / "more" / "img2.tif").write_bytes((data / "video.tif").read_bytes())
    items = items_from_patterns("img*.tif", "{stem}_mask.png", 1, tmp_path / "out", "zarr")
    assert [item.input.name for item in items] == ["img1.tif", "img2.tif", "img10.tif"]
    assert [item.reference_mask for item in items] == [Path(f"img{n}_mask.png") for n in (1, 2, 10)]
    assert {(item.row, item.reference_frame, item.preset) for item in items} == {(None, 1, None)}
    assert items[2].output == tmp_path / "out" / "img10_labels.zarr"
    assert items[2].where == "img10.tif"
    nested = items_from_patterns("**/img2.tif", "{stem}_mask.png", None, tmp_path / "out")
    assert [(item.name, item.input) for item in nested] == [
        ("img2", Path("img2.tif")),
        ("img2-2", Path("more/img2.tif")),
    ]
    plans = check_items(items, tmp_path / "out", overwrite=False, fmt="zarr")
    assert [sorted(plan.painted) for plan in plans] == [[1], [1], [1]]
    with pytest.raises(ManifestError, match=r"--inputs \*\.mp4: 1 problem.*\n  no file or folder matches it"):
        items_from_patterns("*.mp4", "{stem}.png", 0, tmp_path)
    with pytest.raises(ManifestError, match=r"may hold \{stem\} and nothing else in braces"):
        items_from_patterns("*.tif", "{name}.png", 0, tmp_path)
    tiffs = items_from_patterns("img1.tif", "{stem}_mask.png", 0, tmp_path / "out")
    with pytest.raises(
        ManifestError, match=r"img1\.tif: --format zarr writes a zarr folder: name output img1_labels\.zarr"
    ):
        check_items(tiffs, tmp_path / "out", overwrite=False, fmt="zarr")
