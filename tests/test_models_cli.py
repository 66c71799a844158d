"""`napari-p2sam models list | download | verify | path` against a local HTTP server."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from napari_p2sam.cli import main
from napari_p2sam.models import download as dl
from napari_p2sam.models.registry import MODELS

from .conftest import save_tiny_sam
from .model_server import ModelServer
from .test_download import closed_port, folder_state, read_only

FILE = "/mobile_sam.pt"


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    return save_tiny_sam(tmp_path_factory.mktemp("served") / "tiny.pth", seed=9).read_bytes()


@pytest.fixture
def vit_t_served(tmp_path, monkeypatch, checkpoint_bytes):
    """vit_t pointed at a local server, cache in tmp_path."""
    server = ModelServer()
    server.files[FILE] = checkpoint_bytes
    entry = replace(MODELS["vit_t"], url=server.url(FILE), sha256=hashlib.sha256(checkpoint_bytes).hexdigest())
    monkeypatch.setitem(MODELS, "vit_t", entry)
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "cache"))
    yield server
    server.close()


def test_download_verify_list_path(vit_t_served, tmp_path, capsys, checkpoint_bytes):
    path = tmp_path / "cache" / "models" / "mobile_sam.pt"
    assert main(["models", "download", "vit_t"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(path) and path.read_bytes() == checkpoint_bytes
    assert "100%" in err, "a progress bar was shown"

    assert main(["models", "verify"]) == 0
    assert capsys.readouterr().out.startswith("vit_t: ok")

    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert str(tmp_path / "cache" / "models") in listing[0]
    rows = {line.split()[0]: line for line in listing[2:]}
    assert list(rows) == list(MODELS)
    assert "  yes  " in rows["vit_t"] and rows["vit_t"].endswith(str(path)) and "41 MB" in rows["vit_t"]
    assert "  no  " in rows["vit_h"] and rows["vit_h"].endswith("sam_vit_h_4b8939.pth")

    assert main(["models", "path", "vit_t"]) == 0
    assert capsys.readouterr().out.strip() == str(path)


def test_verify_finds_a_corrupted_file(vit_t_served, tmp_path, capsys):
    assert main(["models", "download", "vit_t"]) == 0
    path = tmp_path / "cache" / "models" / "mobile_sam.pt"
    path.write_bytes(path.read_bytes()[:-3])
    capsys.readouterr()
    assert main(["models", "verify", "vit_t"]) == 1
    assert "vit_t: MISMATCH" in capsys.readouterr().out
    assert not path.exists() and len(list(path.parent.glob("mobile_sam.pt.mismatch-*"))) == 1
    assert main(["models", "verify", "vit_t"]) == 1
    assert "vit_t: not downloaded" in capsys.readouterr().out


def listed_state(capsys, name: str) -> tuple[str, str]:
    """``models list``: the DOWNLOADED cell of ``name``'s row, and what was said on stderr."""
    assert main(["models", "list"]) == 0
    out, err = capsys.readouterr()
    header, *rows = [line for line in out.splitlines()[1:] if line]
    start, end = header.index("DOWNLOADED"), header.index("FILE")
    row = next(row for row in rows if row.split()[0] == name)
    return row[start:end].strip(), err


def test_list_shows_a_wrong_file_as_damaged_and_leaves_it(vit_t_served, tmp_path, capsys):
    assert main(["models", "download", "vit_t"]) == 0
    path = tmp_path / "cache" / "models" / "mobile_sam.pt"
    path.write_bytes(path.read_bytes()[:-3] + b"!!!")
    before = folder_state(path.parent)
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("vit_t"))
    assert "  damaged (wrong sha256)  " in row and "  yes  " not in row
    assert "damaged: the file is not the registry's" in out and "models download NAME" in out
    after = folder_state(path.parent)
    assert after["mobile_sam.pt"] == before["mobile_sam.pt"], "list only looks: the file is neither moved nor changed"
    assert sorted(after) == ["mobile_sam.pt", "mobile_sam.pt.lock", "mobile_sam.pt.sha256.json"]


def test_list_hashes_a_file_only_when_it_changed(vit_t_served, tmp_path, capsys, checkpoint_bytes):
    assert main(["models", "download", "vit_t"]) == 0
    capsys.readouterr()
    path = tmp_path / "cache" / "models" / "mobile_sam.pt"
    assert listed_state(capsys, "vit_t") == ("yes", ""), "the download remembered its verified sha256"

    old = path.stat()
    path.write_bytes(checkpoint_bytes[:-1] + b"!")  # same size, then its old modification time back
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    state, err = listed_state(capsys, "vit_t")
    assert state == "damaged (wrong sha256)" and f"checking the sha256 of {path}" in err
    assert listed_state(capsys, "vit_t") == ("damaged (wrong sha256)", ""), "hashed once, remembered"

    path.write_bytes(checkpoint_bytes)
    state, err = listed_state(capsys, "vit_t")
    assert state == "yes" and "checking the sha256" in err


