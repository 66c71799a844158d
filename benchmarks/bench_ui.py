"""How responsive napari stays while the P²SAM widget propagates through a stack.

A 10 ms QTimer runs on napari's event loop during a whole run started from
the docked widget; each tick's lateness (time since the previous tick minus
10 ms) is a stall of the event loop. Meanwhile a simulated user scrubs: the
viewer moves to the next frame every ``--scrub-ms`` (default 100 ms; 0: no
scrubbing), so the canvas redraws while frames arrive. Prints the longest
stall, the 99th percentile and the median from the click on Run until the
first frame is on screen (the output layers, the progress bar and the scores
dock are created then), from there to the end of the run, and for
``--idle`` seconds after it with the same layers and scrubbing (napari's own
cost: the floor); and the seconds per frame. Run it under a virtual display:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_ui.py [--model tiny|vit_b]
        [--frames 20] [--size 512] [--threads N] [--scrub-ms 100]

``--model tiny`` is the tests' tiny random SAM (fast, so many small
updates); ``vit_b`` is SAM ViT-B's shape with random weights (a real
model's pace on the CPU). ``--threads``: torch's CPU threads in the process
(default: torch's choice); the widget runs with one fewer (at least 1), so
that a core stays free for napari.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
TICK_MS = 10
SCRUB_MS = 100


def save_random_model(kind: str, folder: Path) -> Path:
    """A random-weight checkpoint file of the chosen shape."""
    path = folder / f"{kind}.pth"
    if kind == "tiny":
        sys.path.insert(0, str(ROOT))
        from tests.conftest import tiny_sam

        sam = tiny_sam()
    else:
        from segment_anything import sam_model_registry

        torch.manual_seed(0)
        sam = sam_model_registry[kind](checkpoint=None)
    torch.save(sam.state_dict(), path)
    return path


def stalls(ticks: np.ndarray) -> np.ndarray:
    """Lateness (ms) of each tick of the 10 ms timer."""
    return np.maximum(np.diff(ticks) - TICK_MS, 0)


def measure(frames: int, size: int, checkpoint: Path, idle_s: float, scrub_ms: int) -> dict:
    import napari
    from qtpy.QtCore import QElapsedTimer, QEventLoop, QTimer

    from napari_p2sam._sample_data import time_lapse_stack
    from napari_p2sam.ui.widget import P2SAMWidget

    images, truth = time_lapse_stack(frames=frames, size=size)
    reference = np.zeros_like(truth)
    reference[0] = truth[0]
    viewer = napari.Viewer()
    viewer.add_image(images, name="cells")
    viewer.add_labels(reference, name="reference")
    widget = P2SAMWidget(viewer)
    viewer.window.add_dock_widget(widget, name="P²SAM")
    widget.checkpoint.value = str(checkpoint)
    widget.device.value = "cpu"
    widget.preset.value = "ct-follow-up"
    clock = QElapsedTimer()
    ticks: list[int] = []
    first_frame_at: list[int] = []  # tick time when the first finished frame was on screen

    def on_tick() -> None:
        ticks.append(clock.elapsed())
        if not first_frame_at and widget.scores.frames():
            first_frame_at.append(ticks[-1])

    tick = QTimer()
    tick.setInterval(TICK_MS)
    tick.timeout.connect(on_tick)
    scrub = QTimer()
    scrub.setInterval(scrub_ms)
    scrub.timeout.connect(lambda: viewer.dims.set_current_step(0, (viewer.dims.current_step[0] + 1) % frames))
    loop = QEventLoop()
    watch = QTimer()
    watch.setInterval(50)

    def run_loop(until) -> np.ndarray:
        """Tick times (ms) until ``until()`` is true."""
        ticks.clear()
        watch.timeout.connect(lambda: loop.quit() if until() else None)
        clock.start()
        for timer in (tick, scrub, watch) if scrub_ms else (tick, watch):
            timer.start()
        loop.exec()
        for timer in (tick, scrub, watch):
            timer.stop()
        watch.timeout.disconnect()
        return np.array(ticks)

    def run_for(seconds: float) -> np.ndarray:
        end = time.perf_counter() + seconds
        return run_loop(lambda: time.perf_counter() > end)

    run_for(1.0)  # warm-up: first draws, shader compilation
    start = time.perf_counter()
    clicked: list[bool] = []

    def click_run() -> None:
        widget.run()
        clicked.append(True)

    QTimer.singleShot(100, click_run)  # "click" Run inside the measured loop
    busy = run_loop(lambda: clicked and not widget.running)
    seconds = time.perf_counter() - start
    after = run_for(idle_s)  # the same layers, no run: napari's own cost of redrawing and scrubbing
    summary = widget.last_summary
    viewer.close()
    split = int(np.searchsorted(busy, first_frame_at[0])) if first_frame_at else len(busy)
    return {
        "frames": summary.done,
        "error": summary.error,
        "seconds_per_frame": seconds / max(1, summary.done),
        "start": stalls(busy[: split + 1]),
        "frames_arriving": stalls(busy[split:]),
        "after": stalls(after),
    }


def describe(lateness: np.ndarray) -> str:
    return (
        f"max {lateness.max():.0f} ms, p99 {np.percentile(lateness, 99):.0f} ms, "
        f"median {np.median(lateness):.0f} ms ({len(lateness)} ticks)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "vit_b"), default="tiny")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, help="torch threads in the process (default: torch's choice)")
    parser.add_argument("--scrub-ms", type=int, default=SCRUB_MS, help="move to the next frame this often (0: never)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of the baseline after the run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = save_random_model(args.model, Path(folder))
        result = measure(args.frames, args.size, checkpoint, args.idle, args.scrub_ms)
    print(
        f"model {args.model}, {result['frames']} frames of {args.size}x{args.size}, torch threads in the run "
        f"{max(1, torch.get_num_threads() - 1)} of {torch.get_num_threads()}: {result['seconds_per_frame']:.2f} s/frame"
        + (f"; ERROR {result['error']}" if result["error"] else "")
    )
    scrubbing = f"scrubbing every {args.scrub_ms} ms" if args.scrub_ms else "no scrubbing"
    print(f"  ({scrubbing})")
    print(f"  event-loop stall, Run clicked until the first frame is shown: {describe(result['start'])}")
    print(f"  event-loop stall, from the first frame to the end of the run: {describe(result['frames_arriving'])}")
    print(f"  event-loop stall after the run (same layers, napari alone):   {describe(result['after'])}")


if __name__ == "__main__":
    main()
