"""The CPU allocator setting: freed tensor memory stays with the process, unless the user opts out."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)

# Resident memory kept after a 64 MB array is freed (the allocator reuses it), in MB.
SCRIPT = """
import numpy as np
from napari_p2sam.models.allocator import keep_freed_memory

def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

applied = keep_freed_memory()
chunks = [np.ones(2**20, dtype=np.float32) for _ in range(16)]  # 16 blocks of 4 MB, heap or mmap
before = resident_mb() - 64
del chunks
print(applied, round(resident_mb() - before))
"""


def run(env: dict[str, str]) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, env={**os.environ, **env}
    )
    applied, kept = done.stdout.split()
    return applied, int(kept)


def test_freed_tensor_memory_is_kept_for_reuse():
    applied, kept = run({})
    assert applied == "True"
    assert kept >= 48  # the 64 MB stayed mapped, ready for the next call


def test_the_user_can_keep_glibcs_defaults():
    applied, kept = run({"NAPARI_P2SAM_DEFAULT_MALLOC": "1"})
    assert applied == "False"
    assert kept <= 16  # each 4 MB block was mmapped and returned on free


def test_a_users_own_malloc_tuning_is_left_alone():
    applied, _ = run({"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert applied == "False"


def applied_after(code: str) -> str:
    """Whether the setting is on after ``code`` runs in a fresh process ("None": nobody asked for it)."""
    script = f"{code}\nfrom napari_p2sam.models import allocator\nprint(allocator._applied)"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()[-1]


def test_loading_a_model_leaves_the_process_allocator_alone(tiny_checkpoint):
    assert (
        applied_after(f"from napari_p2sam import load_model; load_model({str(tiny_checkpoint)!r}, device='cpu')")
        == "None"
    )


def test_the_command_line_turns_it_on_at_start():
    assert applied_after("from napari_p2sam.cli import main; main(['models', 'path', 'vit_b'])") == "True"
