"""A napari session under a memory cap, run by ``test_big_video.py`` in its own process.

``python tests/capped_session.py FOLDER CHECKPOINT`` starts napari's viewer
(no window) and writes ``FOLDER/movie.mp4``, a video whose decoded frames
need more memory than the cap the process then sets on itself
(RLIMIT_DATA: what it holds, plus room for the reference and output labels
layers, one byte a pixel each, plus ``WORK_MB``). Under the cap it opens
the video the way drag and drop and File → Open do, reads frames, and runs
P²SAM on frames 0–2 through ``segment_layers``. Prints one JSON line of
what it saw.
"""

from __future__ import annotations

import json
import math
import re
import resource
import sys
from pathlib import Path

import numpy as np

MB = 2**20
HEIGHT, WIDTH = 720, 1280
RECTANGLE = (slice(200, 360), slice(300, 600))
"""Where the bright rectangle is on frame 0 (Y, X); it moves 20 px right on frames 1 and 2, then stays."""
WORK_MB = 256
"""Memory for everything but the labels layers: decoding, dask, the model's run."""


def memory(field: str) -> int:
    """Bytes of ``VmData`` (private writable memory: what RLIMIT_DATA limits), ``VmRSS`` (resident now)
    or ``VmHWM`` (the peak of VmRSS)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) * 1024


def write_movie(path: Path, count: int) -> None:
    """``count`` frames of HEIGHT × WIDTH, MPEG-4; frames after 2 repeat frame 2."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(count):
            if index < 3:
                pixels = np.full((HEIGHT, WIDTH, 3), 60, np.uint8)
                rows, columns = RECTANGLE
                pixels[rows, columns.start + 20 * index : columns.stop + 20 * index] = 200
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main(folder: Path, checkpoint: str) -> dict:
    import torch
    from napari.components import ViewerModel
    from napari.errors import MultipleReaderError
    from npe2 import PluginManager

    from napari_p2sam import Settings, load_model, segment_layers

    torch.set_num_threads(1)
    PluginManager.instance().discover()  # as napari does when it starts
    model = load_model(checkpoint, device="cpu")

    # frames: 3 bytes a pixel decoded, against 2 (the labels layers) in the cap: 1.5 × (held + work) pixels
    # make the decoded video 12% larger than the cap
    count = math.ceil(1.5 * (memory("VmData") + WORK_MB * MB) / (HEIGHT * WIDTH))
    movie = folder / "movie.mp4"
    write_movie(movie, count)

    viewer = ViewerModel()
    try:
        viewer.open(str(movie), plugin=None)
        asked_before_use = False
    except MultipleReaderError:  # napari's window shows its reader dialog here
        asked_before_use = True
    ViewerModel().open_sample("napari-p2sam", "time-lapse")  # the plugin's first use in the session

    cap = memory("VmData") + 2 * count * HEIGHT * WIDTH + WORK_MB * MB
    resource.setrlimit(resource.RLIMIT_DATA, (cap, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from here (writing the movie peaked higher)
    resident_before = memory("VmRSS")

    [image] = viewer.open(str(movie), plugin=None)  # drag and drop, File → Open
    first, last = np.asarray(image.data[0]), np.asarray(image.data[-1])
    reference = viewer.add_labels(np.zeros(image.data.shape[:3], np.uint8), name="reference")
    reference.data[0][RECTANGLE] = 1
    output = segment_layers(viewer, image, reference, model=model, frames=(0, 2), settings=Settings(parts=(1, 2)))

    outside = np.ones((HEIGHT, WIDTH), bool)
    outside[RECTANGLE] = False
    return {
        "asked_before_use": asked_before_use,
        "reader": image.source.reader_plugin,
        "array": type(image.data).__module__.split(".")[0],
        "shape": list(image.data.shape),
        "decoded_mb": image.data.nbytes / MB,
        "cap_mb": cap / MB,
        "peak_growth_mb": (memory("VmHWM") - resident_before) / MB,
        "frame0_inside": float(first[RECTANGLE].mean()),
        "frame0_outside": float(first[outside].mean()),
        "last_frame_max": int(last.max()),
        "painted_frame_kept": bool(np.array_equal(output.data[0], reference.data[0])),
        "frames_after_range_empty": not output.data[3].any() and not output.data[-1].any(),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2])))
