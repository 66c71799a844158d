"""The image encoder's precision (fp32, bf16, fp16) and ``--compile``: where each may run, and what bf16 gives."""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from segment_anything.modeling import ImageEncoderViT

from napari_p2sam import P2SAM, load_model
from napari_p2sam.cli import build_parser, main
from napari_p2sam.engine.cache import EmbeddingCache, encoder_key
from napari_p2sam.engine.embeddings import encode_image
from napari_p2sam.models.precision import (
    CPU_BF16_FLAGS,
    check_compile,
    check_cpu_precision,
    check_precision,
    cpu_flags,
)
from napari_p2sam.worker.model_choice import resolve_model
from napari_p2sam.worker.run import LoadedModels

from .evaldata import make_folder

CPU_HAS_BF16 = bool((cpu_flags() or frozenset()).intersection(CPU_BF16_FLAGS))
needs_bf16 = pytest.mark.skipif(not CPU_HAS_BF16, reason="this CPU has neither AMX-BF16 nor AVX512-BF16")


def run_cli(args: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 255, (48, 64, 3), dtype=np.uint8)


# ---------------------------------------------------------------- where each precision may run


def test_fp16_on_the_cpu_is_refused_before_the_file_is_read(tmp_path):
    with pytest.raises(ValueError, match=r"fp16 runs only on a CUDA GPU; on the CPU use bf16 .* or fp32"):
        load_model(tmp_path / "not-read.pth", device="cpu", precision="fp16")


def test_a_loaded_model_given_fp16_on_the_cpu_is_refused(small_model):
    with pytest.raises(ValueError, match="fp16 runs only on a CUDA GPU"):
        P2SAM(small_model, precision="fp16")


@pytest.mark.parametrize("flags", [{"fpu", "sse4_2", "avx2", "avx512f"}, set()])
def test_bf16_on_a_cpu_without_bf16_instructions_is_refused(flags):
    with pytest.raises(ValueError) as caught:
        check_precision("bf16", "cpu", flags)
    message = str(caught.value)
    assert "slower than fp32" in message and "AMX-BF16" in message and "AVX512-BF16" in message
    assert message.endswith("use fp32")


