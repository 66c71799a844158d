"""``segment --out`` never loses data: what it refuses, what it replaces, concurrent and failing runs (issue #15).

Every test hashes the whole folder before and after: inputs, masks, caches
and neighbouring files must be unchanged; only the intended output may change.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_p2sam import _writer
from napari_p2sam.cli import main
from napari_p2sam.io.label_files import PNG_LIST, write_label_tiff
from napari_p2sam.io.outputs import OutputError

FAST = ["--method", "persam"]
LOCK = ".out.tif.napari-p2sam.lock"


def tree(folder: Path) -> dict[str, str]:
    """Every file and folder below ``folder`` (hidden ones too) → sha256 of its bytes ("dir" for a folder)."""
    return {
        str(p.relative_to(folder)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
    }


def segment(*args) -> int:
    return main(["segment", *map(str, args), "--quiet"])


@pytest.fixture
def work(small_checkpoint, tmp_path, monkeypatch):
    """``tmp_path``: ``data/`` (input stack, a 2D mask, a labels TIFF of ours, a cache, a frames folder) and
    ``work/`` (the user's own files: ``results/``, ``their.tif``, ``out.tif.partial``); cwd is ``work/sub``."""
    rng = np.random.default_rng(3)
    data = tmp_path / "data"
    (data / "cache").mkdir(parents=True)
    (data / "cache" / "entry.bin").write_bytes(b"embedding")
    stack = rng.integers(0, 255, (5, 48, 64), dtype=np.uint8)
    tifffile.imwrite(data / "stack.tif", stack)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 15:45] = 1
    Image.fromarray(mask).save(data / "mask.png")
    write_label_tiff(data / "painted.tif", iter([mask]), mask.shape, mask.dtype)  # an output of ours, reused
    (data / "frames").mkdir()
    for i, frame in enumerate(stack):
        Image.fromarray(frame).save(data / "frames" / f"{i}.png")
    user = tmp_path / "work"
    (user / "results").mkdir(parents=True)
    (user / "results" / "table.csv").write_text("a,b\n1,2\n")
    (user / "their.tif").write_bytes(b"someone's bytes")
    tifffile.imwrite(user / "scan.tif", stack[0])  # a real TIFF, written by someone else
    (user / "out.tif.partial").write_bytes(b"the user's own file")
    (user / "notes.txt").write_text("keep me")
    (user / "sub").mkdir()
    (tmp_path / "small.pth").symlink_to(small_checkpoint)
    monkeypatch.chdir(user / "sub")
    return tmp_path


def args(work: Path, *extra, mask: str = "mask.png", source: str = "stack.tif") -> list:
    data = work / "data"
    return [data / source, "--checkpoint", work / "small.pth", "--reference-mask", data / mask, *FAST, *extra]


