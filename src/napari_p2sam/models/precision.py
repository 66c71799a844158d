"""How the image encoder runs: its number format (``fp32``, ``bf16``, ``fp16``) and whether it is compiled.

fp32 is the default and the reference. bf16 and fp16 run the image encoder
under ``torch.autocast``; its output is turned back into float32, so the
decoder, the retrieval and the cache always see float32. Where each runs:

- CUDA GPU: fp16; bf16 on compute capability 8.0 or newer (Ampere+).
- CPU: bf16 only, and only with the AMX-BF16 or AVX512-BF16 instructions
  (read from ``/proc/cpuinfo``); without them bf16 is emulated and slower
  than fp32. fp16 on a CPU is refused.
- Apple's MPS: fp32 only.

``compile`` (``torch.compile`` of the encoder) needs a C++ compiler on the
CPU and Triton on a CUDA GPU; it is refused on MPS.

No torch at import: napari's process reads :data:`PRECISIONS` for the widget;
the checks that need torch run where the model loads.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..io.errors import for_settings

PRECISIONS = ("fp32", "bf16", "fp16")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""``/proc/cpuinfo`` flags of the instructions that make bf16 faster than fp32 on a CPU."""
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str] | None:
    """The CPU's feature flags from the first ``flags`` line of ``cpuinfo``; None where there is none (macOS, Windows)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return frozenset(value.split())
    return None


def check_precision(precision: str, device_type: str, flags: Iterable[str] | None = None) -> None:
    """Raise ``ValueError`` saying why ``precision`` cannot run on ``device_type`` (``cpu``, ``cuda``, ``mps``).

    ``flags``: the CPU's feature flags (default: :func:`cpu_flags`), read for bf16 on the CPU only.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return
    if device_type == "cpu":
        check_cpu_precision(precision, cpu_flags() if flags is None else frozenset(flags))
    elif device_type == "cuda":
        check_cuda_precision(precision)
    else:
        raise ValueError(f"precision {precision} is not offered on {device_type}; use fp32 there")


def check_cpu_precision(precision: str, flags: frozenset[str] | None) -> None:
    """bf16 with AMX-BF16 or AVX512-BF16 (``flags``: the CPU's, None if unknown); never fp16."""
    if precision == "fp16":
        raise ValueError(
            "precision fp16 runs only on a CUDA GPU; on the CPU use bf16 (on a CPU with AMX or AVX512-BF16) or fp32"
        )
    if flags is None:
        raise ValueError(
            "precision bf16 on the CPU needs the AMX-BF16 or AVX512-BF16 instructions, and this system does not "
            "say whether its CPU has them (no /proc/cpuinfo); use fp32"
        )
    if not flags.intersection(CPU_BF16_FLAGS):
        raise ValueError(
            "precision bf16 on this CPU would be slower than fp32: it has neither AMX-BF16 nor AVX512-BF16 "
            f"(CPU flags {' / '.join(CPU_BF16_FLAGS)}); use fp32"
        )


def check_cuda_precision(precision: str) -> None:
    """bf16 needs a GPU of compute capability 8.0 or newer; fp16 runs on any."""
    import torch

    if precision == "bf16" and torch.cuda.get_device_capability() < (8, 0):
        raise ValueError(
            f"precision bf16 needs a GPU of compute capability 8.0 or newer (Ampere); "
            f"{torch.cuda.get_device_name()} is not: use fp16 or fp32"
        )


def check_compile(device_type: str) -> None:
    """Raise ``ValueError`` saying why ``torch.compile`` of the encoder cannot work on ``device_type``."""
    if device_type == "cpu":
        compilers = (os.environ.get("CXX"), "g++", "clang++")
        if not any(shutil.which(c) for c in compilers if c):
            raise for_settings(
                ValueError("compiling the encoder on the CPU needs a C++ compiler (g++ or clang++) and none was found"),
                "compile",
            )
    elif device_type == "cuda":
        if importlib.util.find_spec("triton") is None:
            raise for_settings(
                ValueError(
                    "compiling the encoder on a CUDA GPU needs Triton (pip install triton), which is not installed"
                ),
                "compile",
            )
    else:
        raise for_settings(ValueError(f"compiling the encoder works on cpu and cuda, not on {device_type}"), "compile")
