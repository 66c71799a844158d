"""PerSAM parity with the official code (``persam.py`` of ZrrSkywalker/Personalize-SAM).

Its outputs on a fixed random SAM are in tests/data/persam_parity (how they
were made: its README); the SAM and the images come from ../shared/cases.
Matching: the same points and labels, and the same mask up to float
round-off (IoU >= 0.9999; one row differs by one pixel whose logit is 4e-9).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import CASES

if not (CASES / "parity" / "tiny_sam_seed1.pth").is_file():
    pytest.skip(f"the parity SAM and images are not here ({CASES} is absent)", allow_module_level=True)

from napari_p2sam import P2SAM
from napari_p2sam.cli import main
from napari_p2sam.evaluation.datasets import persam_mask_values

DATA = Path(__file__).parent / "data" / "persam_parity"
CASE_LIST = {c["name"]: c for c in json.loads((DATA / "cases.json").read_text())}
GOLDEN = json.loads((DATA / "golden.json").read_text())
MIN_IOU = 0.9999


def read_rgb(path: Path) -> np.ndarray:
    # persam.py reads images with OpenCV converted to RGB (grayscale → 3 equal channels).
    return np.array(Image.open(path).convert("RGB"))


def golden_mask(row: dict) -> np.ndarray:
    return np.array(Image.open(DATA / row["mask_png"])) > 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.fixture(scope="module")
def predictors(parity_model):
    """One PerSAM per case; PerSeg-style cases read their mask file's channel 0, as persam.py does."""
    cache: dict[str, P2SAM] = {}

    def get(case: dict) -> P2SAM:
        if case["name"] not in cache:
            persam = P2SAM(parity_model, preset="persam")
            mask = read_rgb(CASES / case["ref_mask"])[..., 0] > 0
            file = case.get("mask_file")
            extra = {"persam_mask": persam_mask_values(DATA / file)} if file else {}
            persam.set_reference(read_rgb(CASES / case["images"][0]), mask, **extra)
            cache[case["name"]] = persam
        return cache[case["name"]]

    return get


@pytest.mark.parametrize("row", GOLDEN, ids=[f"{r['case']}-{r['target']}" for r in GOLDEN])
def test_matches_official_persam(row, predictors):
    case = CASE_LIST[row["case"]]
    result = predictors(case).segment(read_rgb(CASES / case["images"][int(row["target"])]))
    assert result.points.tolist() == row["points_xy"]
    assert result.labels.tolist() == row["point_labels"]
    assert iou(result.mask, golden_mask(row)) >= MIN_IOU


PERSEG_STYLE = [name for name, case in CASE_LIST.items() if "mask_file" in case]


def make_perseg(root: Path) -> Path:
    """A PerSeg folder of the cases with PerSeg-style masks: reference 00 with the file persam.py read, target 01."""
    for name in PERSEG_STYLE:
        case = CASE_LIST[name]
        images, annotations = root / "Images" / name, root / "Annotations" / name
        images.mkdir(parents=True)
        annotations.mkdir(parents=True)
        for index, image in enumerate(case["images"]):
            shutil.copy(CASES / image, images / f"{index:02d}.png")
        shutil.copy(DATA / case["mask_file"], annotations / "00.png")
        shutil.copy(DATA / f"masks/{name}_01.png", annotations / "01.png")  # ground truth: the golden
    return root


def test_eval_perseg_reproduces_official_persam(tmp_path):
    data, out = make_perseg(tmp_path / "data"), tmp_path / "out"
    checkpoint = CASES / "parity" / "tiny_sam_seed1.pth"
    args = ["eval", "perseg", data, "--checkpoint", checkpoint, "--out", out, "--method", "persam", "--device", "cpu"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        assert main([str(a) for a in args]) == 0, err.getvalue()
    for row in GOLDEN:
        if row["case"] in PERSEG_STYLE and row["target"] == "01":
            prediction = np.array(Image.open(out / "persam" / row["case"] / "01.png")) > 0
            assert iou(prediction, golden_mask(row)) >= MIN_IOU, row["case"]
