"""Downloads against a local HTTP server: verified, resumable, set aside when wrong, clear when offline.

The registry entries are pointed at the local server (configuration only);
the file served is a real tiny SAM checkpoint, so a downloaded model loads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pooch
import pytest

from napari_p2sam import load_model
from napari_p2sam.models import download as dl
from napari_p2sam.models.registry import MODELS

from .conftest import save_tiny_sam
from .model_server import ModelServer

FILE = "/models/sam_tiny.pth"


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    return save_tiny_sam(tmp_path_factory.mktemp("served") / "tiny.pth", seed=5).read_bytes()


@pytest.fixture
def server(checkpoint_bytes):
    served = ModelServer()
    served.files[FILE] = checkpoint_bytes
    yield served
    served.close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def point_vit_b_at(monkeypatch, url: str, data: bytes) -> None:
    """Make the registry's vit_b the served file (its URL and sha256)."""
    entry = replace(MODELS["vit_b"], url=url, sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(MODELS, "vit_b", entry)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def read_only(folder: Path):
    """Make ``folder`` and its files read-only, as on a read-only mount (for root too: ``chattr +i``); undone after."""
    paths = [folder, *folder.iterdir()]
    if os.geteuid() != 0:
        modes = [path.stat().st_mode for path in paths]
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in zip(paths, modes):
                path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", *map(str, paths)], capture_output=True).returncode:
        pytest.skip("as root, a read-only folder needs `chattr +i` (a Linux file system that supports it)")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", *map(str, paths)], check=True)


def folder_state(folder: Path) -> dict[str, str]:
    """file name → sha256 of every file in ``folder``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_download_verifies_caches_and_loads(server, cache, monkeypatch, checkpoint_bytes):
    point_vit_b_at(monkeypatch, server.url(FILE), checkpoint_bytes)
    path = dl.download("vit_b", progressbar=False)
    assert path == cache / "sam_vit_b_01ec64.pth"
    assert path.read_bytes() == checkpoint_bytes
    assert not dl.partial_path("vit_b").exists()
    assert dl.download("vit_b", progressbar=False) == path
    assert len(server.requests_for(FILE)) == 1, "a verified cached file is not downloaded again"
    model = load_model("vit_b", device="cpu")
    assert model.identity == hashlib.sha256(checkpoint_bytes).hexdigest()
    assert model.source == str(path) and model.normalization == "sam"


def test_resume_after_broken_transfer(server, cache, monkeypatch, checkpoint_bytes):
    point_vit_b_at(monkeypatch, server.url(FILE), checkpoint_bytes)
    server.mode, server.break_after = "break", len(checkpoint_bytes) * 2 // 5
    with pytest.raises(dl.DownloadError, match="interrupted.*run the same command again to resume"):
        dl.download("vit_b", progressbar=False)
    part = dl.partial_path("vit_b")
    kept = part.stat().st_size
    assert 0 < kept <= server.break_after and part.read_bytes() == checkpoint_bytes[:kept]
    assert not dl.model_path("vit_b").exists()

    server.mode = "normal"
    path = dl.download("vit_b", progressbar=False)
    assert path.read_bytes() == checkpoint_bytes
    assert server.requests_for(FILE)[-1] == (f"bytes={kept}-", len(checkpoint_bytes) - kept), "only the rest was sent"
    assert not part.exists()


def test_server_that_ignores_ranges_gives_a_whole_file(server, cache, monkeypatch, checkpoint_bytes):
    point_vit_b_at(monkeypatch, server.url(FILE), checkpoint_bytes)
    server.mode, server.break_after = "break", 1000
    with pytest.raises(dl.DownloadError):
        dl.download("vit_b", progressbar=False)
    server.mode = "ignore-range"
    assert dl.download("vit_b", progressbar=False).read_bytes() == checkpoint_bytes


def test_part_longer_than_the_file_starts_over(server, cache, monkeypatch, checkpoint_bytes):
    point_vit_b_at(monkeypatch, server.url(FILE), checkpoint_bytes)
    cache.mkdir(parents=True)
    dl.partial_path("vit_b").write_bytes(b"x" * (len(checkpoint_bytes) + 10))
    assert dl.download("vit_b", progressbar=False).read_bytes() == checkpoint_bytes
    assert [status for status, _ in server.requests_for(FILE)][0] == f"bytes={len(checkpoint_bytes) + 10}-"


def test_a_bad_cached_file_is_set_aside_and_downloaded_again(server, cache, monkeypatch, checkpoint_bytes, capsys):
    point_vit_b_at(monkeypatch, server.url(FILE), checkpoint_bytes)
    cache.mkdir(parents=True)
    dl.model_path("vit_b").write_bytes(b"<html>proxy login</html>")
    assert dl.download("vit_b", progressbar=False).read_bytes() == checkpoint_bytes
    assert "set aside; downloading it again" in capsys.readouterr().err
    assert [p.read_bytes() for p in cache.glob("*.mismatch-*")] == [b"<html>proxy login</html>"]


class Progress:
    """What a GUI passes as a progress bar: total, update(n), close()."""

    def __init__(self) -> None:
        self.total, self.n, self.closed = None, 0, False

    def update(self, n: int) -> None:
        self.n += n

    def close(self) -> None:
        self.closed = True


def test_progress_reaches_the_file_size_also_when_resuming(server, cache, monkeypatch, checkpoint_bytes):
    point_vit_b_at(monkeypatch, server.url(FILE), checkpoint_bytes)
    server.mode, server.break_after = "break", len(checkpoint_bytes) // 2
    with pytest.raises(dl.DownloadError):
        dl.download("vit_b", progressbar=Progress())
    server.mode = "normal"
    progress = Progress()
    dl.download("vit_b", progressbar=progress)
    assert progress.total == progress.n == len(checkpoint_bytes) and progress.closed


def test_checksum_mismatch_is_set_aside_and_never_used(server, cache, monkeypatch, checkpoint_bytes):
    point_vit_b_at(monkeypatch, server.url(FILE), b"the file the registry expects")
    with pytest.raises(dl.ChecksumMismatchError, match=r"set aside as .*\.mismatch-.*will not be used"):
        dl.download("vit_b", progressbar=False)
    assert not dl.model_path("vit_b").exists()
    aside = list(cache.glob("sam_vit_b_01ec64.pth.mismatch-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == checkpoint_bytes
    with pytest.raises(dl.ChecksumMismatchError, match="will not be used"):
        load_model("vit_b", device="cpu")  # downloads again on use: the same wrong file, set aside again
    assert not dl.model_path("vit_b").exists() and len(server.requests_for(FILE)) == 2


def test_hand_placed_file_is_checked(cache, monkeypatch, checkpoint_bytes, capsys):
    """The offline recipe: the file copied by hand is used only if its sha256 matches."""
    point_vit_b_at(monkeypatch, f"http://127.0.0.1:{closed_port()}/x.pth", checkpoint_bytes)
    cache.mkdir(parents=True)
    dl.model_path("vit_b").write_bytes(checkpoint_bytes[:-1] + b"!")
    with pytest.raises(dl.DownloadError, match="by hand"):  # set aside, then downloaded again: offline here
        load_model("vit_b", device="cpu")
    assert "the cached vit_b failed its checksum and was set aside" in capsys.readouterr().err
    assert not dl.model_path("vit_b").exists(), "the wrong file was set aside"
    assert len(list(cache.glob("*.mismatch-*"))) == 1

    dl.model_path("vit_b").write_bytes(checkpoint_bytes)
    assert load_model("vit_b", device="cpu").identity == hashlib.sha256(checkpoint_bytes).hexdigest()


def test_a_wrong_file_in_a_read_only_folder_is_still_a_mismatch(server, cache, monkeypatch, checkpoint_bytes):
    point_vit_b_at(monkeypatch, server.url(FILE), checkpoint_bytes)
    cache.mkdir(parents=True)
    dl.model_path("vit_b").write_bytes(checkpoint_bytes[:-1] + b"!")
    before = folder_state(cache)
    with read_only(cache):
        for attempt in (lambda: load_model("vit_b", device="cpu"), lambda: dl.download("vit_b", progressbar=False)):
            with pytest.raises(dl.ChecksumMismatchError) as failure:
                attempt()
            message = str(failure.value)
            assert "Errno" not in message
            assert f"{dl.model_path('vit_b')} is not the vit_b checkpoint" in message
            assert "will not be used, but it could not be set aside (" in message and "by hand" in message
    assert folder_state(cache) == before, "nothing was moved, written or deleted"
    assert server.requests_for(FILE) == [], "a download could not have replaced it"


def test_a_right_file_in_a_read_only_folder_is_used_without_a_download(server, cache, monkeypatch, checkpoint_bytes):
    point_vit_b_at(monkeypatch, server.url(FILE), checkpoint_bytes)
    cache.mkdir(parents=True)
    dl.model_path("vit_b").write_bytes(checkpoint_bytes)
    before = folder_state(cache)
    with read_only(cache):
        assert dl.download("vit_b", progressbar=False) == dl.model_path("vit_b")
    assert folder_state(cache) == before and server.requests_for(FILE) == []


def test_downloading_into_a_read_only_folder_names_it_in_words(server, cache, monkeypatch, checkpoint_bytes):
    point_vit_b_at(monkeypatch, server.url(FILE), checkpoint_bytes)
    cache.mkdir(parents=True)
    with read_only(cache):
        with pytest.raises(dl.ModelFileError) as failure:
            dl.download("vit_b", progressbar=False)
    message = str(failure.value)
    assert message.startswith(f"cannot download vit_b into {cache} (") and "Errno" not in message
    assert "make the folder writable for this user, or set NAPARI_P2SAM_CACHE" in message
    assert list(cache.iterdir()) == [] and server.requests_for(FILE) == []


def test_a_models_folder_that_cannot_be_created_is_named(tmp_path, monkeypatch, checkpoint_bytes):
    (tmp_path / "a-file").write_bytes(b"keep me")
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "a-file"))
    with pytest.raises(dl.ModelFileError) as failure:
        dl.download("vit_b", progressbar=False)
    message = str(failure.value)
    assert message.startswith(f"cannot create the models folder {tmp_path / 'a-file' / 'models'} (not a directory)")
    assert "Errno" not in message and dl.CACHE_ENV in message
    assert (tmp_path / "a-file").read_bytes() == b"keep me"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device whose writes fail: disk full")
def test_a_full_disk_is_said_in_words_and_the_part_is_kept(server, cache, monkeypatch, checkpoint_bytes):
    point_vit_b_at(monkeypatch, server.url(FILE), checkpoint_bytes)
    cache.mkdir(parents=True)
    dl.partial_path("vit_b").symlink_to("/dev/full")  # every write to the partial file fails with ENOSPC
    with pytest.raises(dl.ModelFileError) as failure:
        dl.download("vit_b", progressbar=False)
    message = str(failure.value)
    part = dl.partial_path("vit_b")
    assert message.startswith(f"cannot write the download of vit_b to {part} (no space left on device)")
    assert "free some disk space" in message and "the same command resumes" in message and "Errno" not in message
    assert not dl.model_path("vit_b").exists()


def test_offline_error_is_fast_and_says_what_to_do(cache, monkeypatch, checkpoint_bytes):
    url = f"http://127.0.0.1:{closed_port()}/models/sam_vit_b_01ec64.pth"
    point_vit_b_at(monkeypatch, url, checkpoint_bytes)
    start = time.perf_counter()
    with pytest.raises(dl.DownloadError) as failure:
        dl.download("vit_b", progressbar=False)
    assert time.perf_counter() - start < 5
    message = str(failure.value)
    for expected in (url, str(cache / "sam_vit_b_01ec64.pth"), hashlib.sha256(checkpoint_bytes).hexdigest()):
        assert expected in message
    assert "refused the connection" in message and "by hand" in message and dl.CACHE_ENV in message
    left = [p.name for p in cache.glob("sam_vit_b_01ec64.pth*")]
    assert left == [], "nothing is left behind: no part, no lock file"


def test_server_error_is_reported(server, cache, monkeypatch, checkpoint_bytes):
    point_vit_b_at(monkeypatch, server.url("/models/missing.pth"), checkpoint_bytes)
    with pytest.raises(dl.DownloadError, match="answered 404"):
        dl.download("vit_b", progressbar=False)


def test_a_named_model_is_downloaded_on_first_use(server, cache, monkeypatch, checkpoint_bytes):
    point_vit_b_at(monkeypatch, server.url(FILE), checkpoint_bytes)
    model = load_model("vit_b", device="cpu", download_progress=False)
    assert model.source == str(cache / "sam_vit_b_01ec64.pth") and len(server.requests_for(FILE)) == 1
    load_model("vit_b", device="cpu")
    assert len(server.requests_for(FILE)) == 1, "downloaded once"


def test_a_named_model_offline_says_where_to_place_it(cache, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/sam_vit_h_4b8939.pth"
    monkeypatch.setitem(MODELS, "vit_h", replace(MODELS["vit_h"], url=url))
    with pytest.raises(dl.DownloadError) as failure:
        load_model("vit_h", device="cpu", download_progress=False)
    message = str(failure.value)
    assert str(cache / "sam_vit_h_4b8939.pth") in message and url in message and "by hand" in message


def test_cache_folder_override(tmp_path, monkeypatch):
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert dl.models_dir() == tmp_path / "elsewhere" / "models"
    assert dl.model_path("vit_t") == tmp_path / "elsewhere" / "models" / "mobile_sam.pt"
    monkeypatch.delenv(dl.CACHE_ENV)
    assert dl.models_dir() == Path(pooch.os_cache("napari-p2sam")) / "models"


def test_registry_name_gives_the_models_normalization(cache, monkeypatch, checkpoint_bytes):
    entry = replace(MODELS["medsam_vit_b"], sha256=hashlib.sha256(checkpoint_bytes).hexdigest())
    monkeypatch.setitem(MODELS, "medsam_vit_b", entry)
    cache.mkdir(parents=True)
    dl.model_path("medsam_vit_b").write_bytes(checkpoint_bytes)
    assert load_model("medsam_vit_b", device="cpu").normalization == "minmax"
    assert load_model("medsam_vit_b", device="cpu", normalization="sam").normalization == "sam"


def test_a_file_named_like_a_model_wins(tmp_path, monkeypatch, checkpoint_bytes, cache):
    monkeypatch.chdir(tmp_path)
    Path("vit_b").write_bytes(checkpoint_bytes)
    assert load_model("vit_b", device="cpu").source == "vit_b"


def test_unknown_name_lists_the_models(tmp_path):
    with pytest.raises(ValueError, match="neither a file nor a model name: vit_t, vit_b"):
        load_model(str(tmp_path / "vit_x"))


CONCURRENT_DOWNLOAD = """
import sys, time
from dataclasses import replace
from pathlib import Path
from napari_p2sam.models import download as dl
from napari_p2sam.models.registry import MODELS

url, sha256, ready, index = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
MODELS["vit_b"] = replace(MODELS["vit_b"], url=url, sha256=sha256)
(ready / index).touch()
while len(list(ready.iterdir())) < 2:  # start both transfers together
    time.sleep(0.01)
print(dl.download("vit_b", progressbar=False))
"""


def test_two_processes_downloading_at_once_end_with_one_good_file(server, cache, tmp_path, checkpoint_bytes):
    server.mode, server.delay_s = "slow", 0.02
    sha = hashlib.sha256(checkpoint_bytes).hexdigest()
    ready = tmp_path / "ready"
    ready.mkdir()
    env = {**os.environ, dl.CACHE_ENV: str(cache.parent)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_DOWNLOAD, server.url(FILE), sha, str(ready), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    path = cache / "sam_vit_b_01ec64.pth"
    assert [out.strip() for out, _ in outputs] == [str(path)] * 2
    assert path.read_bytes() == checkpoint_bytes
    assert server.requests_for(FILE) == [(None, len(checkpoint_bytes))], "one transfer, the other process waited"
    assert sum("waiting for it to finish" in err for _, err in outputs) == 1
    expected = ["sam_vit_b_01ec64.pth", "sam_vit_b_01ec64.pth.lock", "sam_vit_b_01ec64.pth.sha256.json"]
    assert sorted(p.name for p in cache.iterdir()) == expected