def test_a_read_only_folder_does_not_hide_a_wrong_file(vit_t_served, tmp_path, capsys):
    assert main(["models", "download", "vit_t"]) == 0
    path = tmp_path / "cache" / "models" / "mobile_sam.pt"
    path.write_bytes(b"<html>proxy login</html>")
    capsys.readouterr()
    before = folder_state(path.parent)
    with read_only(path.parent):
        for _ in range(2):  # the sha256 cannot be remembered here: hashed (and found wrong) each time
            state, err = listed_state(capsys, "vit_t")
            assert state == "damaged (wrong sha256)" and "checking the sha256" in err
        assert main(["models", "verify", "vit_t"]) == 1
        out = capsys.readouterr().out
        assert out.startswith(f"vit_t: MISMATCH: {path} is not the vit_t checkpoint")
        assert "could not be set aside (" in out and "Errno" not in out
        assert main(["models", "download", "vit_t"]) == 1
        err = capsys.readouterr().err
        assert "error: " in err and "could not be set aside" in err and "Traceback" not in err and "Errno" not in err
    assert folder_state(path.parent) == before
    assert len(vit_t_served.requests_for(FILE)) == 1, "only the first download"


def test_list_shows_an_interrupted_download(vit_t_served, capsys, checkpoint_bytes):
    vit_t_served.mode, vit_t_served.break_after = "break", len(checkpoint_bytes) // 2
    assert main(["models", "download", "vit_t"]) == 1
    assert "interrupted" in capsys.readouterr().err
    main(["models", "list"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("vit_t"))
    assert "partly (" in row


def test_unknown_name(capsys):
    assert main(["models", "download", "vit_q"]) == 1
    assert "unknown model 'vit_q'; known models: vit_t, vit_b" in capsys.readouterr().err


def test_path_of_a_missing_model_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path))
    assert main(["models", "path", "vit_l"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "models" / "sam_vit_l_0b3195.pth")
    assert MODELS["vit_l"].url in err and "models download vit_l" in err


def test_offline_download_from_the_command_line(tmp_path, monkeypatch, capsys):
    """Fails in seconds with one message naming the URL, the cache path and the recipe; no traceback."""
    url = f"http://127.0.0.1:{closed_port()}/sam_vit_b_01ec64.pth"
    monkeypatch.setitem(MODELS, "vit_b", replace(MODELS["vit_b"], url=url))
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path))
    start = time.perf_counter()
    assert main(["models", "download", "vit_b"]) == 1
    assert time.perf_counter() - start < 5
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("napari-p2sam models: error: cannot download vit_b") == 1
    assert url in err and str(tmp_path / "models" / "sam_vit_b_01ec64.pth") in err
    assert "by hand" in err and MODELS["vit_b"].sha256 in err


def test_models_command_starts_without_the_engine(tmp_path):
    """A fresh ``models download`` process fails offline in well under seconds: it never imports torch."""
    url = f"http://127.0.0.1:{closed_port()}/sam_vit_b_01ec64.pth"
    script = (
        "import sys; from dataclasses import replace; from napari_p2sam.cli import main; "
        "from napari_p2sam.models.registry import MODELS; "
        f"MODELS['vit_b'] = replace(MODELS['vit_b'], url={url!r}); "
        "status = main(['models', 'download', 'vit_b']); "
        "print('torch imported' if 'torch' in sys.modules else 'no torch'); sys.exit(status)"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "NAPARI_P2SAM_CACHE": str(tmp_path)},
    )
    assert time.perf_counter() - start < 5
    assert done.returncode == 1
    assert done.stdout.strip().endswith("no torch")
    assert "cannot download vit_b" in done.stderr and "Traceback" not in done.stderr


def test_segment_takes_a_model_name(tmp_path, monkeypatch, capsys, checkpoint_bytes):
    """`segment --checkpoint vit_b` uses the verified cached file (placed by hand here)."""
    from PIL import Image

    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setitem(MODELS, "vit_b", replace(MODELS["vit_b"], sha256=hashlib.sha256(checkpoint_bytes).hexdigest()))
    dl.models_dir().mkdir(parents=True)
    dl.model_path("vit_b").write_bytes(checkpoint_bytes)
    image = (np.arange(64 * 80).reshape(64, 80) % 251).astype(np.uint8)
    mask = np.zeros((64, 80), np.uint8)
    mask[20:40, 25:60] = 255
    Image.fromarray(image).save(tmp_path / "image.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "labels.tif"
    image_path, mask_path = str(tmp_path / "image.png"), str(tmp_path / "mask.png")
    args = ["segment", image_path, "--checkpoint", "vit_b", "--reference-mask", mask_path, "--out", str(out)]
    assert main(args + ["--device", "cpu"]) == 0, capsys.readouterr().err
    assert out.is_file()
