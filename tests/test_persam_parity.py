"""PerSAM parity with the official code (``persam.py`` of ZrrSkywalker/Personalize-SAM).

Its outputs on a fixed random SAM are in tests/data/persam_parity (how they
were made: its README). The SAM is rebuilt from its seed (``parity_checkpoint``);
the coins images are in tests/data, the CT images only in ../shared/cases
(their rows skip, saying so, without it). The PerSeg-style masks are made here
from the 0/255 masks, as PerSeg stores its annotations.
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

from napari_p2sam import P2SAM
from napari_p2sam.cli import main
from napari_p2sam.evaluation.datasets import persam_mask_values

from .conftest import case_file

DATA = Path(__file__).parent / "data" / "persam_parity"
MIN_IOU = 0.9999
PERSEG_OBJECT_COLOUR = (128, 0, 0)
"""PerSeg's annotations are palette PNGs with the object in this colour; persam.py reads its channel 0."""


def read_json(name: str):
    return json.loads((DATA / name).read_text())


def pytest_generate_tests(metafunc):
    # One test per golden row, read at collection (not import) time.
    if "row" in metafunc.fixturenames:
        golden = read_json("golden.json")
        metafunc.parametrize("row", golden, ids=[f"{r['case']}-{r['target']}" for r in golden])


@pytest.fixture(scope="module")
def cases() -> dict[str, dict]:
    return {case["name"]: case for case in read_json("cases.json")}


def shared_file(relative: str) -> Path:
    """A case file named relative to shared/cases, from tests/data or ../shared (see ``case_file``)."""
    folder, _, rest = relative.partition("/")
    return case_file(folder, rest)


def write_perseg_mask(mask: np.ndarray, path: Path) -> Path:
    """``mask`` ``(H, W)`` bool saved as PerSeg saves its annotations: a palette PNG, object (128, 0, 0)."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, *PERSEG_OBJECT_COLOUR])
    image.save(path)
    return path


def read_rgb(path: Path) -> np.ndarray:
    # persam.py reads images with OpenCV converted to RGB (grayscale → 3 equal channels).
    return np.array(Image.open(path).convert("RGB"))


def golden_mask(row: dict) -> np.ndarray:
    return np.array(Image.open(DATA / row["mask_png"])) > 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.fixture(scope="module")
def predictors(parity_model, tmp_path_factory):
    """One PerSAM per case; PerSeg-style cases read their mask file's channel 0, as persam.py does."""
    cache: dict[str, P2SAM] = {}

    def get(case: dict) -> P2SAM:
        if case["name"] not in cache:
            persam = P2SAM(parity_model, preset="persam")
            mask = read_rgb(shared_file(case["ref_mask"]))[..., 0] > 0
            extra = {}
            if case.get("perseg_style"):
                file = write_perseg_mask(mask, tmp_path_factory.mktemp("perseg") / "00.png")
                extra = {"persam_mask": persam_mask_values(file)}
            persam.set_reference(read_rgb(shared_file(case["images"][0])), mask, **extra)
            cache[case["name"]] = persam
        return cache[case["name"]]

    return get


def test_matches_official_persam(row, cases, predictors):
    case = cases[row["case"]]
    result = predictors(case).segment(read_rgb(shared_file(case["images"][int(row["target"])])))
    assert result.points.tolist() == row["points_xy"]
    assert result.labels.tolist() == row["point_labels"]
    assert iou(result.mask, golden_mask(row)) >= MIN_IOU


def make_perseg(root: Path, cases: list[dict]) -> Path:
    """A PerSeg folder of ``cases``: reference 00 with a PerSeg-style mask, target 01 (its ground truth: the golden)."""
    for case in cases:
        name = case["name"]
        images, annotations = root / "Images" / name, root / "Annotations" / name
        images.mkdir(parents=True)
        annotations.mkdir(parents=True)
        for index, image in enumerate(case["images"]):
            shutil.copy(shared_file(image), images / f"{index:02d}.png")
        write_perseg_mask(read_rgb(shared_file(case["ref_mask"]))[..., 0] > 0, annotations / "00.png")
        shutil.copy(DATA / f"masks/{name}_01.png", annotations / "01.png")
    return root


def test_eval_perseg_reproduces_official_persam(tmp_path, cases, parity_checkpoint):
    perseg_style = [case for case in cases.values() if case.get("perseg_style")]
    data, out = make_perseg(tmp_path / "data", perseg_style), tmp_path / "out"
    args = [
        "eval",
        "perseg",
        data,
        "--checkpoint",
        parity_checkpoint,
        "--out",
        out,
        "--method",
        "persam",
        "--device",
        "cpu",
    ]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        assert main([str(a) for a in args]) == 0, err.getvalue()
    names = {case["name"] for case in perseg_style}
    for row in read_json("golden.json"):
        if row["case"] in names and row["target"] == "01":
            prediction = np.array(Image.open(out / "persam" / row["case"] / "01.png")) > 0
            assert iou(prediction, golden_mask(row)) >= MIN_IOU, row["case"]
