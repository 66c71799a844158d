"""P²SAM's options and the authors' presets (docs/algorithm.md §7)."""

from __future__ import annotations

from dataclasses import dataclass, replace

METHODS = ("p2sam", "persam")
VARIANTS = ("natural", "medical")
RETRIEVAL_METHODS = ("exact", "sampled")


@dataclass(frozen=True)
class Settings:
    """How to segment a target.

    ``method``: ``"p2sam"`` (part-aware prompts + retrieval) or ``"persam"``
    (k = 1, no retrieval; natural variant, for comparison).
    ``variant``: ``"natural"`` (argmin negative point, PerSAM's guidance,
    multimask refinement) or ``"medical"`` (background-part negative points,
    no guidance, single-mask refinement).
    ``parts``: inclusive range of part counts k tried.
    ``background_parts``: inclusive range of background part counts n
    (medical variant; (0, 0) = no negative point).
    ``retrieval``: ``"exact"`` EMD or ``"sampled"`` (exact EMD on at most
    ``retrieval_patches`` patches per side).
    ``weighted_retrieval``: weight target patches by their sigmoid logits.
    """

    method: str = "p2sam"
    variant: str = "natural"
    parts: tuple[int, int] = (1, 5)
    background_parts: tuple[int, int] = (1, 1)
    retrieval: str = "exact"
    retrieval_patches: int = 512
    weighted_retrieval: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.retrieval not in RETRIEVAL_METHODS:
            raise ValueError(f"retrieval must be one of {RETRIEVAL_METHODS}, got {self.retrieval!r}")
        lo, hi = self.parts
        if not 1 <= lo <= hi:
            raise ValueError(f"parts must be a range MIN MAX with 1 <= MIN <= MAX, got {self.parts}")
        lo, hi = self.background_parts
        if not 0 <= lo <= hi:
            raise ValueError(
                f"background_parts must be a range MIN MAX with 0 <= MIN <= MAX, got {self.background_parts}"
            )
        if self.retrieval_patches < 2:
            raise ValueError("retrieval_patches must be at least 2")

    @property
    def part_range(self) -> tuple[int, int]:
        """The k range actually tried (PerSAM: k = 1 only)."""
        return (1, 1) if self.method == "persam" else self.parts

    @property
    def uses_background_parts(self) -> bool:
        return self.variant == "medical" and self.background_parts[1] > 0


PRESETS: dict[str, Settings] = {
    "photos": Settings(variant="natural", parts=(1, 5)),
    "endoscopy-video": Settings(variant="medical", parts=(1, 5), background_parts=(1, 1)),
    "ct-follow-up": Settings(variant="medical", parts=(1, 3), background_parts=(1, 1)),
    "persam": Settings(method="persam", variant="natural"),
}
"""PerSeg photos, CVC-ClinicDB colonoscopy video, 4D-Lung CT, and PerSAM for comparison."""


def preset(name: str, **changes) -> Settings:
    """A named preset, optionally with some fields changed."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **changes)


def chosen_settings(settings: Settings | None = None, preset_name: str | None = None) -> Settings:
    """``settings``, or the preset named ``preset_name``, or the default :class:`Settings`; not both given."""
    if settings is not None and preset_name is not None:
        raise ValueError("give either settings or preset, not both")
    return preset(preset_name) if preset_name else (settings or Settings())
