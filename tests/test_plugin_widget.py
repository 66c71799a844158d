"""The dock widget in a real napari viewer (under Xvfb): runs, live frames, cancel, corrections, errors.

Every run uses the tiny random SAM on a 5-frame 64×64 stack with one object
painted on frame 0: the masks mean nothing, the plumbing is what is tested.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from napari_p2sam import segment_stack
from napari_p2sam.models import download
from napari_p2sam.models.registry import MODELS
from napari_p2sam.ui.widget import P2SAMWidget

from .conftest import save_tiny_sam
from .model_server import ModelServer
from .plugin_support import engine, notifications, one_torch_thread  # noqa: F401  (fixtures)
from .test_download import closed_port

FRAMES, SIZE = 5, 64
RUN_TIMEOUT_MS = 120_000


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs the tiny model on one torch thread."""


def stack() -> tuple[np.ndarray, np.ndarray]:
    """A (5, 64, 64) uint8 stack with a bright square drifting right, and its reference (frame 0 painted)."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 60, (FRAMES, SIZE, SIZE), dtype=np.uint8)
    reference = np.zeros(frames.shape, np.uint8)
    for t in range(FRAMES):
        frames[t, 20:44, 10 + 3 * t : 34 + 3 * t] = 200
    reference[0, 20:44, 10:34] = 1
    return frames, reference


@pytest.fixture
def viewer_and_widget(make_napari_viewer, tiny_checkpoint, engine):
    viewer = make_napari_viewer()
    frames, reference = stack()
    viewer.add_image(frames, name="movie")
    viewer.add_labels(reference, name="painted")
    widget = P2SAMWidget(viewer, engine=engine)
    viewer.window.add_dock_widget(widget, name="P²SAM")
    widget.checkpoint.value = str(tiny_checkpoint)
    widget.device.value = "cpu"
    widget.preset.value = "ct-follow-up"
    widget.parts[1].value = 2  # k = 1..2: fewer decoder calls
    return viewer, widget


def wait_for_run(qtbot, widget: P2SAMWidget) -> None:
    qtbot.waitUntil(lambda: not widget.running, timeout=RUN_TIMEOUT_MS)


def assert_a_full_run_works(qtbot, widget: P2SAMWidget) -> None:
    """Run again: every frame is done and the run is not cancelled."""
    widget.run()
    wait_for_run(qtbot, widget)
    assert widget.last_summary.done == FRAMES and not widget.last_summary.cancelled


def shown(control) -> bool:
    """Whether a control of the dock is shown (the test's viewer window itself is hidden)."""
    return not control.native.isHidden()


def layer(viewer, name):
    return viewer.layers[name]


def test_layers_are_offered_by_kind_not_name(viewer_and_widget):
    viewer, widget = viewer_and_widget
    assert [layer.name for layer in widget.image.choices] == ["movie"]
    assert [layer.name for layer in widget.reference.choices] == ["painted"]
    viewer.add_labels(np.zeros((FRAMES, SIZE, SIZE), np.uint8), name="other paint")
    assert [layer.name for layer in widget.reference.choices] == ["painted", "other paint"]
    assert widget.frame_axis.value == 0 and [box.value for box in widget.frames] == [0, FRAMES - 1]


def test_run_shows_frames_while_running_and_matches_the_python_api(qtbot, viewer_and_widget, tiny_model, notifications):
    viewer, widget = viewer_and_widget
    reference_before = layer(viewer, "painted").data.copy()
    viewer.dims.set_current_step(0, 1)  # the user watches frame 1
    widget.run()
    assert widget.running and not widget.run_button.enabled
    # frame 1 appears (labels, prompts, a score row) while later frames are still being computed
    qtbot.waitUntil(lambda: 1 in widget.scores.frames(), timeout=RUN_TIMEOUT_MS)
    output, prompts = layer(viewer, "movie P²SAM"), layer(viewer, "movie P²SAM prompts")
    assert widget.running and 4 not in widget.scores.frames()
    assert set(prompts.data[:, 0].astype(int)) == {1}
    frame_1 = output.data[1].copy()
    # the dock itself shows frames done of the total, the time left and the frame being worked on
    bar, text = widget.progress_bar, widget.progress_text.value
    assert shown(bar) and bar.max == FRAMES and 2 <= bar.value < FRAMES
    done = bar.value
    assert text.startswith(f"{done} / {FRAMES} frames · about ") and f"left · now frame {done}" in text
    wait_for_run(qtbot, widget)
    assert not shown(widget.progress_bar) and widget.progress_text.value.startswith("done: 5 frames in")

    summary = widget.last_summary
    assert (summary.done, summary.total, summary.error, summary.cancelled) == (FRAMES, FRAMES, None, False)
    expected = segment_stack(*stack(), model=tiny_model, settings=widget.settings())
    np.testing.assert_array_equal(output.data, expected)
    np.testing.assert_array_equal(frame_1, expected[1])  # shown during the run as it is at the end
    np.testing.assert_array_equal(layer(viewer, "painted").data, reference_before)  # never written
    # prompts on every segmented frame; positive (green) and negative (magenta) points differ in colour
    assert set(prompts.data[:, 0].astype(int)) == {1, 2, 3, 4}
    colours = {tuple(np.round(c, 2)) for c in prompts.face_color}
    assert colours == {(0.0, 1.0, 0.0, 1.0), (1.0, 0.0, 1.0, 1.0)}
    # one score row and plotted point per segmented frame; clicking a row moves the viewer to that frame
    assert sorted(widget.scores.frames()) == [1, 2, 3, 4]
    widget.scores.plot.redraw()
    lines = widget.scores.plot.axes.get_lines()
    plotted = {int(x) for line in lines if line.get_label() in ("label 1", "empty mask") for x, _y in line.get_xydata()}
    assert plotted == {1, 2, 3, 4}  # a point, or a cross on the top edge where the mask is empty
    row = widget.scores.frames().index(3)
    widget.scores.table.cellClicked.emit(row, 2)
    assert viewer.dims.current_step[0] == 3
    assert any("P²SAM: 5 frame(s)" in text for _severity, text in notifications)


def test_cancel_keeps_finished_frames(qtbot, viewer_and_widget, notifications):
    viewer, widget = viewer_and_widget
    widget.run()
    qtbot.waitUntil(lambda: len(widget.scores.frames()) > 0, timeout=RUN_TIMEOUT_MS)
    widget.cancel()
    wait_for_run(qtbot, widget)
    summary = widget.last_summary
    assert summary.cancelled and 2 <= summary.done < FRAMES
    assert set(widget.scores.frames()) == set(range(1, summary.done))
    prompts = layer(viewer, "movie P²SAM prompts")
    assert set(prompts.data[:, 0].astype(int)) == set(range(1, summary.done))
    output = layer(viewer, "movie P²SAM").data
    np.testing.assert_array_equal(output[0], stack()[1][0])  # the painted frame, copied
    assert not output[summary.done :].any()  # frames never reached stay empty
    assert any("cancelled" in text and f"{summary.done} of {FRAMES}" in text for _s, text in notifications)
    assert_a_full_run_works(qtbot, widget)


def test_a_first_run_builds_its_layers_in_separate_event_loop_turns(qtbot, viewer_and_widget):
    """napari draws, handles input and runs its timers between the steps that start a run."""
    from qtpy.QtCore import QTimer

    viewer, widget = viewer_and_widget
    steps: list[str] = []
    viewer.layers.events.inserted.connect(lambda event: steps.append(type(event.value).__name__))
    tick = QTimer()
    tick.setInterval(1)
    tick.timeout.connect(lambda: steps.append("tick") if steps[-1:] != ["tick"] else None)
    tick.start()
    widget.run()
    qtbot.waitUntil(lambda: shown(widget.progress_bar), timeout=RUN_TIMEOUT_MS)  # the worker started
    tick.stop()
    prompts = layer(viewer, "movie P²SAM prompts")
    assert steps[:4] == ["Labels", "tick", "Points", "tick"]
    assert prompts.visible  # added hidden, shown on a turn of its own
    wait_for_run(qtbot, widget)


def test_cancel_while_the_output_layers_are_being_built(qtbot, viewer_and_widget, notifications):
    viewer, widget = viewer_and_widget
    widget.run()
    widget.cancel()  # before the worker started: napari builds the layers over several event-loop turns
    wait_for_run(qtbot, widget)
    summary = widget.last_summary
    assert summary.cancelled and summary.error is None and summary.done < FRAMES
    assert any("cancelled" in text for _s, text in notifications)
    assert layer(viewer, "movie P²SAM prompts").visible
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    assert_a_full_run_works(qtbot, widget)


def test_correction_becomes_a_reference_and_nothing_is_encoded_again(qtbot, viewer_and_widget, notifications):
    viewer, widget = viewer_and_widget
    widget.run()
    wait_for_run(qtbot, widget)
    assert widget.last_summary.encoded >= FRAMES - 1  # every target (frame 0's reference may be remembered)

    output = layer(viewer, "movie P²SAM")
    corrected = np.zeros((SIZE, SIZE), np.uint8)
    corrected[20:44, 22:46] = 1  # the user repaints frame 4
    output.data[4] = corrected
    viewer.dims.set_current_step(0, 4)
    widget.use_reference_button.clicked.emit()
    assert "4" in widget.status.value
    assert any("frame 4 of 'movie P²SAM' is now a reference" in text for _s, text in notifications)

    widget.run()
    wait_for_run(qtbot, widget)
    summary = widget.last_summary
    assert summary.error is None and summary.encoded == 0  # every embedding came from the cache
    np.testing.assert_array_equal(output.data[4], corrected)  # a reference keeps its paint
    reference_of = dict(zip(widget.scores.frames(), column(widget.scores.table, 4)))
    assert reference_of == {1: 0, 2: 0, 3: 4}  # nearest painted frame; ties go to the earlier one
    assert output is layer(viewer, "movie P²SAM")  # the same output layer is reused


def column(table, index):
    return [int(table.item(row, index).text()) for row in range(table.rowCount())]


def test_run_while_running_is_refused_with_a_notification(qtbot, viewer_and_widget, notifications):
    viewer, widget = viewer_and_widget
    widget.run()
    widget.run()  # while napari still builds the output layers
    assert (
        "warning",
        "P²SAM is already running on 'movie P²SAM': wait for it to finish, or press Cancel",
    ) in notifications
    qtbot.waitUntil(lambda: shown(widget.progress_bar), timeout=RUN_TIMEOUT_MS)  # the worker started
    widget.run()  # while the worker runs
    assert (
        notifications.count(
            ("warning", "P²SAM is already running on 'movie P²SAM': wait for it to finish, or press Cancel")
        )
        == 2
    )
    wait_for_run(qtbot, widget)
    assert len([name for name in viewer.layers if "P²SAM" in name.name]) == 2  # one output + its prompts
    assert widget.last_summary.done == FRAMES


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda viewer, widget: widget.reference.value.data.fill(0), "nothing is painted in 'painted'"),
        (
            lambda viewer, widget: setattr(
                widget.reference, "value", viewer.add_labels(np.ones((FRAMES, 32, 32), np.uint8), name="small")
            ),
            "reference layer 'small' has shape (5, 32, 32) but image 'movie' needs (5, 64, 64)",
        ),
        (lambda viewer, widget: viewer.layers.remove("movie"), "no image layer"),
        (
            lambda viewer, widget: setattr(widget.checkpoint, "value", "/no/such/model.pth"),
            "the model file /no/such/model.pth does not exist",
        ),
    ],
    ids=["nothing painted", "reference of another shape", "no image layer", "missing model file"],
)
def test_bad_inputs_are_notifications_and_nothing_is_lost(
    qtbot, viewer_and_widget, notifications, tiny_checkpoint, spoil, message
):
    viewer, widget = viewer_and_widget
    spoil(viewer, widget)
    layers_before = [layer.name for layer in viewer.layers]
    widget.run()
    assert not widget.running
    errors = [text for severity, text in notifications if severity == "error"]
    assert len(errors) == 1 and message in errors[0], notifications
    assert [layer.name for layer in viewer.layers] == layers_before  # no output layer made, nothing removed


