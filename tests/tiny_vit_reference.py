"""Seeded weights and inputs shared by the TinyViT parity test and the script that made its reference.

``tests/data/mobile_sam_vit_t_reference_output.npy`` is MobileSAM's own
TinyViT (``mobile_sam.build_sam.build_sam_vit_t``, repository
ChaoningZhang/MobileSAM at commit 34bbbfd) run on :func:`seeded_input` with
the weights of :func:`seeded_state`, sampled by :func:`sample`.
``tests/data/mobile_sam_vit_t_shapes.json`` is that model's state-dict keys
and shapes, the layout of ``mobile_sam.pt``.
"""

from __future__ import annotations

import torch


def seeded_state(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of the given shapes, the same on every machine.

    Batch-norm variances are positive and scales near 1, so activations stay
    in a normal range through all stages.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key in sorted(shapes):
        shape = shapes[key]
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif key.endswith(("bn.weight", "norm.weight", "neck.1.weight", "neck.3.weight")):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=generator)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    return state


def seeded_input(seed: int = 0) -> torch.Tensor:
    """A normalised-looking image batch ``(1, 3, 1024, 1024)``."""
    return torch.randn((1, 3, 1024, 1024), generator=torch.Generator().manual_seed(seed))


def sample(features: torch.Tensor) -> torch.Tensor:
    """Every 4th channel at every 8th row and column of ``(1, 256, 64, 64)``: ``(64, 8, 8)``."""
    return features[0, ::4, ::8, ::8].detach().float().contiguous()
