"""Let the process reuse freed tensor memory on glibc Linux (CPU speed).

PyTorch's CPU tensors come from ``malloc``. By default glibc serves blocks
above its mmap threshold with fresh ``mmap`` calls and hands freed memory
at the top of the heap back to the system above 128 KiB, so each of the
decoder's 20 MB temporaries (5 candidates × 4,096 image tokens × 256
channels) is page-faulted and zeroed again on every call. Raising both
thresholds keeps that memory for the next call. Measured on this project's
2-core CPU, vit_b, in one process: decoder cascade 0.83 → 0.59 s, image
encoder 11.5 → 10.2 s (docs/benchmarks.md). The price: up to
``TRIM_THRESHOLD`` of freed memory stays with the process.

Left alone off glibc, and when the user tunes malloc (``MALLOC_*``
variables, ``GLIBC_TUNABLES``) or sets ``NAPARI_P2SAM_DEFAULT_MALLOC``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

MMAP_THRESHOLD = 32 * 2**20
"""Blocks up to this size come from the heap (glibc's ceiling for the setting)."""
TRIM_THRESHOLD = 512 * 2**20
"""Freed memory the process keeps before returning heap to the system."""
OPT_OUT = "NAPARI_P2SAM_DEFAULT_MALLOC"
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES", OPT_OUT)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds, once per process; True if they are raised."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
