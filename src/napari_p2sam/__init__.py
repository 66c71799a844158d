"""napari-p2sam: one-shot, part-aware personalized Segment Anything (P²SAM).

The public names load on first use (PEP 562), so light entry points such as
``napari-p2sam models`` and the napari manifest do not import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ImageInputError": "engine.pixels",
    "P2SAM": "engine.predictor",
    "ReferenceInputError": "engine.objects",
    "TooManyObjectsError": "engine.objects",
    "Candidate": "engine.results",
    "Segmentation": "engine.results",
    "PRESETS": "engine.settings",
    "Settings": "engine.settings",
    "preset": "engine.settings",
    "CheckpointError": "models.loading",
    "SamModel": "models.loading",
    "load_model": "models.loading",
    "segment_layers": "scripting",
    "segment_stack": "scripting",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
