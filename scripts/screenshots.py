"""Take the user guide's screenshots of the P²SAM widget in use (docs/images/*.png).

Runs napari in a real window, so run it under a virtual display:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py [--out docs/images]

The model is a tiny SAM with random weights (no weights can be downloaded
here), so the masks in the pictures are meaningless: the pictures show the
widget, the live output, the prompt points, the scores dock (plot and
table) and the correction step, not segmentation quality. So that the
score plot has a frame that stands out, frame DROPPED_FRAME of the sample
is made flat, as a camera's dropped frame would be.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DROPPED_FRAME = 9


def wait(app, condition, timeout_s: float = 300.0) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the run took too long")
        app.processEvents()
        time.sleep(0.02)


def settle(app, seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def save(viewer, app, path: Path) -> None:
    settle(app)
    Image.fromarray(viewer.screenshot(canvas_only=False, flash=False)).save(path)
    print(f"wrote {path}")


def random_sam(path: Path) -> Path:
    """The tests' tiny random SAM, made in another process: this one runs napari and must not import
    torch (docs/architecture.md)."""
    make = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from tests.conftest import save_tiny_sam; save_tiny_sam(Path(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", make, str(ROOT), str(path)], check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from qtpy.QtWidgets import QApplication

    from napari_p2sam.launch import open_viewer

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = random_sam(Path(folder) / "random_sam.pth")
        viewer, widget = open_viewer(checkpoint=str(checkpoint))
        app = QApplication.instance()
        window = viewer.window._qt_window
        window.resize(1500, 950)
        widget.preset.value = "ct-follow-up"
        movie = widget.image.value
        movie.data[DROPPED_FRAME] = movie.data[DROPPED_FRAME].min()
        movie.refresh()
        viewer.dims.set_current_step(0, 0)  # the painted frame
        save(viewer, app, args.out / "widget.png")

        widget.run()
        wait(app, lambda: len(widget.scores.frames()) >= 2)
        viewer.dims.set_current_step(0, max(widget.scores.frames()))  # the latest finished frame
        save(viewer, app, args.out / "running.png")  # progress in the dock, frames filling in
        wait(app, lambda: not widget.running)

        table = widget.scores.table
        table.sortItems(2)  # by score, worst (highest) last
        table.selectRow(table.rowCount() - 1)
        table.cellClicked.emit(table.rowCount() - 1, 2)
        save(viewer, app, args.out / "scores.png")
        dock = viewer.window._wrapped_dock_widgets["P²SAM frame scores"]
        dock.setFloating(True)  # as the user can, for a bigger plot
        dock.resize(560, 560)
        settle(app)
        dock.grab().save(str(args.out / "score-plot.png"))
        print(f"wrote {args.out / 'score-plot.png'}")
        dock.setFloating(False)

        output = viewer.layers[f"{widget.image.value.name} P²SAM"]
        frame = viewer.dims.current_step[0]
        from napari_p2sam._sample_data import cell_masks

        output.data[frame] = cell_masks(frame)  # the user repaints this frame
        output.refresh()
        viewer.layers.selection.active = output
        widget.use_reference_button.clicked.emit()
        save(viewer, app, args.out / "correction.png")
        viewer.close()


if __name__ == "__main__":
    main()
