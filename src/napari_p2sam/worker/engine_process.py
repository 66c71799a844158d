"""The model's own process, so that napari's process never imports torch.

Why: where OpenGL is Mesa's software renderer (VNC, virtual machines,
Xvfb), napari's process already holds Mesa's LLVM; torch (through
torchvision and ``torch._dynamo``) loads triton's own LLVM, and the two in
one process crash it (docs/architecture.md). So every model step runs in a
child Python process started from the same interpreter; the two talk over a
``multiprocessing.connection`` (a local socket or pipe with a random key).

Messages are tuples; the child asks, napari's side answers:

- child → napari: ``("ready", devices)`` once; ``("read", i)`` for frame
  ``i``; ``("frame", FrameUpdate)`` (with the engine's warnings about that
  frame, e.g. a blank one); ``("done", RunSummary)`` at the end of a run.
- napari → child: ``("run", RunRequest)``; ``("frame", array)`` or
  ``("frame_error", message)`` in answer to a read; ``("stop",)``.

Models are downloaded by napari's side before a run (no torch needed);
the child only loads files. Frames stay in napari's process (a layer's numpy or lazy dask data): the
child asks for each one when it needs it, so a video opened lazily is never
read whole. A stop is honoured between frames and objects; when the child
does not end its run within :data:`STOP_GRACE_S` (a long encoder call), it
is ended and a new one starts with the next run. Finished frames are kept
either way.
"""

from __future__ import annotations

import os
import queue
import secrets
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from multiprocessing.connection import Client, Connection, Listener

import numpy as np

from ..engine.settings import Settings
from ..engine.sources import Pixels
from ..engine.stack_job import prepare_stack
from .messages import FrameUpdate, RunSummary
from .model_choice import ModelChoice

STARTUP_TIMEOUT_S = 300.0
"""The child imports torch and segment-anything before it is ready (seconds, more on a cold disk)."""
STOP_GRACE_S = 1.0
"""How long a stopped run may take to end on its own before its process is ended."""
POLL_S = 0.05


class EngineProcessError(OSError):
    """The model's process could not start or ended unexpectedly."""


@dataclass(frozen=True)
class FramesInfo:
    """What the child needs to know of the frames napari's process serves: as in a FrameSource."""

    name: str
    count: int
    frame_shape: tuple[int, int]
    channels: int
    dtype: str

    @classmethod
    def of(cls, source) -> FramesInfo:
        return cls(source.name, len(source), tuple(source.frame_shape), source.channels, np.dtype(source.dtype).str)


@dataclass(frozen=True)
class RunRequest:
    """One run, checked by napari's side: frames (served on request), the painted frames
    ``{frame: (H, W) labels}``, what to produce, how frames become RGB, the settings and model.

    ``cache_folder``: the embedding cache's folder (None: no cache).
    ``threads``: torch's CPU threads in the child. ``batch_size``: frames per
    encoder call (None: the engine chooses).
    """

    frames: FramesInfo
    painted: dict[int, np.ndarray]
    frame_range: range
    pixels: Pixels
    settings: Settings
    model: ModelChoice
    cache_folder: str | None
    threads: int | None
    batch_size: int | None = None


