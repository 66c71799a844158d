"""The objects of a reference: each non-zero label value of the painted frames is one object.

A reference that cannot be used raises :class:`ReferenceInputError` (no torch needed to catch it).

A "mask" with hundreds of label values is most often an image given by
mistake (a photo has up to 255 grey levels); segmenting each value as an
object would take minutes to hours. So runs with more than
:data:`MAX_OBJECTS` objects stop before any work and say so, unless the
caller raises the limit (the CLI's ``--max-objects``, a confirmation in the
widget, ``max_objects=`` in Python).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

MAX_OBJECTS = 50


class ReferenceInputError(ValueError):
    """A reference mask that cannot be used, with what to do about it."""


class TooManyObjectsError(ValueError):
    """More objects than the limit; ``count`` holds how many."""

    def __init__(self, message: str, count: int) -> None:
        super().__init__(message)
        self.count = count


def painted_only(frames: Iterable[tuple[int, np.ndarray]]) -> dict[int, np.ndarray]:
    """``{frame: labels}`` of the ``(frame, labels)`` pairs that are painted: any non-zero pixel."""
    return {int(index): labels for index, labels in frames if labels.any()}


def object_labels(references: Mapping[int, np.ndarray]) -> list[int]:
    """The sorted non-zero label values of ``{frame: (H, W) labels}``."""
    values: set[int] = set()
    for labels in references.values():
        values.update(int(v) for v in np.unique(labels) if v != 0)
    return sorted(values)


def check_object_count(references: Mapping[int, np.ndarray], limit: int | None = MAX_OBJECTS) -> list[int]:
    """The object labels; raises :class:`TooManyObjectsError` if there are more than ``limit`` (None: no limit)."""
    labels = object_labels(references)
    if limit is not None and len(labels) > limit:
        raise TooManyObjectsError(
            f"the reference holds {len(labels)} objects (label values {labels[0]}..{labels[-1]}), more than "
            f"{limit}: is it an image rather than a mask? Each label value is segmented as its own object; "
            "give a labels mask, or raise the limit to go on",
            len(labels),
        )
    return labels