def refused(capsys, *argv) -> str:
    assert segment(*argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# --- data loss: what --overwrite must never replace -------------------------------------------------


@pytest.mark.parametrize(
    "out, extra, message",
    [
        ("..", [], r"the output \.\. \(/\S+/work\) is the current folder or one of its parents"),
        (".", ["--format", "png"], r"the output \. \(/\S+/work/sub\) is the current folder or one of its parents"),
        ("../results", [], r"the output \.\./results does not end in \.tif or \.tiff: name it results\.tif"),
        ("../results", ["--format", "png"], r"results is a folder napari-p2sam did not write"),
        ("../their.tif", [], r"their\.tif was not written by napari-p2sam, so it is not replaced"),
        ("../scan.tif", [], r"scan\.tif was not written by napari-p2sam"),
        ("{data}/stack.tif", [], r"stack\.tif is the input .*stack\.tif; choose another output \(--out\)"),
        ("{data}/mask.png", ["--format", "png"], r"mask\.png is the reference mask"),
        ("{data}/cache", ["--cache", "{data}/cache", "--format", "png"], r"cache is the cache folder"),
        ("{data}/cache/out.tif", ["--cache", "{data}/cache"], r"cache/out\.tif is inside the cache folder"),
        ("{data}", ["--format", "png"], r"data holds the input .*stack\.tif"),
        ("../out.png", [], r"out\.png does not end in \.tif or \.tiff"),
        (
            "../masks.tif",
            ["--format", "png"],
            r"PNGs are written into a folder: name the output as a folder, such as masks \(--out, --format\)",
        ),
    ],
)
def test_overwrite_refuses_anything_but_an_output_of_ours(work, capsys, out, extra, message):
    data = work / "data"
    before = tree(work)
    extra = [e.format(data=data) for e in extra]
    err = refused(capsys, *args(work, "--overwrite", *extra), "--out", out.format(data=data))
    assert re.search(message, err), err
    assert "(--out" in err and ("choose another output" in err or "name it" in err or "name the output" in err)
    assert tree(work) == before


def test_a_mask_of_ours_is_never_replaced(work, capsys):
    """A label TIFF we wrote, used as the reference mask: ours, yet not replaceable while it is read."""
    before = tree(work)
    painted = work / "data" / "painted.tif"
    err = refused(capsys, *args(work, "--overwrite", mask="painted.tif"), "--out", painted)
    assert f"the output {painted} is the reference mask {painted}; choose another output (--out)" in err
    assert tree(work) == before


def test_a_folder_input_is_never_the_output_nor_holds_it(work, capsys):
    data = work / "data"
    before = tree(work)
    for out, fmt, relation in ((data / "frames", "png", "is"), (data / "frames" / "o.tif", "tif", "is inside")):
        err = refused(capsys, *args(work, "--overwrite", "--format", fmt, source="frames"), "--out", out)
        assert f"the output {out} {relation} the input {data / 'frames'}; choose another output (--out)" in err
    assert tree(work) == before


def test_symbolic_links_are_followed_to_the_input_or_refused(work, capsys):
    user, data = work / "work", work / "data"
    (user / "to-input.tif").symlink_to(data / "stack.tif")
    (user / "to-ours.tif").symlink_to(data / "painted.tif")
    before = tree(work)
    assert "is the input" in refused(capsys, *args(work, "--overwrite"), "--out", user / "to-input.tif")
    assert "to-ours.tif is a symbolic link, so it is not replaced" in refused(
        capsys, *args(work, "--overwrite"), "--out", user / "to-ours.tif"
    )
    assert tree(work) == before


def test_a_png_folder_of_ours_with_a_file_added_is_not_replaced(work, capsys):
    out = work / "work" / "masks"
    assert segment(*args(work, "--format", "png"), "--out", out) == 0
    (out / "my-notes.txt").write_text("mine")
    before = tree(work)
    err = refused(capsys, *args(work, "--format", "png", "--overwrite"), "--out", out)
    assert "masks holds files napari-p2sam did not write (my-notes.txt)" in err
    assert tree(work) == before


# --- what --overwrite does replace -------------------------------------------------------------------


def test_overwrite_replaces_our_tiff_and_keeps_everything_else(work, capsys):
    user = work / "work"
    out = user / "out.tif"
    assert segment(*args(work), "--out", out) == 0
    assert tifffile.imread(out).shape == (5, 48, 64)
    before = tree(work)
    assert (
        segment(
            *args(
                work,
                "--overwrite",
                "--frames",
                "1:3",
                "--reference-mask",
                work / "data" / "painted.tif",
                "--reference-frame",
                1,
            ),
            "--out",
            out,
        )
        == 0
    )
    assert tifffile.imread(out).shape == (2, 48, 64)
    after = tree(work)
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    assert changed == {"work/out.tif"}  # the user's out.tif.partial and every input are untouched
    assert (user / "out.tif.partial").read_bytes() == b"the user's own file"


def test_overwrite_replaces_our_png_folder_whole(work):
    out = work / "work" / "masks"
    assert segment(*args(work, "--format", "png"), "--out", out) == 0
    assert len(list(out.glob("*.png"))) == 5
    before = {k: v for k, v in tree(work).items() if not k.startswith("work/masks")}
    assert segment(*args(work, "--format", "png", "--overwrite", "--frames", "3:5"), "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == [PNG_LIST, "00003.png", "00004.png"]  # no frame of the old run
    assert {k: v for k, v in tree(work).items() if not k.startswith("work/masks")} == before


# --- where OUT's folder is missing or cannot be made -------------------------------------------------


@pytest.fixture
def mount_tmpfs():
    """``mount_tmpfs(folder, options)``: a tmpfs mounted on ``folder`` for this test; skips unless root may mount."""
    mounted = []

    def mount(folder: Path, options: str) -> Path:
        folder.mkdir(exist_ok=True)
        command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)]
        if os.geteuid() != 0 or subprocess.run(command, capture_output=True, check=False).returncode != 0:
            pytest.skip("needs root, allowed to mount a tmpfs")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=True)