def test_wrong_model_file_fails_in_the_worker_and_run_works_again(
    qtbot, viewer_and_widget, notifications, tiny_checkpoint, tmp_path
):
    viewer, widget = viewer_and_widget
    not_a_model = tmp_path / "notes.pth"
    not_a_model.write_text("these are not weights")
    widget.checkpoint.value = str(not_a_model)
    widget.run()
    wait_for_run(qtbot, widget)
    errors = [text for severity, text in notifications if severity == "error"]
    assert len(errors) == 1 and "notes.pth" in errors[0] and "Traceback" not in errors[0]
    assert errors[0].startswith("P²SAM stopped: cannot read")
    assert widget.run_button.enabled and not widget.cancel_button.enabled

    widget.checkpoint.value = str(tiny_checkpoint)
    widget.run()
    wait_for_run(qtbot, widget)
    assert widget.last_summary.error is None and widget.last_summary.done == FRAMES


@pytest.fixture
def served_vit_t(tmp_path, monkeypatch, tiny_checkpoint):
    """The registry's vit_t pointed at a local server holding the tiny checkpoint; model cache in tmp_path."""
    server = ModelServer()
    data = tiny_checkpoint.read_bytes()
    server.files["/mobile_sam.pt"] = data
    entry = replace(MODELS["vit_t"], url=server.url("/mobile_sam.pt"), sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(MODELS, "vit_t", entry)
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))
    yield server
    server.close()


