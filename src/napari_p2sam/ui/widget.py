"""The P²SAM dock widget: choose layers, model and settings; run in the background; correct; rerun.

Layers are chosen by the user from the viewer's layers, never found by
name. The model runs in a process of its own (:mod:`.engine_process`): napari's
process never imports torch. A napari thread worker talks to it: finished
frames appear at once in a new output labels layer (the reference layer is
never written), their prompts in a points layer, their scores in the scores
dock; the dock shows frames done, the time left and the frame being worked
on. A registry model is downloaded (in a thread of napari's process) before
any layer is made. Embeddings are kept in a folder for the widget's
lifetime, so a rerun after a correction or new settings re-encodes nothing.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from weakref import WeakKeyDictionary

import napari
from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, SpinBox
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QElapsedTimer, QTimer
from qtpy.QtWidgets import QComboBox, QMessageBox

from ..engine.objects import TooManyObjectsError, check_object_count
from ..engine.settings import METHODS, PRESETS, VARIANTS, Settings
from ..io.paths import user_path
from ..layers.job import LayerInputError, build_job, frame_geometry, layer_array, leading_axes
from ..layers.output import RunOutput, add_output_labels, add_prompt_points
from ..models.download import model_path
from ..models.precision import PRECISIONS
from ..models.registry import MODELS
from ..worker.engine_process import EngineProcess
from ..worker.messages import DownloadMeter, FrameUpdate, RunSummary
from ..worker.model_choice import ModelChoice, resolve_model
from .scores import FrameScores

log = logging.getLogger(__name__)

AUTO_DEVICE = "auto"
CHECKPOINT_FILE = "file"
SHOW_INTERVAL_MS = 100
"""Finished frames are shown at most this often (several at once when they come faster)."""
TURN_PAUSE_MS = 5
"""Pause between the steps that start a run (see ``in_turns``)."""
SINGLE_IMAGE = "none (one image)"
BATCH_SIZES = [("auto", 0)] + [(str(n), n) for n in (1, 2, 4, 8, 16, 32)]
"""Frames per encoder call offered (0: the engine chooses)."""


def model_choices(_widget=None) -> list[tuple[str, str]]:
    """The registry's models (what suits them, whether they still need a download), then 'a file'."""
    choices = []
    for name, info in MODELS.items():
        fetch = "" if model_path(name).is_file() else f" · {info.size_mb} MB download"
        choices.append((f"{info.title} · {info.hardware.split(':')[0]}{fetch}", name))
    return choices + [("checkpoint file (below)", CHECKPOINT_FILE)]


def models_tooltip() -> str:
    """Which data each registry model suits."""
    return "\n".join(f"{info.title}: {info.data}; {info.hardware}" for info in MODELS.values())


def range_edit(label: str, low: int, high: int, minimum: int, maximum: int, tooltip: str) -> Container:
    """Two spin boxes side by side: (min, max)."""
    return Container(
        widgets=[SpinBox(value=low, min=minimum, max=maximum), SpinBox(value=high, min=minimum, max=maximum)],
        layout="horizontal",
        labels=False,
        label=label,
        tooltip=tooltip,
    )


