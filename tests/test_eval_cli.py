"""``napari-p2sam eval`` end to end on tiny synthetic datasets with a small random SAM (256-px input).

Scores are recomputed here from the saved prediction PNGs and the ground truth
with plain numpy, so the printed and written numbers are checked against the
published formulas, not against themselves.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import warnings
from pathlib import Path
from statistics import fmean

import numpy as np
import pytest
import tifffile
from PIL import Image
from segment_anything.modeling import ImageEncoderViT

from napari_p2sam.cli import main
from napari_p2sam.engine.pixels import BlankImageWarning

from .evaldata import make_cvc, make_folder, make_perseg, write_png


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def binary(path: Path) -> np.ndarray:
    array = np.array(Image.open(path)) if path.suffix == ".png" else tifffile.imread(path)
    return array > 0


def counts(prediction: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """(intersection, union) pixels."""
    return int((prediction & truth).sum()), int((prediction | truth).sum())


# ---------------------------------------------------------------- PerSeg


@pytest.fixture(scope="module")
def perseg_run(tmp_path_factory, small_checkpoint):
    """One run with two methods, counting image-encoder passes."""
    root = tmp_path_factory.mktemp("perseg")
    data = make_perseg(root / "data", {"dog": 3, "cat": 3})
    out = root / "out"
    calls = []
    original = ImageEncoderViT.forward

    def counted(self, x):
        calls.append(x.shape)
        return original(self, x)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ImageEncoderViT, "forward", counted)
        code, stdout, stderr = run_cli(
            [
                "eval",
                "perseg",
                data,
                "--checkpoint",
                small_checkpoint,
                "--out",
                out,
                "--method",
                "p2sam",
                "persam",
                "--device",
                "cpu",
            ]
        )
    assert code == 0, stderr
    return data, out, stdout, calls


def test_two_methods_encode_each_image_once(perseg_run):
    _, _, _, calls = perseg_run
    assert len(calls) == 6  # 2 objects × (reference + 2 test images); 12 if each method encoded its own


def test_perseg_scores_are_pooled_iou_per_object_reference_excluded(perseg_run):
    data, out, stdout, _ = perseg_run
    summary = {(r["object"], r["method"], r["metric"]): float(r["percent"]) for r in read_csv(out / "summary.csv")}
    for method in ("p2sam", "persam"):
        per_object = {}
        for obj in ("cat", "dog"):
            saved = sorted(p.name for p in (out / method / obj).iterdir())
            assert saved == ["01.png", "02.png"]  # the reference 00 is not scored
            pairs = [
                counts(binary(out / method / obj / name), binary(data / "Annotations" / obj / name)) for name in saved
            ]
            per_object[obj] = 100 * sum(i for i, _ in pairs) / sum(u for _, u in pairs)
            assert summary[(obj, method, "IoU")] == pytest.approx(per_object[obj], abs=0.006)
        assert summary[("all", method, "mIoU")] == pytest.approx(fmean(per_object.values()), abs=0.006)
    last = stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"mIoU: (\d+\.\d\d) \(p2sam\)  (\d+\.\d\d) \(persam\)", last)
    assert match, last
    assert float(match.group(1)) == summary[("all", "p2sam", "mIoU")]
    assert re.search(r"^cat\s+\d+\.\d\d\s+\d+\.\d\d$", stdout, re.M)


def test_perseg_frames_csv_and_plot(perseg_run):
    _, out, stdout, _ = perseg_run
    rows = read_csv(out / "frames.csv")
    assert [(r["sequence"], r["frame"], r["method"]) for r in rows] == [
        (o, f, m) for o in ("cat", "dog") for f in ("01", "02") for m in ("p2sam", "persam")
    ]
    for r in rows:
        i, u = int(r["intersection"]), int(r["union"])
        assert float(r["iou_percent"]) == pytest.approx(100 * i / u, abs=0.006)
        assert int(r["prediction_pixels"]) + int(r["truth_pixels"]) - i == u
    assert all(r["retrieval_distance"] == "nan" for r in rows if r["method"] == "persam")
    with Image.open(out / "scores.png") as plot:
        assert plot.format == "PNG" and plot.width > 400
    assert "seconds per image (median): encoder" in stdout


# ---------------------------------------------------------------- CVC-ClinicDB


@pytest.fixture(scope="module")
def cvc_data(tmp_path_factory):
    return make_cvc(tmp_path_factory.mktemp("cvc") / "CVC-ClinicDB")


def test_cvc_end_to_end_video_and_image_dice(cvc_data, small_checkpoint, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        ["eval", "cvc", cvc_data, "--videos", "4", "10", "--checkpoint", small_checkpoint, "--out", out]
    )
    assert code == 0, stderr
    rows = read_csv(out / "frames.csv")
    # video 4 = frames 67-78 (files 68..78), video 10 = frames 199-205 (files 200..205); first three not scored
    assert [(r["sequence"], r["frame"]) for r in rows] == [("video_04", str(n)) for n in range(71, 79)] + [
        ("video_10", str(n)) for n in range(203, 206)
    ]
    per_video: dict[str, list[float]] = {}
    for r in rows:
        prediction = binary(out / "p2sam" / r["sequence"] / f"{r['frame']}.png")
        truth = binary(cvc_data / "Ground Truth" / f"{r['frame']}.tif")
        tp = (prediction & truth).sum()
        per_video.setdefault(r["sequence"], []).append(2 * tp / (prediction.sum() + truth.sum()))
    video_dice = 100 * fmean(fmean(v) for v in per_video.values())
    image_dice = 100 * fmean(d for v in per_video.values() for d in v)
    lines = stdout.strip().splitlines()
    assert lines[-2] == f"Video Dice: {video_dice:.2f}"
    assert lines[-1] == f"Image Dice: {image_dice:.2f}"
    assert "CVC-ClinicDB: 2 videos, 11 scored frames" in stdout
    assert "p2sam: medical variant, parts 1–5, background parts 1–1" in stdout


def test_cvc_other_frame_count(tmp_path, small_checkpoint):
    data = make_cvc(tmp_path / "data", count=30)
    code, stdout, stderr = run_cli(["eval", "cvc", data, "--checkpoint", small_checkpoint, "--out", tmp_path / "out"])
    assert code == 1 and stdout == ""
    assert stderr.startswith("napari-p2sam eval: error: found 30 frames, but the published CVC-ClinicDB split")
    assert "eval folder IMAGES MASKS --reference-frame N" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- folder


def test_folder_end_to_end(tmp_path, small_checkpoint):
    images, masks = make_folder(tmp_path, ["t1", "t2", "t10", "t3"])
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        [
            "eval",
            "folder",
            images,
            masks,
            "--reference-frame",
            "1",
            "--method",
            "persam",
            "--checkpoint",
            small_checkpoint,
            "--out",
            out,
        ]
    )
    assert code == 0, stderr
    rows = read_csv(out / "frames.csv")
    assert [r["frame"] for r in rows] == ["t1", "t3", "t10"]  # natural order, reference t2 left out
    dices, ious = [], []
    for r in rows:
        prediction, truth = binary(out / "persam" / "images" / f"{r['frame']}.png"), binary(masks / f"{r['frame']}.png")
        i, u = counts(prediction, truth)
        dices.append(100 * 2 * i / (prediction.sum() + truth.sum()))
        ious.append(100 * i / u)
        assert float(r["dice_percent"]) == pytest.approx(dices[-1], abs=0.006)
    lines = stdout.strip().splitlines()
    assert lines[-2:] == [f"Dice: {fmean(dices):.2f}", f"IoU: {fmean(ious):.2f}"]
    assert re.search(r"^frame\s+persam Dice\s+persam IoU$", stdout, re.M)


def test_masks_not_binary_warn_and_threshold_is_applied(tmp_path, small_checkpoint):
    images, masks = make_folder(tmp_path, ["a", "b"])
    soft = np.array(Image.open(masks / "b.png"))
    soft[:, :4] = 40  # a faint band: object under the published rule (> 0), background at > 127
    write_png(masks / "b.png", soft)
    args = ["eval", "folder", images, masks, "--method", "persam", "--checkpoint", small_checkpoint]
    code, _, stderr = run_cli([*args, "--out", tmp_path / "published"])
    assert code == 0
    assert "warning: 1 of 2 masks are not binary" in stderr and "b.png" in stderr and "--mask-threshold 127" in stderr
    code, _, stderr = run_cli([*args, "--out", tmp_path / "strict", "--mask-threshold", "127"])
    assert code == 0 and "warning" not in stderr
    truth = lambda name: int(read_csv(tmp_path / name / "frames.csv")[0]["truth_pixels"])  # noqa: E731
    assert truth("published") == int((soft > 0).sum()) and truth("strict") == int((soft > 127).sum())


# ---------------------------------------------------------------- bad inputs, before any work


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda d: (d / "Annotations" / "cat" / "01.png").unlink(),
            r"no ground-truth mask for 1 image\(s\): cat/01\.jpg",
        ),
        (
            lambda d: write_png(d / "Annotations" / "cat" / "02.png", np.zeros((5, 7), np.uint8)),
            r"1 mask\(s\) differ in size from their image: .*02\.png is 5×7 but 02\.jpg is 24×32",
        ),
        (
            lambda d: [p.unlink() for p in (d / "Images" / "cat").iterdir()] and (d / "Images" / "cat").rmdir(),
            r"no object folders in",
        ),
    ],
    ids=["missing-mask", "size-mismatch", "empty-folder"],
)
def test_bad_perseg_inputs(tmp_path, small_checkpoint, damage, message):
    data = make_perseg(tmp_path / "data", {"cat": 3})
    damage(data)
    code, stdout, stderr = run_cli(
        ["eval", "perseg", data, "--checkpoint", small_checkpoint, "--out", tmp_path / "out"]
    )
    assert code == 1 and stdout == ""
    assert re.match(rf"napari-p2sam eval: error: .*{message}", stderr), stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_existing_results_are_kept(tmp_path, small_checkpoint):
    data = make_perseg(tmp_path / "data", {"cat": 2})
    earlier = tmp_path / "out" / "frames.csv"
    earlier.parent.mkdir()
    earlier.write_text("earlier results")
    code, _, stderr = run_cli(["eval", "perseg", data, "--checkpoint", small_checkpoint, "--out", tmp_path / "out"])
    assert code == 1 and "is not empty; choose another --out or pass --overwrite" in stderr
    assert earlier.read_text() == "earlier results"


def test_a_folder_path_with_dotdot_keeps_each_methods_predictions(tmp_path, small_checkpoint):
    images, masks = make_folder(tmp_path, ["a", "b", "c"])
    (images / "sub").mkdir()
    out = tmp_path / "out"
    args = ["eval", "folder", images / "sub" / "..", masks, "--method", "p2sam", "persam"]
    code, _, stderr = run_cli([*args, "--checkpoint", small_checkpoint, "--out", out])
    assert code == 0, stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "p2sam/images/b.png", "p2sam/images/c.png", "persam/images/b.png", "persam/images/c.png", "scores.png",
    ]  # fmt: skip
    assert {r["sequence"] for r in read_csv(out / "frames.csv")} == {"images"}


@pytest.mark.parametrize("where", ["empty-out", "inside-read-only-folder"])
def test_an_out_that_cannot_be_written_is_refused_before_the_model_loads(tmp_path, where):
    from .test_download import folder_state, read_only

    images, masks = make_folder(tmp_path / "data", ["a", "b"])
    locked = tmp_path / "locked"
    locked.mkdir()
    if where == "empty-out":
        out = locked
    else:
        (locked / "notes.txt").write_text("kept")
        out = locked / "out"
    before = folder_state(locked), folder_state(images), folder_state(masks)
    missing_model = tmp_path / "not_loaded_yet.pth"  # loading it would fail with "checkpoint not found"
    with read_only(locked):
        code, _, stderr = run_cli(["eval", "folder", images, masks, "--checkpoint", missing_model, "--out", out])
    assert code == 1
    assert re.fullmatch(
        rf"napari-p2sam eval: error: cannot write into --out {re.escape(str(out))} "
        r"\((operation not permitted|permission denied|read-only file system)\); choose a folder you can write to\n",
        stderr,
    ), stderr
    assert (folder_state(locked), folder_state(images), folder_state(masks)) == before
    assert not (locked / "out").exists()


def test_csv_cells_that_would_be_formulas_are_written_as_text(tmp_path, small_checkpoint):
    names = ["0ref", '=HYPERLINK("http:evil","open")', "@SUM(A1)", "-2+3", "-5"]  # 0ref first: the reference
    images, masks = make_folder(tmp_path, names)
    images = images.rename(tmp_path / "+images")
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        ["eval", "folder", images, masks, "--method", "persam", "--checkpoint", small_checkpoint, "--out", out]
    )
    assert code == 0, stderr
    rows = read_csv(out / "frames.csv")
    assert [r["frame"] for r in rows] == ["'-2+3", "-5", '\'=HYPERLINK("http:evil","open")', "'@SUM(A1)"]
    assert {r["sequence"] for r in rows} == {"'+images"}
    assert all(float(r["dice_percent"]) >= 0 and int(r["union"]) > 0 for r in rows)
    summary = [r["frame"] for r in read_csv(out / "summary.csv")]
    assert set(summary) == {"'-2+3", "-5", '\'=HYPERLINK("http:evil","open")', "'@SUM(A1)", "all"}
    for path in (images, masks):
        assert sorted(p.stem for p in path.iterdir()) == sorted(names)  # the files keep their names


def test_a_blank_image_is_named_once_and_library_warnings_stay_quiet(tmp_path, small_checkpoint):
    images, masks = make_folder(tmp_path, ["a", "b", "c"])
    write_png(images / "b.png", np.full((24, 32, 3), 12, np.uint8))
    args = ["eval", "folder", images, masks, "--method", "p2sam", "persam", "--checkpoint", small_checkpoint]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, stderr = run_cli([*args, "--out", tmp_path / "out"])
    assert code == 0, stderr
    assert [(w.category, str(w.message)) for w in caught] == [
        (
            BlankImageWarning,
            f"{images / 'b.png'} is constant (all pixels (12, 12, 12)): SAM sees nothing in it, "
            "so masks found with it mean nothing",
        )
    ]
