"""Big videos stay on disk: a video larger than the process's memory cap opens in napari and P²SAM runs on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SESSION = Path(__file__).with_name("capped_session.py")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the cap is read from /proc/self/status")
def test_a_video_larger_than_the_memory_cap_opens_and_runs(small_checkpoint, tmp_path):
    """``capped_session.py`` in a fresh process, with napari's settings in ``tmp_path`` (a first session)."""
    env = {**os.environ, "NAPARI_CONFIG": str(tmp_path / "napari-settings.yaml")}
    done = subprocess.run(
        [sys.executable, str(SESSION), str(tmp_path), str(small_checkpoint)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])

    assert seen["decoded_mb"] > seen["cap_mb"]  # loading the whole video would break the cap
    assert seen["asked_before_use"]  # napari's reader and ours both claim .mp4 ...
    assert seen["reader"] == "napari-p2sam" and seen["array"] == "dask"  # ... ours, once the plugin was used
    assert seen["peak_growth_mb"] < seen["decoded_mb"] / 20  # resident memory grew by a few frames' worth
    assert seen["frame0_inside"] > 190 and seen["frame0_outside"] < 70  # the rectangle on gray (lossy codec)
    assert seen["last_frame_max"] > 190
    assert seen["painted_frame_kept"] and seen["frames_after_range_empty"]
    settings = yaml.safe_load((tmp_path / "napari-settings.yaml").read_text())
    assert settings["plugins"]["extension2reader"]["*.mp4"] == "napari-p2sam"  # later sessions open it with ours
