"""Fixtures shared by the napari plugin tests (imported by name into each test module)."""

from __future__ import annotations

import pytest
import torch

from napari_p2sam.worker.engine_process import EngineProcess


@pytest.fixture
def one_torch_thread():
    """One torch thread: the plugin tests' runs are tiny, and the CI machine has two shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def notifications():
    """Messages napari shows as notifications during the test, as (severity, text)."""
    from napari.utils.notifications import notification_manager

    received = []

    def keep(notification):
        received.append((str(notification.severity), notification.message))

    notification_manager.notification_ready.connect(keep)
    yield received
    notification_manager.notification_ready.disconnect(keep)


@pytest.fixture(scope="session")
def engine():
    """One model process shared by the widget tests (a widget of its own would start one each time)."""
    with EngineProcess() as process:
        yield process
