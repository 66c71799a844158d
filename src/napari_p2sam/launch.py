"""Open napari with the P²SAM widget docked, or with one item of a batch (``napari-p2sam open-results``).

``python -m napari_p2sam.launch [FILES ...] [--checkpoint CKPT]`` (what
``./dev napari`` runs). Without FILES the plugin's sample time-lapse is
loaded (two cells, both painted on frame 0), so a run needs only a model.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .batch.report import ItemResults

WIDGET = "One-shot segmentation"
"""The widget's name in the manifest; napari's Plugins menu shows it as "One-shot segmentation (P²SAM)"."""


def open_viewer(files: list[str] | None = None, checkpoint: str | None = None, show: bool = True):
    """A napari viewer with FILES (or the sample time-lapse) and the docked widget; returns (viewer, widget)."""
    import napari

    viewer = napari.Viewer(show=show)
    if files:
        open_files(viewer, files)
    else:
        viewer.open_sample("napari-p2sam", "time-lapse")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-p2sam", WIDGET)
    if checkpoint:
        widget.checkpoint.value = checkpoint
    show_first_painted_frame(viewer)
    return viewer, widget


def show_first_painted_frame(viewer) -> None:
    """Move the viewer to the first frame painted in the first labels layer that has paint."""
    from napari.layers import Labels

    from .engine.objects import painted_only
    from .ui.job import layer_array

    for layer in viewer.layers:
        data = layer_array(layer)
        if not isinstance(layer, Labels) or data.ndim < 3:
            continue
        painted = list(painted_only(enumerate(np.asarray(data))))
        if painted:
            world = layer.data_to_world([painted[0]] + [0] * (data.ndim - 1))
            viewer.dims.set_point(viewer.dims.ndim - data.ndim, world[0])
            return


def open_files(viewer, files: list[str]) -> None:
    """Open videos and folders of images with this plugin's lazy reader, everything else with napari's."""
    from ._reader import PLUGIN, get_reader

    for path in files:
        viewer.open(path, plugin=PLUGIN if get_reader(path) else "napari")


def open_results(results: ItemResults, show: bool = True):
    """A napari viewer with a batch item's input and labels (both lazy) and its scores dock; returns (viewer, dock).

    The dock lists the flagged frames; clicking a frame, point or row goes to it.
    The viewer starts on the first flagged frame. Labels not written yet (a
    failed item) are left out.
    """
    import napari

    from ._reader import lazy_frames
    from .engine.sources import open_source
    from .io.label_files import lazy_labels
    from .ui.scores import FrameScores

    viewer = napari.Viewer(show=show, title=f"napari-p2sam: {results.name}")
    source = open_source(results.input)
    viewer.add_image(lazy_frames(source), name=results.name, rgb=source.channels in (3, 4))
    if results.output.exists():
        viewer.add_labels(lazy_labels(results.output), name=f"{results.name} labels")
    dock = FrameScores()
    scored = [r for r in results.records if r.k is not None]
    dock.add_rows([(r.frame, r.label, r.score, r.k, r.reference_frame) for r in scored])
    dock.plot.redraw()
    dock.frame_clicked.connect(lambda frame: viewer.dims.set_point(0, frame))
    viewer.window.add_dock_widget(dock, name="Frame scores", area="right")
    if results.flagged:
        viewer.dims.set_point(0, results.flagged[0])
    return viewer, dock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m napari_p2sam.launch", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="images, stacks, videos or folders to open (default: the sample)")
    parser.add_argument("--checkpoint", help="SAM checkpoint file to select in the widget")
    args = parser.parse_args(argv)
    import napari

    open_viewer(args.files, args.checkpoint)
    napari.run()


if __name__ == "__main__":
    main()