def test_a_missing_output_folder_is_created_and_named(work, capsys):
    before = tree(work)
    assert segment(*args(work), "--out", "new/deeper/out.tif") == 0  # cwd: work/sub
    folder = (work / "work" / "sub" / "new" / "deeper").resolve()
    assert f"; created the folder {folder}" in capsys.readouterr().out
    after = tree(work)
    assert {name: after[name] for name in before} == before
    assert sorted(set(after) - set(before)) == [
        "work/sub/new",
        "work/sub/new/deeper",
        f"work/sub/new/deeper/{LOCK}",
        "work/sub/new/deeper/out.tif",
    ]


def test_a_file_where_the_output_folder_would_be_is_refused_naming_it(work, capsys):
    user = (work / "work").resolve()
    before = tree(work)
    err = refused(capsys, *args(work), "--out", "../their.tif/out.tif")
    assert (
        f"the output ../their.tif/out.tif: {user / 'their.tif'} is a file, not a folder; choose another output" in err
    )
    err = refused(capsys, *args(work), "--out", "../notes.txt/a/out.tif")
    assert f"cannot create the folder {user / 'notes.txt' / 'a'}: {user / 'notes.txt'} is a file, not a folder" in err
    assert tree(work) == before


def test_a_folder_that_cannot_be_created_is_named_with_the_cause(work, capsys, mount_tmpfs):
    disk = mount_tmpfs(work / "work" / "read-only", "ro,size=64k")
    before = tree(work)
    err = refused(capsys, *args(work), "--out", disk / "new" / "out.tif")
    assert f"cannot create the folder {disk.resolve() / 'new'} (read-only file system) to write out.tif in" in err
    assert tree(work) == before


# --- runs that overlap or fail ----------------------------------------------------------------------


def test_a_second_run_on_the_same_output_is_refused_and_the_first_completes(work, capsys):
    """The first run is paused (SIGSTOP) while it writes; the second must not touch its output."""
    data, out = work / "data", work / "work" / "out.tif"
    frames = np.random.default_rng(4).integers(0, 255, (8, 48, 64), dtype=np.uint8)
    tifffile.imwrite(data / "long.tif", frames)
    command = [
        sys.executable,
        "-c",
        "import sys; from napari_p2sam.cli import main; sys.exit(main())",
        "segment",
        *map(str, args(work, "--variant", "medical", "--parts", 1, 2, source="long.tif")),
        "--out",
        str(out),
        "--quiet",
    ]
    first = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    deadline = time.monotonic() + 300
    while not writing(out) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGSTOP)
    try:
        assert first.poll() is None, first.communicate()
        err = refused(capsys, *args(work, "--overwrite"), "--out", out)
        assert (
            f"another napari-p2sam run is writing {out}; wait for it to finish or choose another output (--out)" in err
        )
    finally:
        first.send_signal(signal.SIGCONT)
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert f"wrote {out} (8 frame(s)" in stdout
    assert tifffile.imread(out).shape == (8, 48, 64)
    assert sorted(p.name for p in out.parent.iterdir() if "out.tif" in p.name) == [LOCK, "out.tif", "out.tif.partial"]