def test_named_model_is_downloaded_on_first_use_then_reused(qtbot, viewer_and_widget, served_vit_t):
    viewer, widget = viewer_and_widget
    widget.model.reset_choices()
    assert "MB download" in widget.model.native.itemText(list(widget.model.choices).index("vit_t"))
    widget.model.value = "vit_t"
    widget.run()
    wait_for_run(qtbot, widget)
    assert widget.last_summary.error is None and widget.last_summary.done == FRAMES
    assert len(served_vit_t.requests_for("/mobile_sam.pt")) == 1
    assert "download" not in widget.model.native.itemText(list(widget.model.choices).index("vit_t"))
    widget.run()
    wait_for_run(qtbot, widget)
    assert widget.last_summary.done == FRAMES and len(served_vit_t.requests_for("/mobile_sam.pt")) == 1


def test_offline_download_is_a_notification_with_the_recipe(
    qtbot, viewer_and_widget, monkeypatch, tmp_path, notifications
):
    viewer, widget = viewer_and_widget
    unreachable = f"http://127.0.0.1:{closed_port()}/mobile_sam.pt"
    monkeypatch.setitem(MODELS, "vit_t", replace(MODELS["vit_t"], url=unreachable))
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))
    widget.model.value = "vit_t"
    layers_before = [layer.name for layer in viewer.layers]
    widget.run()
    wait_for_run(qtbot, widget)
    [error] = [text for severity, text in notifications if severity == "error"]
    assert error.startswith("P²SAM: model vit_t is not here and could not be downloaded")
    assert f"Put mobile_sam.pt in {tmp_path / 'cache' / 'models'}" in error  # where to put the file by hand
    assert "`napari-p2sam models download vit_t`" in error
    assert [layer.name for layer in viewer.layers] == layers_before  # no empty output layers
    left = [path.name for path in (tmp_path / "cache").rglob("*") if not path.is_dir()]
    assert left == [], "no lock file, no partial download left behind"
    assert widget.run_button.enabled and not widget.cancel_button.enabled


