"""``napari-p2sam batch`` on a Dask LocalCluster of 2 worker processes: outputs equal ``segment``'s, resume, faults."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from napari_p2sam.batch import run_batch
from napari_p2sam.batch.manifest import check_items, read_manifest
from napari_p2sam.batch.records import BATCH_FOLDER, recorded_chunks
from napari_p2sam.batch.report import read_report_csv
from napari_p2sam.batch.run import pending_chunks
from napari_p2sam.cli import main

FAST = ["--preset", "persam", "--device", "cpu"]


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes, 1 thread each, shared by the tests that run on a running cluster."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        yield client


def write_items(folder: Path, lengths: list[int], seed: int = 0) -> Path:
    """uint8 stacks ``item<i>.tif`` of ``lengths`` frames, each with a 2-object mask painted on frame ``i``; the manifest."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["input,reference_mask,reference_frame"]
    for index, length in enumerate(lengths):
        tifffile.imwrite(folder / f"item{index}.tif", rng.integers(0, 255, (length, 48, 64), dtype=np.uint8))
        mask = np.zeros((48, 64), np.uint8)
        mask[10:30, 15:45] = 1
        mask[35:45, 5:20] = 2
        Image.fromarray(mask).save(folder / f"mask{index}.png")
        rows.append(f"item{index}.tif,mask{index}.png,{index}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


def damage_frame(path: Path, frame: int) -> None:
    """Rewrite the stack at ``path`` zlib-compressed, then zero half of frame ``frame``'s data: that frame cannot be read."""
    tifffile.imwrite(path, tifffile.imread(path), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        start, length = tif.pages[frame].dataoffsets[0], tif.pages[frame].databytecounts[0]
    data = bytearray(path.read_bytes())
    data[start + length // 2 : start + length] = bytes(length - length // 2)
    path.write_bytes(bytes(data))


def segment_labels(checkpoint: Path, folder: Path, index: int, tmp_path: Path) -> np.ndarray:
    """What ``napari-p2sam segment`` writes for item ``index`` of :func:`write_items`."""
    out = tmp_path / f"segment{index}.tif"
    code = main(
        [
            "segment",
            str(folder / f"item{index}.tif"),
            "--checkpoint",
            str(checkpoint),
            "--reference-mask",
            str(folder / f"mask{index}.png"),
            "--reference-frame",
            str(index),
            "--out",
            str(out),
            "--quiet",
            *FAST,
        ]
    )
    assert code == 0
    return tifffile.imread(out)


def assert_same_as_segment(checkpoint, folder, out, count, tmp_path, fmt: str = "tif") -> None:
    for index in range(count):
        expected = segment_labels(checkpoint, folder, index, tmp_path)
        if fmt == "zarr":
            labels = zarr.open_array(str(out / f"item{index}_labels.zarr"), mode="r")[...]
        else:
            labels = tifffile.imread(out / f"item{index}_labels.tif")
        assert labels.dtype == expected.dtype
        np.testing.assert_array_equal(labels, expected)


def batch(*args) -> int:
    return main(["batch", *map(str, args), "--quiet"])


def test_each_item_equals_segment_and_a_failing_item_fails_alone(small_checkpoint, client, tmp_path, capsys):
    manifest = write_items(tmp_path / "data", [6, 5, 7, 8])
    damage_frame(tmp_path / "data" / "item3.tif", 5)
    out = tmp_path / "out"
    address = client.scheduler.address
    code = batch(
        manifest, "--checkpoint", small_checkpoint, "--out", out, "--chunk-frames", 3, "--scheduler", address, *FAST
    )
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert re.search(r"item3 failed: frames 3\.\.5: frame 5 of .*item3\.tif cannot be read", captured.err)
    assert "4 item(s): 3 done, 1 failed" in captured.out
    assert_same_as_segment(small_checkpoint, tmp_path / "data", out, 3, tmp_path)
    assert not (out / "item3_labels.tif").exists()
    rows = {row["item"]: row for row in read_report_csv(out / "report.csv")}
    assert [rows[f"item{i}"]["status"] for i in range(4)] == ["done", "done", "done", "failed"]
    assert "frame 5" in rows["item3"]["error"]
    assert [rows[f"item{i}"]["frames"] for i in range(3)] == ["6", "5", "7"]


def chunk_records(out: Path) -> int:
    folder = out / BATCH_FOLDER
    return sum(len(recorded_chunks(out, item.name)) for item in folder.iterdir()) if folder.is_dir() else 0


def test_a_killed_batch_resumes_with_only_unfinished_chunks(small_checkpoint, client, tmp_path, capsys):
    manifest = write_items(tmp_path / "data", [8, 8], seed=1)
    out = tmp_path / "out"
    options = [manifest, "--checkpoint", small_checkpoint, "--out", out, "--chunk-frames", 2, *FAST]
    command = [sys.executable, "-c", "import sys; from napari_p2sam.cli import main; sys.exit(main())", "batch"]
    first = subprocess.Popen([*command, *map(str, options), "--workers", "2", "--quiet"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while chunk_records(out) < 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL, first.stderr.read().decode()
    kept = chunk_records(out)
    assert 3 <= kept < 8

    assert batch(*options, "--scheduler", client.scheduler.address) == 0
    computed, resumed = map(
        int, re.search(r"(\d+) chunk\(s\) computed, (\d+) already done", capsys.readouterr().out).groups()
    )
    assert resumed >= kept and computed == 8 - resumed  # chunks the killed run's workers finished after the count
    assert_same_as_segment(small_checkpoint, tmp_path / "data", out, 2, tmp_path)
    assert sorted(p.name for p in out.iterdir() if "partial" in p.name) == []


def test_a_worker_killed_mid_run_changes_nothing_in_zarr_outputs(small_checkpoint, client, tmp_path):
    manifest = write_items(tmp_path / "data", [8, 8], seed=2)
    out = tmp_path / "out"
    plans = check_items(read_manifest(manifest, out, "zarr"), out, overwrite=False, fmt="zarr", preset="persam")
    victim = next(iter(client.run(os.getpid).values()))
    killed_at = []

    def kill_after_two_chunks():
        while chunk_records(out) < 2:
            time.sleep(0.005)
        killed_at.append(chunk_records(out))
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_two_chunks, daemon=True)
    killer.start()
    summary = run_batch(
        plans, small_checkpoint, out, client=client, device="cpu", chunk_frames=2, fmt="zarr", progress=False
    )
    killer.join(timeout=1)
    assert killed_at and killed_at[0] < 8, "the worker was killed after the batch"
    assert victim not in client.run(os.getpid).values()  # the nanny started a new worker process
    assert summary.exit_status == 0 and summary.chunks_computed == 8, summary
    assert_same_as_segment(small_checkpoint, tmp_path / "data", out, 2, tmp_path, fmt="zarr")
    assert not any((out / BATCH_FOLDER / name / "labels.zarr").exists() for name in ("item0", "item1"))  # moved


def test_a_scheduler_nobody_answers_fails_within_seconds_naming_it(small_checkpoint, tmp_path, capsys):
    manifest = write_items(tmp_path / "data", [3])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"  # free once closed: nobody listens there
    start = time.monotonic()
    code = batch(manifest, "--checkpoint", small_checkpoint, "--out", tmp_path / "out", "--scheduler", address, *FAST)
    assert code == 2
    assert time.monotonic() - start < 15
    assert f"cannot reach the scheduler at {address}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either MANIFEST.csv or both --inputs and --references"),
        (["--inputs", "*.tif"], "give either MANIFEST.csv or both --inputs and --references"),
        (["m.csv", "--reference-frame", "0"], "--reference-frame goes with --references"),
    ],
)
def test_bad_arguments_exit_with_status_2(small_checkpoint, tmp_path, capsys, args, message):
    assert batch(*args, "--checkpoint", small_checkpoint, "--out", tmp_path / "out") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_pending_chunks_cover_what_no_record_covers():
    done = np.zeros(10, bool)
    assert pending_chunks(done, 4) == [range(0, 4), range(4, 8), range(8, 10)]
    done[1:3] = done[5] = True  # recorded by an earlier run with other chunk sizes
    assert pending_chunks(done, 4) == [range(0, 1), range(3, 4), range(4, 5), range(6, 8), range(8, 10)]
