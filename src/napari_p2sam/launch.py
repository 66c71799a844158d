"""Open napari with the P²SAM widget docked.

``python -m napari_p2sam.launch [FILES ...] [--checkpoint CKPT]`` (what
``./dev napari`` runs). Without FILES the plugin's sample time-lapse is
loaded (two cells, both painted on frame 0), so a run needs only a model.
"""

from __future__ import annotations

import argparse

import numpy as np

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
    from .layers.job import layer_array

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