@pytest.mark.parametrize("kind", ["rgb video", "two-channel time-lapse"])
def test_rgb_and_multichannel_stacks(qtbot, make_napari_viewer, tiny_checkpoint, engine, kind):
    viewer = make_napari_viewer()
    frames, reference = stack()
    frames, reference = frames[:3], reference[:3]
    if kind == "rgb video":
        image = viewer.add_image(np.stack([frames] * 3, axis=-1), name="movie", rgb=True)
        expected_shape, translate = (3, SIZE, SIZE), (0, 0, 0)
    else:  # (T, C, Y, X): channel 1 holds the object; the viewer shows channel 1
        image = viewer.add_image(np.stack([frames // 4, frames], axis=1), name="movie")
        viewer.dims.set_current_step(1, 1)
        expected_shape, translate = (3, 1, SIZE, SIZE), (0, 1, 0, 0)
    viewer.add_labels(reference, name="painted")  # painted without the channel axis
    widget = P2SAMWidget(viewer, engine=engine)
    widget.checkpoint.value = str(tiny_checkpoint)
    widget.preset.value = "ct-follow-up"
    assert widget.image.value is image and widget.frame_axis.value == 0
    widget.run()
    wait_for_run(qtbot, widget)
    assert widget.last_summary.error is None and widget.last_summary.done == 3
    output = layer(viewer, "movie P²SAM")
    assert output.data.shape == expected_shape and tuple(output.translate) == translate
    np.testing.assert_array_equal(output.data.reshape(3, SIZE, SIZE)[0], reference[0])


def test_failure_mid_run_keeps_finished_frames(qtbot, make_napari_viewer, tiny_checkpoint, engine, notifications):
    import dask.array as da

    frames, reference = stack()

    def read(block_id=None):
        if block_id[0] == 3:
            raise OSError("the network drive went away")
        return frames[block_id[0]][None]

    viewer = make_napari_viewer()
    viewer.add_image(
        da.map_blocks(read, chunks=((1,) * FRAMES, (SIZE,), (SIZE,)), dtype=np.uint8),
        name="movie",
        contrast_limits=(0, 255),
    )
    viewer.add_labels(reference, name="painted")
    widget = P2SAMWidget(viewer, engine=engine)
    widget.checkpoint.value = str(tiny_checkpoint)
    widget.preset.value = "ct-follow-up"
    widget.run()
    wait_for_run(qtbot, widget)
    [error] = [text for severity, text in notifications if severity == "error"]
    assert "the network drive went away" in error and "3 finished frame(s) kept in 'movie P²SAM'" in error
    assert set(layer(viewer, "movie P²SAM prompts").data[:, 0].astype(int)) == {1, 2}
    assert widget.run_button.enabled


@pytest.fixture(scope="module")
def slow_checkpoint(tmp_path_factory):
    """A random SAM whose encoder takes seconds per frame on one thread (a frame's work outlasts a cancel)."""
    path = tmp_path_factory.mktemp("ckpt") / "slow_sam.pth"
    return save_tiny_sam(path, embed_dim=384, depth=6, num_heads=8, window_size=14, global_attn_indexes=(5,))


def test_cancel_ends_the_run_within_seconds_even_in_the_middle_of_a_frame(
    qtbot, viewer_and_widget, slow_checkpoint, tiny_checkpoint
):
    import time

    viewer, widget = viewer_and_widget
    widget.checkpoint.value = str(slow_checkpoint)
    widget.run()
    qtbot.waitUntil(lambda: 1 in widget.scores.frames(), timeout=RUN_TIMEOUT_MS)
    first_done = time.monotonic()
    qtbot.waitUntil(lambda: 2 in widget.scores.frames(), timeout=RUN_TIMEOUT_MS)
    frame_seconds = time.monotonic() - first_done  # one whole frame's work
    qtbot.wait(300)  # well into frame 3
    cancelled_at = time.monotonic()
    widget.cancel()
    assert widget.progress_text.value == "stopping…"
    wait_for_run(qtbot, widget)
    waited = time.monotonic() - cancelled_at
    assert waited < 2.5 and waited < frame_seconds, (waited, frame_seconds)
    summary = widget.last_summary
    assert summary.cancelled and summary.done in (3, 4)  # frame 0 (painted), 1, 2, maybe 3; never half of one
    output = layer(viewer, "movie P²SAM").data
    assert output[1].any() and output[2].any() and not output[summary.done :].any()
    assert widget.progress_text.value == f"cancelled: {summary.done} / {FRAMES} frames kept"
    widget.checkpoint.value = str(tiny_checkpoint)  # a fast model: the next run starts a new model process
    assert_a_full_run_works(qtbot, widget)


def test_options_the_method_or_variant_ignores_are_disabled(viewer_and_widget):
    _viewer, widget = viewer_and_widget
    widget.preset.value = "photos"  # P²SAM, natural
    assert widget.parts.enabled and not widget.background_parts.enabled
    widget.variant.value = "medical"
    assert widget.parts.enabled and widget.background_parts.enabled
    widget.method.value = "persam"  # one part
    assert not widget.parts.enabled and widget.background_parts.enabled
    widget.preset.value = "persam"
    assert not widget.parts.enabled and not widget.background_parts.enabled


def test_the_frames_range_follows_the_frame_axis(make_napari_viewer, engine):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 7, SIZE, SIZE), np.uint8), name="t by z")
    widget = P2SAMWidget(viewer, engine=engine)
    assert widget.frame_axis.value == 0 and [box.value for box in widget.frames] == [0, 3]
    widget.frame_axis.value = 1
    assert [box.value for box in widget.frames] == [0, 6] and widget.frames[1].max == 6
    viewer.add_image(np.zeros((SIZE, SIZE), np.uint8), name="one image")
    widget.image.value = viewer.layers["one image"]
    assert widget.frame_axis.value is None and not widget.frames.enabled


