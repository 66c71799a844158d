"""From layers to a job: frame axis, fixed axes, reference shapes, corrections, bad inputs (no model, no Qt window)."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_p2sam.layers.job import LayerInputError, build_job, frame_geometry


def painted(shape, frame=None, value=1):
    labels = np.zeros(shape, np.uint8)
    region = (frame,) if frame is not None else ()
    labels[region + (slice(2, 6), slice(3, 7))] = value
    return labels


def test_stack_frames_references_and_output_geometry():
    data = np.arange(4 * 8 * 10, dtype=np.uint16).reshape(4, 8, 10)
    image = Image(data, name="cells", scale=(2, 0.5, 0.5), translate=(1, 0, 0))
    reference = Labels(painted((4, 8, 10), frame=2, value=3), name="ref")
    geometry = frame_geometry(image)
    job = build_job(image, reference, geometry)
    assert geometry.frame_axis == 0 and geometry.output_shape == (4, 8, 10)
    assert (geometry.scale, geometry.translate) == ((2, 0.5, 0.5), (1, 0, 0))
    assert list(job.references) == [2] and job.references[2].max() == 3
    assert job.frame_range == range(4) and job.label_dtype == np.uint8
    np.testing.assert_array_equal(job.frames.read(3), data[3])
    assert geometry.output_index(3) == (3, slice(None), slice(None))
    np.testing.assert_array_equal(geometry.point_coordinates(3, [[5, 7]]), [[3, 7, 5]])  # x = column, y = row


def test_single_2d_image_and_rgb_video():
    gray = Image(np.zeros((8, 10), np.uint8))
    job = build_job(gray, Labels(painted((8, 10))), frame_geometry(gray))
    assert job.geometry.frame_axis is None and len(job.frames) == 1 and list(job.references) == [0]
    assert job.geometry.output_index(0) == (slice(None), slice(None))

    video = Image(np.zeros((3, 8, 10, 3), np.uint8), rgb=True)
    job = build_job(video, Labels(painted((3, 8, 10), frame=0)), frame_geometry(video))
    assert job.frames.read(1).shape == (8, 10, 3) and job.geometry.output_shape == (3, 8, 10)


def test_multichannel_axes_are_read_at_the_viewer_position():
    data = np.random.default_rng(0).random((5, 2, 8, 10))  # T, C, Y, X
    image = Image(data, name="two channels")
    geometry = frame_geometry(image, frame_axis=0, position=(3, 1, 4, 4))
    job = build_job(image, Labels(_painted_tc()), geometry)
    assert geometry.fixed == ((1, 1),) and geometry.output_shape == (5, 1, 8, 10)
    assert geometry.translate == (0, 1, 0, 0)  # the size-1 channel axis sits at channel 1
    np.testing.assert_array_equal(job.frames.read(2), data[2, 1])
    assert list(job.references) == [0]  # paint read on channel 1 only
    assert geometry.point_coordinates(2, [[1, 2]]).tolist() == [[2, 0, 2, 1]]

    # a reference layer without the channel axis works too
    job = build_job(image, Labels(painted((5, 8, 10), frame=4)), geometry)
    assert list(job.references) == [4]

    # the channel axis as a single image's axis: (C, Y, X), no frame axis
    channels = Image(data[0])
    geometry = frame_geometry(channels, frame_axis=None, position=(1, 0, 0))
    job = build_job(channels, Labels(painted((8, 10))), geometry)
    np.testing.assert_array_equal(job.frames.read(0), data[0, 1])


def _painted_tc():
    labels = np.zeros((5, 2, 8, 10), np.uint8)
    labels[0, 1, 2:6, 3:7] = 1  # frame 0, channel 1
    labels[3, 0, 2:6, 3:7] = 1  # frame 3, channel 0: not the channel being segmented
    return labels


def test_corrections_are_references_and_replace_paint():
    image = Image(np.zeros((6, 8, 10), np.uint8))
    corrected = painted((8, 10), value=2)
    job = build_job(
        image, Labels(painted((6, 8, 10), frame=0)), frame_geometry(image), corrections={0: corrected, 4: corrected}
    )
    assert sorted(job.references) == [0, 4]
    assert job.references[0].max() == 2


def test_dask_image_is_read_one_frame_at_a_time():
    da = pytest.importorskip("dask.array")
    reads = []

    def frame(block_id=None):
        reads.append(block_id[0])
        return np.full((1, 8, 10), block_id[0], np.uint16)

    lazy = da.map_blocks(frame, chunks=((1,) * 50, (8,), (10,)), dtype=np.uint16)
    image = Image(lazy, contrast_limits=(0, 50))
    reads.clear()
    job = build_job(image, Labels(painted((50, 8, 10), frame=0)), frame_geometry(image))
    assert reads == []
    assert job.frames.read(7).max() == 7 and reads == [7]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda image: (None, Labels(painted((4, 8, 10), 0))), "no image layer"),
        (lambda image: (image, None), "no reference labels layer"),
        (lambda image: (image, Labels(np.zeros((4, 8, 10), np.uint8), name="empty")), "nothing is painted in 'empty'"),
        (
            lambda image: (image, Labels(painted((4, 9, 10), 0), name="odd")),
            "reference layer 'odd' has shape (4, 9, 10)",
        ),
        (lambda image: (image, Labels(painted((8, 10)), name="flat")), "needs (4, 8, 10)"),
    ],
)
def test_bad_layers_say_what_to_do(make, message):
    image = Image(np.zeros((4, 8, 10), np.uint8), name="stack")
    image_layer, reference = make(image)
    with pytest.raises(LayerInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_job(image_layer, reference, frame_geometry(image_layer))


def test_bad_frame_axis_and_range():
    image = Image(np.zeros((4, 8, 10), np.uint8), name="stack")
    with pytest.raises(LayerInputError, match="frame axis 1 is not a leading axis"):
        frame_geometry(image, frame_axis=1)
    with pytest.raises(LayerInputError, match="frames 2–5 are out of range: 'stack' has 4 frame"):
        build_job(image, Labels(painted((4, 8, 10), 0)), frame_geometry(image), frame_range=(2, 6))