class P2SAMWidget(Container):
    """The dock widget. ``napari_viewer`` is the viewer it works on; ``engine``: the model's process to
    use (default: one of its own, started at once and ended with the widget)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, engine: EngineProcess | None = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._engine = engine if engine is not None else EngineProcess()
        self._cache_folder = tempfile.TemporaryDirectory(prefix="napari-p2sam-embeddings-")
        self._outputs: WeakKeyDictionary = WeakKeyDictionary()  # image layer -> RunOutput
        self._worker = None
        self._starting = False  # between the click on Run and the worker's start
        self._running_on = ""  # the output layer's name, for messages
        self._stop = threading.Event()
        self._frames_run = range(0)  # the frames of the run going on
        self._meter = DownloadMeter()
        self._download_timer = QTimer(self.native)
        self._download_timer.setInterval(250)
        self._download_timer.timeout.connect(self._show_download)
        self._pending: list[FrameUpdate] = []
        self._show_timer = QTimer(self.native)
        self._show_timer.setSingleShot(True)
        self._show_timer.timeout.connect(self._show_pending)
        self._since_shown = QElapsedTimer()
        self._output: RunOutput | None = None
        self.last_summary: RunSummary | None = None

        self.image = ComboBox(label="image", choices=self._layers_of(napari.layers.Image))
        self.reference = ComboBox(
            label="reference",
            choices=self._layers_of(napari.layers.Labels),
            tooltip="the labels layer with the object(s) painted on one or more frames (each label = one object)",
        )
        self.frame_axis = ComboBox(
            label="frame axis",
            choices=self._frame_axis_choices,
            tooltip="the axis holding time points or slices; other axes are read at the viewer's current position",
        )
        self.frames = range_edit("frames", 0, 0, 0, 0, "first and last frame to segment (inclusive)")
        self.model = ComboBox(label="model", choices=model_choices, tooltip=models_tooltip())
        self.model.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model.native.setMinimumContentsLength(24)  # long model names must not widen the dock
        self.checkpoint = FileEdit(
            label="checkpoint",
            mode="r",
            filter="*.pth *.pt",
            tooltip="any SAM checkpoint file (.pth), e.g. a fine-tune",
        )
        self.normalization = ComboBox(
            label="normalisation",
            choices=[("SAM (mean/std)", "sam"), ("MedSAM (min-max)", "minmax")],
            tooltip="the input normalisation the model was trained with",
        )
        self.device = ComboBox(
            label="device", choices=[AUTO_DEVICE, "cpu"], tooltip="auto: a GPU when there is one, else the CPU"
        )
        self.precision = ComboBox(
            label="precision",
            choices=list(PRECISIONS),
            tooltip="the image encoder's number format: fp32 (exact); bf16 on a GPU of the Ampere generation or "
            "newer, or on a CPU with AMX or AVX512-BF16; fp16 on a GPU (faster, results may differ a little)",
        )
        self.batch_size = ComboBox(
            label="batch size",
            choices=BATCH_SIZES,
            tooltip="frames per encoder call; auto: from free GPU memory on CUDA, 1 elsewhere",
        )
        self.preset = ComboBox(label="preset", choices=list(PRESETS), value="photos")
        self.method = ComboBox(label="method", choices=list(METHODS))
        self.variant = ComboBox(
            label="variant",
            choices=list(VARIANTS),
            tooltip="natural: photos; medical: scans and videos (background-part negative points)",
        )
        self.parts = range_edit("parts", 1, 5, 1, 16, "part counts k tried on every frame (the best is kept)")
        self.background_parts = range_edit("background parts", 1, 1, 0, 16, "negative-point part counts (medical)")
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.use_reference_button = PushButton(
            text="Use this frame as reference",
            tooltip="after correcting the current frame in the output layer: use it as a reference in the next run",
        )
        self.forget_button = PushButton(text="Forget corrections")
        self.progress_bar = ProgressBar(value=0, min=0, max=1, visible=False, label="progress")
        self.progress_text = Label(value="", visible=False, label="")
        self.status = Label(value="")
        self.extend(
            [
                self.image,
                self.reference,
                self.frame_axis,
                self.frames,
                self.model,
                self.checkpoint,
                self.normalization,
                self.device,
                self.precision,
                self.batch_size,
                self.preset,
                self.method,
                self.variant,
                self.parts,
                self.background_parts,
                Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False),
                self.progress_bar,
                self.progress_text,
                Container(widgets=[self.use_reference_button, self.forget_button], layout="horizontal", labels=False),
                self.status,
            ]
        )
        self.scores = FrameScores()
        self.scores.setMinimumHeight(240)
        self.scores.frame_clicked.connect(self.go_to_frame)
        self._scores_docked = False

        self.image.changed.connect(self._image_changed)
        self.frame_axis.changed.connect(self._frame_axis_changed)
        self.preset.changed.connect(self._apply_preset)
        self.method.changed.connect(self._enable_options)
        self.variant.changed.connect(self._enable_options)
        self.model.changed.connect(self._model_changed)
        self.checkpoint.changed.connect(lambda _path: setattr(self.model, "value", CHECKPOINT_FILE))
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.use_reference_button.changed.connect(self.use_current_frame_as_reference)
        self.forget_button.changed.connect(self.forget_corrections)
        for event in (
            self.viewer.layers.events.inserted,
            self.viewer.layers.events.removed,
            self.viewer.layers.events.moved,
        ):
            event.connect(self._layers_changed)
        self.viewer.layers.events.removed.connect(self._layer_removed)
        self.viewer.dims.events.current_step.connect(self._viewer_moved)
        self._apply_preset(self.preset.value)
        self.reset_choices()
        self._image_changed()
        if engine is None:
            self.native.destroyed.connect(self._engine.close)
        self._start_engine()

    def _start_engine(self) -> None:
        """Start the model's process now (it imports torch for seconds), so that Run finds it ready;
        offer its devices once it is."""
        threading.Thread(target=start_engine, args=(self._engine,), daemon=True).start()
        self._devices_timer = QTimer(self.native)  # ends with the dock
        self._devices_timer.setInterval(250)
        self._devices_timer.timeout.connect(self._offer_devices)
        self._devices_timer.start()

    def _offer_devices(self) -> None:
        devices = self._engine.devices
        if not devices:
            return
        self._devices_timer.stop()
        if list(self.device.choices) != devices:
            value = self.device.value
            self.device.choices = devices
            self.device.value = value if value in devices else AUTO_DEVICE

    # ----- choices -------------------------------------------------------------------------------------
    def _layers_of(self, kind):
        def choices(_widget=None):
            return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, kind)]

        return choices

    def _frame_axis_choices(self, _widget=None) -> list:
        layer = self.image.value
        choices = [(SINGLE_IMAGE, None)]
        if layer is None:
            return choices
        world_labels = self.viewer.dims.axis_labels
        offset = len(world_labels) - layer.ndim
        shape = layer_array(layer).shape
        for axis in range(leading_axes(layer)):
            label = world_labels[offset + axis] if 0 <= offset + axis < len(world_labels) else ""
            named = (
                f" {label}" if label and not label.lstrip("-").isdigit() else ""
            )  # napari's default labels are numbers
            choices.append((f"axis {axis}{named} ({shape[axis]} frames)", axis))
        return choices

    def _layers_changed(self, event=None) -> None:
        layer = getattr(event, "value", None)
        if event is not None and event.type == "inserted" and layer is not None:
            layer.events.name.connect(lambda _e: self.reset_choices())
        self.reset_choices()

    def _image_changed(self, _value=None) -> None:
        self.frame_axis.reset_choices()
        leading = [axis for axis in self.frame_axis.choices if axis is not None]
        self.frame_axis.value = leading[0] if leading else None
        self._frame_axis_changed()

    def _frame_axis_changed(self, _value=None) -> None:
        layer, axis = self.image.value, self.frame_axis.value
        count = 1
        if layer is not None and axis is not None:
            count = layer_array(layer).shape[axis]
        first, last = self.frames
        for box in (first, last):
            box.max = count - 1
        first.value, last.value = 0, count - 1
        self.frames.enabled = axis is not None

    def _apply_preset(self, name: str) -> None:
        settings = PRESETS[name]
        self.method.value = settings.method
        self.variant.value = settings.variant
        for box, value in zip(self.parts, settings.parts):
            box.value = value
        for box, value in zip(self.background_parts, settings.background_parts):
            box.value = value
        self._enable_options()

    def _enable_options(self, _value=None) -> None:
        """Only options that the chosen method and variant use can be changed: parts for P²SAM (PerSAM
        uses one), background parts for the medical variant."""
        self.parts.enabled = self.method.value == "p2sam"
        self.background_parts.enabled = self.variant.value == "medical"

    def _layer_removed(self, event) -> None:
        """A deleted output layer takes its run's state with it: corrections, scores, status."""
        removed = event.value
        for image, output in list(self._outputs.items()):
            if removed is output.labels or removed is output.points:
                del self._outputs[image]
                if output is self._output and not self.running:
                    self._output = None
                    self.scores.clear_rows()
                self._show_corrections()

    # ----- reading the form -----------------------------------------------------------------------------
    def settings(self) -> Settings:
        """The algorithm settings on the form (raises ValueError for an impossible range)."""
        return Settings(
            method=self.method.value,
            variant=self.variant.value,
            parts=tuple(box.value for box in self.parts),
            background_parts=tuple(box.value for box in self.background_parts),
        )

    def model_checkpoint(self) -> str:
        """The model on the form: a registry name, or a checkpoint file that must exist (raises
        :class:`LayerInputError`)."""
        if self.model.value != CHECKPOINT_FILE:
            return self.model.value
        path = user_path(self.checkpoint.value)
        if str(self.checkpoint.value) in ("", ".") or path.is_dir():
            raise LayerInputError("no checkpoint file chosen: pick a SAM checkpoint (.pth) under 'checkpoint'")
        if not path.is_file():
            raise LayerInputError(f"the model file {path} does not exist: pick a SAM checkpoint file (.pth)")
        return str(path)

    def _model_changed(self, name: str) -> None:
        if name in MODELS:
            self.normalization.value = MODELS[name].normalization

    def current_position(self, layer) -> list[float]:
        """The viewer's current position in ``layer``'s data coordinates."""
        return list(layer.world_to_data(self.viewer.dims.point))

    # ----- running --------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._starting or self._worker is not None

    def run(self, _value=None) -> None:
        """Check the form and start a run in the background; every problem becomes a notification.

        A registry model not downloaded yet is downloaded first; no layer is
        made before the model is there.
        """
        if self.running:
            show_warning(f"P²SAM is already running on '{self._running_on}': wait for it to finish, or press Cancel")
            return
        try:
            image, reference = self.image.value, self.reference.value
            geometry = frame_geometry(
                image, self.frame_axis.value, self.current_position(image) if image is not None else None
            )
            output = self._outputs.get(image) if image is not None else None
            if output is not None and (output.geometry != geometry or not output.is_shown_in(self.viewer)):
                output = None
            first, last = (box.value for box in self.frames)
            job = build_job(
                image,
                reference,
                geometry,
                frame_range=(first, last + 1),
                corrections=output.corrections() if output is not None else None,
            )
            settings = self.settings()
            checkpoint = self.model_checkpoint()
        except (ValueError, OSError) as err:
            show_error(f"P²SAM: {err}")
            return
        if not self._objects_confirmed(job):
            return
        self._starting = True
        self._stop.clear()
        self._running_on = output.labels.name if output is not None else f"{image.name} P²SAM"
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = ""
        device = None if self.device.value == AUTO_DEVICE else self.device.value
        options = dict(
            device=device,
            normalization=self.normalization.value,
            precision=self.precision.value,
            download_progress=self._meter,
        )

        def begin(model: ModelChoice | None, error: OSError | None = None) -> None:
            if model is None or self._stop.is_set():
                self._ended_before_start(error)
            else:
                in_turns(self._starting_steps(image, job, settings, model, output))

        if checkpoint not in MODELS or model_path(checkpoint).is_file():
            begin(resolve_model(checkpoint, **options))
            return
        self._show_progress_text(f"downloading {checkpoint}…")
        self._meter.model, self._meter.done, self._meter.total = checkpoint, 0, None
        self._download_timer.start()
        fetch = create_worker(resolve_or_error, checkpoint, **options)
        fetch.returned.connect(lambda outcome: begin(*outcome))
        fetch.start()

    def _objects_confirmed(self, job) -> bool:
        """True unless the reference holds more objects than MAX_OBJECTS and the user declines to go on."""
        try:
            check_object_count(job.references)
        except TooManyObjectsError as err:
            text = str(err)
            answer = QMessageBox.question(
                self.native,
                "P²SAM: many objects",
                f"{text[0].upper()}{text[1:]}.\n\nSegment all {err.count} objects?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            return answer == QMessageBox.StandardButton.Yes
        return True

    def _ended_before_start(self, error: Exception | None) -> None:
        """A download failed (``error``) or was cancelled: nothing was made; say what to do."""
        self._download_timer.stop()
        self._meter.close()
        name = self.model.value
        if error is None:
            self.last_summary = RunSummary(cancelled=True)
            show_info(f"P²SAM cancelled while downloading {name}")
        else:
            log.error("P²SAM: %s", error)
            self.last_summary = RunSummary(error=str(error))
            show_error(
                f"P²SAM: model {name} is not here and could not be downloaded ({type(error).__name__}). "
                f"Put {MODELS[name].file_name} in {model_path(name).parent} by hand, or run "
                f"`napari-p2sam models download {name}` where there is internet; or choose a checkpoint file. "
                "Details are in the terminal."
            )
        self._starting = False
        self._end_of_run_controls()
        self.model.reset_choices()
        self._show_progress_text("")

    def _starting_steps(
        self, image, job, settings: Settings, model: ModelChoice, output: RunOutput | None
    ) -> Iterator[None]:
        """The steps that start a run; at each ``yield`` napari gets a turn of its event loop.

        napari takes 0.1–0.3 s to build a layer and to draw it the first
        time (software OpenGL), so each is a step of its own and napari draws
        and handles input in between. A rerun reuses its output layers; if
        it uses another model or settings, the earlier results are cleared
        first (corrected frames stay), so that no frame shows a mix.
        """
        if output is None:
            labels = add_output_labels(self.viewer, job, self._running_on)
            yield
            points = add_prompt_points(self.viewer, job, labels.name, visible=False)
            output = self._outputs[image] = RunOutput(labels, points, job.geometry)
            yield
            points.visible = True  # its first draw is napari's longest step
            yield
        made_with = (model, settings)
        if output.made_with not in (None, made_with):
            output.clear_results()
            show_info(
                f"P²SAM: the results in '{output.labels.name}' came from another model or other settings; "
                "they were cleared (corrected frames kept) and this run fills the frames again"
            )
        output.made_with = made_with
        self._output = output
        self.scores.clear_rows()
        self._dock_scores()
        yield
        self._start(job, settings, model)

    def _start(self, job, settings: Settings, model: ModelChoice) -> None:
        frames = job.frame_range
        worker = create_worker(
            self._engine.run,
            job.frames,
            job.references,
            frames,
            settings,
            model,
            cache_folder=self._cache_folder.name,
            should_stop=self._stop.is_set,
            threads=max(1, (os.cpu_count() or 2) - 1),  # leave a core to napari, so it stays smooth
            batch_size=self.batch_size.value or None,
            _start_thread=False,
        )
        worker.yielded.connect(self._frame_done)
        worker.returned.connect(self._report)
        worker.finished.connect(self._finished)
        self._worker, self._starting = worker, False
        self._frames_run = frames
        self.progress_bar.max, self.progress_bar.value = len(frames), 0
        self.progress_bar.visible = True
        self._show_progress_text(f"0 / {len(frames)} frames · loading the model, then frame {frames[0]}")
        self._download_timer.stop()
        self._meter.close()
        worker.start()

    def cancel(self, _value=None) -> None:
        """Stop within a second or two; finished frames stay in the output layer, a half-done one is dropped."""
        if self.running:
            self._stop.set()
            self._show_progress_text("stopping…")

    def _show_progress_text(self, text: str) -> None:
        self.progress_text.value = text
        self.progress_text.visible = bool(text)

    def _show_progress(self, progress) -> None:
        """Frames done of the total, the time left and the frame being worked on, in the dock."""
        frames = self._frames_run
        self.progress_bar.value = progress.done
        parts = [f"{progress.done} / {progress.total} frames"]
        if progress.eta_s is not None and progress.done < progress.total:
            parts.append(f"about {format_seconds(progress.eta_s)} left")
        if progress.done < progress.total:
            parts.append(f"now frame {frames[progress.done]}")
        if not self._stop.is_set():
            self._show_progress_text(" · ".join(parts))

    def _frame_done(self, update: FrameUpdate) -> None:
        """Queue a finished frame; it is shown at once, or with the next ones if frames come faster
        than every ``SHOW_INTERVAL_MS`` (one redraw for several frames keeps napari smooth)."""
        self._pending.append(update)
        if not self._show_timer.isActive():
            wait = SHOW_INTERVAL_MS - self._since_shown.elapsed() if self._since_shown.isValid() else 0
            self._show_timer.start(max(0, wait))

    def _show_pending(self) -> None:
        self._show_timer.stop()
        updates, self._pending = self._pending, []
        if not updates:
            return
        self._since_shown.start()
        results = [update.result for update in updates]
        output = self._output
        output.write(results, shown_frame=self.shown_frame(output))
        for result in results:
            self.scores.add(result)
        for update in updates:
            for text in update.warnings:
                show_warning(f"P²SAM: {text}")
        self._show_progress(updates[-1].progress)

    def _report(self, summary: RunSummary) -> None:
        self._show_pending()
        self.last_summary = summary
        name = self._output.labels.name
        if summary.error:
            kept = f" ({summary.done} finished frame(s) kept in '{name}')" if summary.done else ""
            show_error(f"P²SAM stopped: {summary.error}{kept}")
            self._show_progress_text(f"stopped by an error after {summary.done} / {summary.total} frames")
        elif summary.cancelled:
            show_info(f"P²SAM cancelled: {summary.done} of {summary.total} frame(s) kept in '{name}'")
            self._show_progress_text(f"cancelled: {summary.done} / {summary.total} frames kept")
        else:
            show_info(
                f"P²SAM: {summary.done} frame(s) in {format_seconds(summary.seconds)}, "
                f"{summary.encoded} encoded (the rest from the cache or painted)"
            )
            self._show_progress_text(f"done: {summary.done} frames in {format_seconds(summary.seconds)}")

    def _show_download(self) -> None:
        """While a registry model downloads, say how far it is."""
        meter = self._meter
        if meter.model is not None:
            total = f" of {meter.total / 1e6:.0f}" if meter.total else ""
            self._show_progress_text(f"downloading {meter.model}: {meter.done / 1e6:.0f}{total} MB")

    def _finished(self) -> None:
        self._show_pending()
        self._output.show_prompts()
        self._worker = None
        self._end_of_run_controls()
        self.model.reset_choices()  # a model downloaded for this run is no longer marked as a download
        self._show_corrections()

    def _end_of_run_controls(self) -> None:
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        self.progress_bar.visible = False

    def _dock_scores(self) -> None:
        window = getattr(self.viewer, "window", None)
        if not self._scores_docked and window is not None and hasattr(window, "add_dock_widget"):
            window.add_dock_widget(self.scores, name="P²SAM frame scores", area="right")
            self._scores_docked = True

    def shown_frame(self, output: RunOutput) -> int:
        """The frame of ``output`` the viewer shows now."""
        return output.geometry.frame_at(output.labels.world_to_data(self.viewer.dims.point))

    def _viewer_moved(self, _event=None) -> None:
        if self._output is not None:
            self._output.show_prompts()

    # ----- results and corrections ----------------------------------------------------------------------
    def go_to_frame(self, frame: int) -> None:
        """Move the viewer to ``frame`` of the latest run's image."""
        output = self._output
        if output is None or output.geometry.frame_axis is None:
            return
        world = output.labels.data_to_world(output.geometry.point_coordinates(frame, [[0, 0]])[0])
        axis = self.viewer.dims.ndim - output.labels.ndim + output.geometry.frame_axis
        self.viewer.dims.set_point(axis, world[output.geometry.frame_axis])

    def use_current_frame_as_reference(self, _value=None) -> None:
        """Mark the output layer's current frame (as corrected by the user) as a reference for the next run."""
        output = self._outputs.get(self.image.value) if self.image.value is not None else None
        if output is None or not output.is_shown_in(self.viewer):
            show_warning("P²SAM: run once first; then correct a frame in the output layer and mark it here")
            return
        frame = self.shown_frame(output)
        if not output.use_as_reference(frame):
            show_warning(f"P²SAM: frame {frame} of '{output.labels.name}' is empty; paint the object there first")
            return
        show_info(
            f"P²SAM: frame {frame} of '{output.labels.name}' is now a reference; the next run uses it for the "
            "frames nearest to it (nothing is encoded again)"
        )
        self._show_corrections()

    def forget_corrections(self, _value=None) -> None:
        output = self._outputs.get(self.image.value) if self.image.value is not None else None
        if output is not None:
            output.corrected.clear()
        self._show_corrections()

    def _show_corrections(self) -> None:
        output = self._outputs.get(self.image.value) if self.image.value is not None else None
        frames = sorted(output.corrected) if output is not None else []
        self.status.value = f"corrected frames used as references: {', '.join(map(str, frames))}" if frames else ""


def resolve_or_error(checkpoint: str, **options) -> tuple[ModelChoice | None, OSError | None]:
    """:func:`resolve_model` for a thread worker: (model, None), or (None, the error) for the dock to explain."""
    try:
        return resolve_model(checkpoint, **options), None
    except OSError as err:
        return None, err


def start_engine(engine: EngineProcess) -> None:
    """Start ``engine``'s process (blocks); a failure is logged here and reported again by the next run."""
    try:
        engine.connect()
    except OSError as err:
        log.warning("P²SAM: the model's process did not start: %s", err)


def in_turns(steps: Iterator[None]) -> None:
    """Run ``steps`` up to its first ``yield`` now, then on to each next one a turn of Qt's event loop later.

    A turn comes after pending draws, input and due timers. A zero-delay
    timer would not do: Qt runs it before the draws and timers that are
    already due, so consecutive steps would stall as one.
    """
    if next(steps, StopIteration) is not StopIteration:
        QTimer.singleShot(TURN_PAUSE_MS, lambda: in_turns(steps))


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min``, ``1 h 5 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:.0f} min"