def test_deleting_the_output_layer_resets_corrections_scores_and_status(qtbot, viewer_and_widget):
    viewer, widget = viewer_and_widget
    widget.run()
    wait_for_run(qtbot, widget)
    viewer.dims.set_current_step(0, 3)
    widget.use_reference_button.clicked.emit()
    assert widget.status.value == "corrected frames used as references: 3"
    viewer.layers.remove("movie P²SAM")
    assert widget.status.value == "" and widget.scores.frames() == []
    widget.run()
    wait_for_run(qtbot, widget)
    reference_of = dict(zip(widget.scores.frames(), column(widget.scores.table, 4)))
    assert set(reference_of.values()) == {0}  # the deleted layer's correction is forgotten
    assert len([lay for lay in viewer.layers if lay.name.startswith("movie P²SAM") and "prompts" not in lay.name]) == 1


def test_a_rerun_with_other_settings_clears_the_frames_it_does_not_reach(qtbot, viewer_and_widget, notifications):
    viewer, widget = viewer_and_widget
    widget.run()
    wait_for_run(qtbot, widget)
    output = layer(viewer, "movie P²SAM")
    assert output.data[3:].any()
    widget.parts[1].value = 1  # other settings, and only frames 0..2
    widget.frames[1].value = 2
    widget.run()
    wait_for_run(qtbot, widget)
    assert output is layer(viewer, "movie P²SAM") and not output.data[3:].any()
    assert any("came from another model or other settings" in text for _s, text in notifications)
    prompts = layer(viewer, "movie P²SAM prompts")
    assert set(prompts.data[:, 0].astype(int)) == {1, 2}