def writing(out: Path) -> bool:
    """Whether a run has begun writing ``out`` (its temporary exists; it holds the lock)."""
    return any(p.name.endswith(".napari-p2sam-partial") for p in out.parent.iterdir())


def test_a_run_that_fails_while_writing_keeps_the_previous_output(work, capsys, monkeypatch):
    """A full disk on the third PNG: the previous output of ours stays whole, no temporary is left."""
    out = work / "work" / "masks"
    assert segment(*args(work, "--format", "png"), "--out", out) == 0
    before = tree(work)
    save = Image.Image.save
    calls = []

    def save_until_the_disk_is_full(self, fp, *a, **k):
        calls.append(fp)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save_until_the_disk_is_full)
    err = refused(capsys, *args(work, "--format", "png", "--overwrite"), "--out", out)
    assert f"cannot write {out.resolve()} (no space left on device): free some disk space" in err
    assert "masks is unchanged" in err and "Errno" not in err
    assert len(calls) == 3
    assert tree(work) == before


def fill(disk: Path) -> None:
    """Write ``disk/filler`` until the disk is full."""
    with open(disk / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(bytes(4096))
        except OSError as err:
            assert err.errno == errno.ENOSPC


def test_a_full_disk_names_the_real_path_in_words(work, capsys, mount_tmpfs):
    """A 64 KiB disk, filled up after a first output; --out reaches it through a symbolic link to its folder."""
    disk = mount_tmpfs(work / "disk", "size=64k")
    (work / "work" / "to-disk").symlink_to(disk)
    out = work / "work" / "to-disk" / "out.tif"
    assert segment(*args(work), "--out", out) == 0
    fill(disk)
    before = tree(work)
    err = refused(capsys, *args(work, "--overwrite"), "--out", out)
    assert (
        f"cannot write {disk.resolve() / 'out.tif'} (no space left on device): free some disk space, or write "
        "it to another disk; out.tif is unchanged" in err
    )
    assert tree(work) == before
    err = refused(capsys, *args(work), "--out", out.with_name("new.tif"))
    assert f"cannot write {disk.resolve() / 'new.tif'} (no space left on device)" in err
    assert "nothing was written" in err
    after = tree(work)
    assert after.pop("disk/.new.tif.napari-p2sam.lock") and after == before


# --- napari's writers share these rules ------------------------------------------------------------


def test_napari_png_writer_replaces_only_its_own_folder(tmp_path):
    labels = np.zeros((3, 6, 8), np.uint8)
    labels[1, 2:4, 2:5] = 2
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.png").write_bytes(b"a photo")
    before = tree(tmp_path)
    with pytest.raises(OutputError, match="photos is a folder napari-p2sam did not write"):
        _writer.write_png_folder(str(tmp_path / "photos.png"), labels, {})
    assert tree(tmp_path) == before

    _writer.write_png_folder(str(tmp_path / "masks.png"), labels, {})
    [folder] = _writer.write_png_folder(str(tmp_path / "masks.png"), labels[:1], {})
    assert sorted(p.name for p in Path(folder).iterdir()) == [PNG_LIST, "00000.png"]


def test_napari_tiff_writer_does_not_replace_a_folder(tmp_path):
    (tmp_path / "labels.tif").mkdir()
    (tmp_path / "labels.tif" / "mine.txt").write_text("mine")
    before = tree(tmp_path)
    with pytest.raises(OutputError, match="labels.tif is a folder napari-p2sam did not write"):
        _writer.write_tiff(str(tmp_path / "labels.tif"), np.ones((6, 8), np.uint8), {})
    assert tree(tmp_path) == before
