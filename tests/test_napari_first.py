"""napari first, then the plugin from its Plugins menu, then a run: the order a user starts it in.

Runs in a fresh process, because the test session has long imported torch
(see docs/architecture.md: torch loaded beside napari's software OpenGL
crashed napari). Under Xvfb the OpenGL is Mesa's software renderer.
"""

from __future__ import annotations

import os
import subprocess
import sys

MENU_ENTRY = "One-shot segmentation (P²SAM)"

SCRIPT = r"""
import sys, time
import napari
from qtpy.QtWidgets import QApplication

viewer = napari.Viewer()
app = QApplication.instance()

def settle(seconds, until=lambda: False):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until():
        app.processEvents()
        time.sleep(0.02)

settle(1.0)  # the canvas has drawn: the OpenGL driver is loaded
viewer.open_sample("napari-p2sam", "time-lapse")
[entry] = [a for a in viewer.window.plugins_menu.actions() if a.text() == MENU_ENTRY]
entry.trigger()
settle(0.5)
widget = viewer.window._dock_widgets[MENU_ENTRY].inner_widget()
widget.model.value = "file"
widget.checkpoint.value = CHECKPOINT
widget.device.value = "cpu"
widget.preset.value = "ct-follow-up"
widget.parts[1].value = 2
widget.frames[1].value = 3
widget.run()
settle(600, until=lambda: not widget.running)
summary = widget.last_summary
output = viewer.layers["cells (time-lapse) P²SAM"].data
print("summary", summary.done, summary.total, summary.error, flush=True)
print("segmented frames", [int(t) for t in range(1, 4) if output[t].any()], flush=True)
print("torch in napari's process:", "torch" in sys.modules, flush=True)
viewer.close()
"""


def test_napari_first_then_the_plugin_menu_then_a_run(small_checkpoint, tmp_path):
    script = f"MENU_ENTRY = {MENU_ENTRY!r}\nCHECKPOINT = {str(small_checkpoint)!r}\n" + SCRIPT
    env = {**os.environ, "NAPARI_P2SAM_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path
    )
    out = done.stdout
    assert done.returncode == 0, f"napari ended with {done.returncode}:\n{out}\n{done.stderr[-3000:]}"
    assert "summary 4 4 None" in out, out
    assert "segmented frames [1, 2, 3]" in out, out
    assert "torch in napari's process: False" in out, out