def test_the_dock_fits_a_1280_by_720_screen_without_cut_labels(make_napari_viewer, engine, qtbot):
    from qtpy.QtWidgets import QLabel

    viewer = make_napari_viewer(show=True)
    frames, reference = stack()
    viewer.add_image(frames, name="movie")
    viewer.add_labels(reference, name="painted")
    viewer.window._qt_window.resize(1280, 720)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-p2sam", "One-shot segmentation")
    qtbot.wait(200)
    assert widget.native.minimumSizeHint().height() <= 720 - 100  # title and menu bars take the rest
    cut = [
        label.text()
        for label in widget.native.findChildren(QLabel)
        if label.isVisible() and label.text() and label.width() < label.sizeHint().width()
    ]
    assert cut == []


@pytest.mark.parametrize("answer", ["No", "Yes"])
def test_an_image_given_as_the_reference_asks_before_running(qtbot, viewer_and_widget, monkeypatch, answer):
    from qtpy.QtWidgets import QMessageBox

    viewer, widget = viewer_and_widget
    asked = []

    def reply(_parent, _title, text, *_buttons):
        asked.append(text)
        return getattr(QMessageBox.StandardButton, answer)

    monkeypatch.setattr(QMessageBox, "question", reply)
    photo = np.zeros((FRAMES, SIZE, SIZE), np.uint8)
    photo[0] = np.arange(SIZE * SIZE).reshape(SIZE, SIZE) % 200 + 1  # 200 grey levels
    widget.reference.value = viewer.add_labels(photo, name="a photo")
    widget.frames[1].value = 0  # the painted frame only: a run with 200 objects ends at once
    layers_before = [layer.name for layer in viewer.layers]
    widget.run()
    [question] = asked
    assert "holds 200 objects" in question and "Segment all 200 objects?" in question
    if answer == "No":
        assert not widget.running and [layer.name for layer in viewer.layers] == layers_before
    else:
        wait_for_run(qtbot, widget)
        assert widget.last_summary.done == 1
        np.testing.assert_array_equal(layer(viewer, "movie P²SAM").data[0], photo[0])


def test_a_blank_frame_is_a_warning_in_the_dock(qtbot, viewer_and_widget, notifications):
    viewer, widget = viewer_and_widget
    layer(viewer, "movie").data[2] = 7  # a dropped camera frame: one grey level
    widget.run()
    wait_for_run(qtbot, widget)
    warned = [text for severity, text in notifications if severity == "warning"]
    assert len(warned) == 1 and "frame 2" in warned[0] and "is constant" in warned[0], notifications
    assert widget.last_summary.done == FRAMES


def test_the_precision_travels_to_the_model_process_which_refuses_fp16_on_the_cpu(
    qtbot, viewer_and_widget, notifications
):
    _viewer, widget = viewer_and_widget
    widget.precision.value = "fp16"
    widget.run()
    wait_for_run(qtbot, widget)
    errors = [text for severity, text in notifications if severity == "error"]
    assert errors == [
        "P²SAM stopped: precision fp16 runs only on a CUDA GPU; on the CPU use bf16 (on a CPU with AMX or "
        "AVX512-BF16) or fp32"
    ]
    widget.precision.value = "fp32"
    assert_a_full_run_works(qtbot, widget)


def test_the_batch_size_setting_reaches_the_model_process_and_changes_no_result(qtbot, viewer_and_widget, tiny_model):
    viewer, widget = viewer_and_widget
    widget.batch_size.value = 2
    assert_a_full_run_works(qtbot, widget)
    expected = segment_stack(*stack(), model=tiny_model, settings=widget.settings(), batch_size=1)
    np.testing.assert_array_equal(layer(viewer, "movie P²SAM").data, expected)