class EngineProcess:
    """napari's handle on the model's process: :meth:`connect` (started on first use), :meth:`run`, :meth:`close`.

    One run at a time. ``devices`` lists what the child's torch can use,
    once it is ready. Usable as a context manager (closed at the end).
    """

    def __init__(self) -> None:
        self.devices: list[str] | None = None
        self._process: subprocess.Popen | None = None
        self._connection: Connection | None = None
        self._start_lock = threading.Lock()
        self._send_lock = threading.Lock()

    def __enter__(self) -> EngineProcess:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None and self._connection is not None

    def connect(self, should_stop: Callable[[], bool] | None = None) -> Connection | None:
        """Start the child unless it runs, and wait until it is ready (blocks: call it off the GUI thread).

        Returns None if ``should_stop`` turned true while waiting (the child is ended).
        """
        with self._start_lock:
            if self.alive:
                return self._connection
            self._shut_down()
            authkey = secrets.token_bytes(32)
            process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self._process = process
            try:
                process.stdin.write(authkey.hex().encode() + b"\n")
                process.stdin.close()
                address = process.stdout.readline().decode().strip()
                process.stdout.close()
                if not address:
                    raise EngineProcessError(self._ended_message("could not start"))
                connection = Client(address, authkey=authkey)
                deadline = time.monotonic() + STARTUP_TIMEOUT_S
                while not connection.poll(POLL_S):
                    if should_stop is not None and should_stop():
                        connection.close()
                        self._shut_down()
                        return None
                    if process.poll() is not None or time.monotonic() > deadline:
                        connection.close()
                        raise EngineProcessError(self._ended_message("could not start"))
                _ready, self.devices = connection.recv()
            except (OSError, EOFError) as err:
                self._shut_down()
                if isinstance(err, EngineProcessError):
                    raise
                raise EngineProcessError(f"the model's process could not start ({err})") from None
            self._connection = connection
            return connection

    def run(
        self,
        frames,
        references: Mapping[int, np.ndarray],
        frame_range: range,
        settings: Settings,
        model: ModelChoice,
        *,
        cache_folder: str | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[FrameUpdate]:
        """Run in the child; yield a :class:`FrameUpdate` per finished frame, return the :class:`RunSummary`.

        ``frames``: a FrameSource in this process, read when the child asks.
        The inputs are checked here (:func:`~napari_p2sam.engine.stack_job.prepare_stack`,
        off napari's event loop: non-uint8 stacks are sampled for their
        intensity limits), then the child runs them as they are. Never
        raises for a bad input or what goes wrong in the child: the summary's
        ``error`` says it, and every frame yielded before stays valid.
        """
        summary = RunSummary(total=len(frame_range))
        started = time.perf_counter()
        try:
            job = prepare_stack(frames, references, frame_range=frame_range, max_objects=None)
            connection = self.connect(should_stop)
        except (ValueError, OSError) as err:
            summary.error = str(err)
            return summary
        if connection is None or (should_stop is not None and should_stop()):
            summary.cancelled = True
            return summary
        request = RunRequest(
            FramesInfo.of(frames),
            job.painted,
            job.frame_range,
            job.pixels,
            settings,
            model,
            cache_folder,
            threads,
            batch_size,
        )
        ended = False
        stop_deadline = None
        try:
            self._send(("run", request))
            while True:
                if stop_deadline is None and should_stop is not None and should_stop():
                    self._send(("stop",))
                    stop_deadline = time.monotonic() + STOP_GRACE_S
                if stop_deadline is not None and time.monotonic() > stop_deadline:
                    summary.cancelled = ended = True
                    return summary  # the child is still busy with a frame: ended below, restarted next run
                if not connection.poll(POLL_S):
                    if self._process.poll() is not None:
                        raise EOFError
                    continue
                kind, *payload = connection.recv()
                if kind == "read":
                    self._send(read_answer(frames, payload[0]))
                elif kind == "frame":
                    summary.done += 1
                    yield payload[0]
                elif kind == "done":
                    ended = True
                    child_summary: RunSummary = payload[0]
                    child_summary.seconds = time.perf_counter() - started
                    return child_summary
        except (EOFError, OSError):
            ended = True
            summary.error = self._ended_message(f"ended unexpectedly after {summary.done} frame(s), which are kept")
            return summary
        finally:
            summary.seconds = time.perf_counter() - started
            if not ended or summary.cancelled or summary.error:
                self.close()  # mid-run or gone: start afresh next time

    def close(self) -> None:
        """End the child (its model and memory go with it); the next :meth:`connect` starts a new one."""
        with self._start_lock:
            self._shut_down()

    def _shut_down(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._connection = None

    def _send(self, message: tuple) -> None:
        with self._send_lock:
            self._connection.send(message)

    def _ended_message(self, what: str) -> str:
        code = self._process.poll() if self._process is not None else None
        exit_code = f" (exit code {code})" if code is not None else ""
        return f"the model's process {what}{exit_code}; its error is in the terminal. Run again to restart it"


def read_answer(frames, index: int) -> tuple:
    """The answer to the child's ``("read", index)``: the frame, or why it could not be read."""
    try:
        return ("frame", np.asarray(frames.read(index)))
    except Exception as err:  # any reader's failure becomes the run's message
        return ("frame_error", f"{frames.name}: frame {index} could not be read ({type(err).__name__}: {err})")


# ----- the child ----------------------------------------------------------------------------------------


class Inbox:
    """Messages from napari's process, read by a thread, so that a stop arrives while the model works."""

    def __init__(self, connection: Connection) -> None:
        self.stop = threading.Event()
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: Connection) -> None:
        try:
            while True:
                message = connection.recv()
                if message[0] == "stop":
                    self.stop.set()
                    continue
                if message[0] == "run":
                    self.stop.clear()
                self._queue.put(message)
        except (EOFError, OSError):
            self.stop.set()
            self._queue.put(None)

    def next(self) -> tuple:
        """The next run request or frame answer; napari's process gone: the child exits."""
        message = self._queue.get()
        if message is None:
            raise SystemExit(0)
        return message


def remote_frames(info: FramesInfo, send: Callable[[tuple], None], inbox: Inbox):
    """A FrameSource whose frames napari's process sends on request."""
    from ..engine.sources import FrameSource, SourceError

    class RemoteFrames(FrameSource):
        name, frame_shape, channels, dtype = info.name, info.frame_shape, info.channels, np.dtype(info.dtype)

        def __len__(self) -> int:
            return info.count

        def read(self, index: int) -> np.ndarray:
            send(("read", self.check_index(index)))
            kind, payload = inbox.next()
            if kind == "frame_error":
                raise SourceError(payload)
            return payload

    return RemoteFrames()


def available_devices() -> list[str]:
    """``auto`` and every device torch can use here."""
    import torch

    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def ours(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    """The texts of the warnings napari-p2sam raised (for the user); others go to the terminal as usual."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    texts = []
    for warning in caught:
        if os.path.abspath(warning.filename).startswith(package):
            texts.append(str(warning.message))
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return tuple(texts)


def serve(connection: Connection) -> None:
    """The child's loop: one run after the other, until napari's process goes."""
    from ..engine.cache import EmbeddingCache
    from ..engine.propagate import ReferenceMemo
    from ..engine.stack_job import StackJob
    from .run import LoadedModels, run_reporting_errors

    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        with send_lock:
            connection.send(message)

    inbox = Inbox(connection)
    send(("ready", available_devices()))
    models, caches, memo = LoadedModels(), {}, ReferenceMemo()  # kept for the next runs
    while True:
        _run, request = inbox.next()
        folder = request.cache_folder
        cache = caches.setdefault(folder, EmbeddingCache(folder)) if folder else None
        job = StackJob(remote_frames(request.frames, send, inbox), request.painted, request.frame_range, request.pixels)
        run = run_reporting_errors(
            job,
            request.settings,
            request.model,
            models=models,
            threads=request.threads,
            batch_size=request.batch_size,
            cache=cache,
            memo=memo,
            should_stop=inbox.stop.is_set,
        )
        while True:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)  # the engine's warnings are for the user: pass them on
                try:
                    update = next(run)
                except StopIteration as end:
                    send(("done", end.value))
                    break
            send(("frame", replace(update, warnings=ours(caught))))


def main() -> None:
    """Entry of the child: read the key, listen, tell napari's side where, then serve."""
    from ..models.allocator import keep_freed_memory

    keep_freed_memory()
    authkey = bytes.fromhex(sys.stdin.readline().strip())
    listener = Listener(authkey=authkey)
    print(listener.address, flush=True)
    os.dup2(2, 1)  # from now on, anything printed goes to the terminal, not into the answer pipe
    connection = listener.accept()
    listener.close()
    serve(connection)


if __name__ == "__main__":
    main()