def test_cpu_flags_are_read_from_cpuinfo_and_decide_bf16(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse4_2", "avx512f", "avx512_bf16"}
    check_precision("bf16", "cpu", cpu_flags(cpuinfo))  # no error
    check_precision("bf16", "cpu", {"amx_tile", "amx_bf16"})


def test_a_system_without_cpuinfo_refuses_bf16_on_the_cpu(tmp_path):
    assert cpu_flags(tmp_path / "missing") is None
    with pytest.raises(ValueError, match=r"does not say whether its CPU has them \(no /proc/cpuinfo\); use fp32"):
        check_cpu_precision("bf16", cpu_flags(tmp_path / "missing"))


@pytest.mark.parametrize(
    "precision, device, message",
    [
        ("fp8", "cpu", "precision must be one of fp32, bf16, fp16, got 'fp8'"),
        ("bf16", "mps", "precision bf16 is not offered on mps; use fp32 there"),
    ],
)
def test_other_precisions_and_devices_are_refused(precision, device, message):
    with pytest.raises(ValueError, match=message):
        check_precision(precision, device, {"avx512_bf16"})


def test_fp32_runs_anywhere():
    for device in ("cpu", "cuda", "mps"):
        check_precision("fp32", device, set())


# ---------------------------------------------------------------- bf16 on this CPU


@needs_bf16
def test_bf16_embeddings_are_float32_and_close_to_fp32(small_model, image):
    exact = encode_image(small_model, image).features
    bf16 = encode_image(replace(small_model, precision="bf16"), image).features
    assert bf16.dtype == torch.float32 and bf16.shape == exact.shape
    assert not torch.equal(bf16, exact), "the encoder ran in bf16"
    error = (bf16 - exact).abs().max() / exact.abs().max()
    assert error < 0.05
    assert torch.nn.functional.cosine_similarity(bf16.flatten(), exact.flatten(), dim=0) > 0.999


@needs_bf16
def test_the_api_runs_a_loaded_model_in_bf16_sharing_its_weights(small_model):
    p2sam = P2SAM(small_model, precision="bf16")
    assert p2sam.model.precision == "bf16" and p2sam.model.sam is small_model.sam
    assert small_model.precision == "fp32"


@needs_bf16
def test_cached_embeddings_are_kept_apart_by_precision(small_model, image, tmp_path):
    bf16 = replace(small_model, precision="bf16")
    assert encoder_key(bf16) != encoder_key(small_model)
    cache = EmbeddingCache(tmp_path)
    exact = cache.embedding(small_model, image)
    reduced = cache.embedding(bf16, image)
    assert (cache.stats.misses, cache.stats.hits) == (2, 0)
    assert torch.equal(cache.embedding(small_model, image).features, exact.features)
    assert torch.equal(cache.embedding(bf16, image).features, reduced.features)
    assert cache.stats.hits == 2


@needs_bf16
def test_the_widgets_choice_loads_the_model_in_its_precision(small_checkpoint):
    choice = resolve_model(small_checkpoint, device="cpu", precision="bf16")
    assert choice.precision == "bf16"
    assert LoadedModels().get(choice).precision == "bf16"


# ---------------------------------------------------------------- command line


def test_precision_options_are_parsed():
    segment = ["segment", "x.tif", "--checkpoint", "m.pth", "--reference-mask", "m.png", "--out", "o.tif"]
    assert build_parser("segment").parse_args(segment).precision == "fp32"
    args = build_parser("segment").parse_args([*segment, "--precision", "bf16", "--compile"])
    assert (args.precision, args.compile) == ("bf16", True)
    evaluation = ["eval", "folder", "i", "m", "--checkpoint", "m.pth", "--out", "o"]
    assert build_parser("eval").parse_args(evaluation).precision == ["fp32"]
    assert build_parser("eval").parse_args([*evaluation, "--precision", "fp32", "bf16"]).precision == ["fp32", "bf16"]


def test_an_unknown_precision_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        build_parser("segment").parse_args(["segment", "x", "--checkpoint", "m", "--precision", "fp64"])
    assert caught.value.code == 2
    assert "argument --precision: invalid choice: 'fp64'" in capsys.readouterr().err


def test_segment_with_fp16_on_the_cpu_says_what_to_use(small_checkpoint, tmp_path):
    images, masks = make_folder(tmp_path, ["a", "b"])
    code, _, err = run_cli(
        [
            "segment",
            images,
            "--checkpoint",
            small_checkpoint,
            "--reference-mask",
            masks / "a.png",
            "--out",
            tmp_path / "out.tif",
            "--device",
            "cpu",
            "--precision",
            "fp16",
        ]
    )
    assert code == 1
    assert "napari-p2sam segment: error: precision fp16 runs only on a CUDA GPU" in err
    assert not (tmp_path / "out.tif").exists()


@needs_bf16
def test_eval_compares_two_precisions_encoding_each_image_once_per_precision(small_checkpoint, tmp_path):
    images, masks = make_folder(tmp_path, ["t1", "t2", "t3"])
    out = tmp_path / "out"
    calls = []
    original = ImageEncoderViT.forward

    def counted(self, x):
        calls.append(str(torch.get_autocast_dtype("cpu")) if torch.is_autocast_enabled("cpu") else "float32")
        return original(self, x)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ImageEncoderViT, "forward", counted)
        code, stdout, stderr = run_cli(
            ["eval", "folder", images, masks, "--checkpoint", small_checkpoint, "--out", out, "--device", "cpu"]
            + ["--method", "p2sam", "persam", "--precision", "fp32", "bf16"]
        )
    assert code == 0, stderr
    assert sorted(calls) == ["float32"] * 3 + ["torch.bfloat16"] * 3  # 3 images, once per precision
    runs = ["p2sam-fp32", "persam-fp32", "p2sam-bf16", "persam-bf16"]
    with open(out / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows if r["frame"] == "t2"] == runs
    for run in runs:
        assert sorted(p.name for p in (out / run / "images").iterdir()) == ["t2.png", "t3.png"]
        assert f"{run} Dice" in stdout
    assert "encoder fp32" in stdout and "encoder bf16" in stdout


# ---------------------------------------------------------------- --compile


def test_compile_is_refused_where_it_cannot_work(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="compiling the encoder works on cpu and cuda, not on mps"):
        check_compile("mps")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(
        ValueError, match=r"compiling the encoder on the CPU needs a C\+\+ compiler \(g\+\+ or clang\+\+\)"
    ):
        check_compile("cpu")
    with pytest.raises(ValueError, match="needs a C"):
        load_model(tmp_path / "not-read.pth", device="cpu", compile=True)


def test_compile_is_chosen_at_load_and_done_where_the_model_first_encodes(small_checkpoint):
    model = load_model(small_checkpoint, device="cpu", compile=True)
    assert model.compile and model._compiled is None  # nothing compiled until the first image
