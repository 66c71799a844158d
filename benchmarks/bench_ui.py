"""How responsive napari stays while the P²SAM widget propagates through a stack.

A 10 ms QTimer runs on napari's event loop during a whole run started from
the docked widget; each tick's lateness (time since the previous tick minus
10 ms) is a stall of the event loop. Meanwhile a simulated user scrubs: the
viewer moves to the next frame every 100 ms, so the canvas redraws as new
frames arrive. Prints the longest stall, the 99th percentile and the median,
and the seconds per frame. Run it under a virtual display:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_ui.py [--model tiny|vit_b]
        [--frames 20] [--size 512] [--threads N]

``--model tiny`` is the tests' tiny random SAM (fast, stresses the event
loop with many small updates); ``vit_b`` is SAM ViT-B's shape with random
weights (a real model's pace on the CPU). ``--threads``: torch threads for
the run (default: torch's own choice).
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


def stalls(ticks: list[int]) -> np.ndarray:
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
    handler_ms: list[float] = []
    show_frame = widget._show_frame

    def timed_show_frame(update):
        begin = time.perf_counter()
        show_frame(update)
        handler_ms.append(1000 * (time.perf_counter() - begin))

    widget._show_frame = timed_show_frame  # connected when the run starts

    clock = QElapsedTimer()
    ticks: list[int] = []
    tick = QTimer()
    tick.setInterval(TICK_MS)
    tick.timeout.connect(lambda: ticks.append(clock.elapsed()))
    scrub = QTimer()
    scrub.setInterval(scrub_ms)
    scrub.timeout.connect(lambda: viewer.dims.set_current_step(0, (viewer.dims.current_step[0] + 1) % frames))
    loop = QEventLoop()
    watch = QTimer()
    watch.setInterval(50)

    def run_loop(until) -> list[int]:
        ticks.clear()
        watch.timeout.connect(lambda: loop.quit() if until() else None)
        clock.start()
        for timer in (tick, scrub, watch) if scrub_ms else (tick, watch):
            timer.start()
        loop.exec()
        for timer in (tick, scrub, watch):
            timer.stop()
        watch.timeout.disconnect()
        return list(ticks)

    idle_end = time.perf_counter() + idle_s
    idle = stalls(run_loop(lambda: time.perf_counter() > idle_end))
    start = time.perf_counter()
    widget.run()
    busy = stalls(run_loop(lambda: not widget.running))
    seconds = time.perf_counter() - start
    summary = widget.last_summary
    viewer.close()
    return {
        "frames": summary.done,
        "error": summary.error,
        "seconds_per_frame": seconds / max(1, summary.done),
        "idle": idle,
        "busy": busy,
        "handler_max_ms": max(handler_ms, default=0.0),
        "handler_median_ms": float(np.median(handler_ms)) if handler_ms else 0.0,
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
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--scrub-ms", type=int, default=SCRUB_MS, help="move to the next frame this often (0: never)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle baseline before the run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = save_random_model(args.model, Path(folder))
        result = measure(args.frames, args.size, checkpoint, args.idle, args.scrub_ms)
    print(
        f"model {args.model}, {result['frames']} frames of {args.size}x{args.size}, torch threads "
        f"{torch.get_num_threads()}: {result['seconds_per_frame']:.2f} s/frame"
        + (f"; ERROR {result['error']}" if result["error"] else "")
    )
    scrubbing = f"scrubbing every {args.scrub_ms} ms" if args.scrub_ms else "no scrubbing"
    print(f"  ({scrubbing})")
    print(f"  event-loop stall, idle (before the run):  {describe(result['idle'])}")
    print(f"  event-loop stall, during the run:        {describe(result['busy'])}")
    print(
        f"  main-thread time to show a finished frame: median {result['handler_median_ms']:.0f} ms, "
        f"max {result['handler_max_ms']:.0f} ms"
    )

if __name__ == "__main__":
    main()
