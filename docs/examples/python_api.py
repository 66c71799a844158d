"""Segment the CT follow-up scan from the first visit's painted tumour (Python API).

    python docs/examples/python_api.py CHECKPOINT [CT_FOLDER]

CHECKPOINT: a SAM checkpoint (e.g. sam_vit_b_01ec64.pth). CT_FOLDER holds
ref_image.png, ref_mask.png and test_image.png (default: the CT pair of the
project's shared test cases).
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from napari_p2sam import P2SAM

checkpoint = sys.argv[1]
folder = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[3] / "shared/cases/lung-ct"

reference_image = np.array(Image.open(folder / "ref_image.png"))
reference_mask = np.array(Image.open(folder / "ref_mask.png"))  # non-zero = tumour
target_image = np.array(Image.open(folder / "test_image.png"))

p2sam = P2SAM(checkpoint, preset="ct-follow-up", device="cpu")  # medical variant, parts 1..3
p2sam.set_reference(reference_image, reference_mask)  # encoded once, parts clustered once
result = p2sam.segment(target_image)

print(f"chosen k = {result.k}, retrieval score = {result.score:.2f}")
for (x, y), label in zip(result.points, result.labels):
    print(f"  {'positive' if label else 'negative'} point at x={x}, y={y}")
print(f"mask: {int(result.mask.sum())} pixels of {result.mask.size}")
for candidate in result.candidates:
    print(f"  tried k={candidate.k}: score {candidate.score:.2f}")
