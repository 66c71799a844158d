"""napari-p2sam: one-shot, part-aware personalized Segment Anything (P²SAM)."""

from .engine.pixels import ImageInputError
from .engine.predictor import P2SAM
from .engine.reference import ReferenceError
from .engine.segment import Candidate, Segmentation
from .engine.settings import PRESETS, Settings, preset
from .models.loading import CheckpointError, SamModel, load_model
from .scripting import segment_layers, segment_stack

__version__ = "0.1.0"

__all__ = [
    "P2SAM",
    "PRESETS",
    "Candidate",
    "CheckpointError",
    "ImageInputError",
    "ReferenceError",
    "SamModel",
    "Segmentation",
    "Settings",
    "load_model",
    "preset",
    "segment_layers",
    "segment_stack",
]
