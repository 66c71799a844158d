"""Fetch registry models into a cache folder through pooch, verified by sha256.

Where: ``$NAPARI_P2SAM_CACHE/models`` when that variable is set, else
``pooch.os_cache("napari-p2sam")/models`` (the platform's user cache, e.g.
``~/.cache/napari-p2sam/models`` on Linux). A model is the file
``<folder>/<file_name>`` and is used only once its sha256 matched the
registry, whether it was downloaded or placed there by hand.

Files beside it while or after downloading:

- ``<file_name>.part``: bytes received so far; an interrupted transfer
  continues from there (HTTP ``Range``) on the next try.
- ``<file_name>.lock``: held by the process that downloads; others wait,
  then find the finished file.
- ``<file_name>.mismatch-<sha256 prefix>``: a file whose checksum did not
  match, set aside for inspection and never used. Where the folder is
  read-only it cannot be set aside: it stays, is never used, and every
  message about it says so.
- ``<file_name>.sha256.json``: the sha256 of the file as last hashed, with
  its size and times (:mod:`.checksums`), so ``models list`` tells a wrong
  file from the right one without hashing gigabytes each time.

Every failed file operation is reported with the path, the cause in words
and what to do, never as a bare errno.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pooch
import requests
from filelock import FileLock, Timeout

from ..io.paths import in_words, user_path
from .checksums import forget_sha256, hash_into, remember_sha256, sha256_of
from .registry import ModelInfo, model_info

CACHE_ENV = "NAPARI_P2SAM_CACHE"
TIMEOUT_S = (5, 60)
"""Seconds to wait for a connection, then between bytes: offline fails in seconds."""
CHUNK_BYTES = 1 << 16


class ModelFileError(OSError):
    """A named model that cannot be used yet; the message says what to do."""


class ModelNotDownloadedError(ModelFileError):
    """The model's file is not in the cache folder."""


class DownloadError(ModelFileError):
    """The transfer failed (no network, server error, interrupted)."""


class ChecksumMismatchError(ModelFileError):
    """A file's sha256 differs from the registry's; it is never used (set aside where the folder allows)."""


def models_dir() -> Path:
    """The folder that holds downloaded models (``$NAPARI_P2SAM_CACHE/models`` overrides)."""
    root = os.environ.get(CACHE_ENV)
    base = user_path(root) if root else Path(pooch.os_cache("napari-p2sam"))
    return base / "models"


def model_path(name: str) -> Path:
    """Where model ``name`` is (or will be) stored."""
    return models_dir() / model_info(name).file_name


def partial_path(name: str) -> Path:
    """Where the bytes of an unfinished download of ``name`` are kept."""
    path = model_path(name)
    return path.with_name(path.name + ".part")


def offline_recipe(info: ModelInfo) -> str:
    """How to install ``info``'s file without this program's download."""
    return (
        f"To install it by hand, download {info.url} on a machine with internet access and copy the file "
        f"to {models_dir() / info.file_name} (file name {info.file_name}; set {CACHE_ENV} to use another "
        f"folder); its sha256 {info.sha256} is checked before use. "
        "Any checkpoint file can also be used by its path instead of a model name."
    )


def set_aside(path: Path, digest: str) -> Path:
    """Rename a file (or a finished ``.part``) whose checksum is wrong so that it is never used.

    Returns the new path, ``<file_name>.mismatch-<sha256 prefix>``.
    """
    aside = path.with_name(f"{path.name.removesuffix('.part')}.mismatch-{digest[:12]}")
    os.replace(path, aside)
    forget_sha256(path)
    return aside


def reject(path: Path, digest: str, info: ModelInfo, what: str, advice: str) -> ChecksumMismatchError:
    """Set aside ``path`` (``what``, e.g. its path) whose sha256 ``digest`` is wrong; the error says where it went.

    Where it cannot be moved, the error says that, why, and what to do.
    """
    wrong = f"{what} is not the {info.name} checkpoint (sha256 {digest}, expected {info.sha256})"
    try:
        aside = set_aside(path, digest)
    except OSError as err:
        return ChecksumMismatchError(
            f"{wrong}; it will not be used, but it could not be set aside ({in_words(err)}): delete it or replace "
            f"it by hand, or set {CACHE_ENV} to another folder. " + offline_recipe(info)
        )
    return ChecksumMismatchError(
        f"{wrong}; it was set aside as {aside} and will not be used. {advice} " + offline_recipe(info)
    )


def verified_path(name: str) -> Path:
    """The cached file of model ``name`` after checking its sha256.

    Raises :class:`ModelNotDownloadedError` if it is absent,
    :class:`ChecksumMismatchError` (after setting it aside where the folder
    allows) if it is not the registry's file, and :class:`ModelFileError` if
    it cannot be read.
    """
    info = model_info(name)
    path = model_path(name)
    if not path.is_file():
        raise ModelNotDownloadedError(
            f"model {name} ({info.title}) is not downloaded yet: run `napari-p2sam models download {name}`. "
            + offline_recipe(info)
        )
    try:
        digest = sha256_of(path)
    except OSError as err:
        raise ModelFileError(
            f"cannot read {path} to check its sha256 ({in_words(err)}): make it readable for this user, "
            f"or set {CACHE_ENV} to another folder"
        ) from None
    if digest != info.sha256:
        raise reject(path, digest, info, str(path), f"Download it again with `napari-p2sam models download {name}`.")
    return path


def download(name: str, *, progressbar: object = True) -> Path:
    """Download model ``name`` unless a verified copy is cached; returns its path.

    ``progressbar``: ``True`` for a bar on stderr, ``False`` for none, or a
    tqdm-like object (``total``, ``update(n)``, ``close()``).
    """
    info = model_info(name)
    path = model_path(name)
    if path.is_file():  # checked before any write, so a read-only folder with the right file works
        try:
            return verified_path(name)
        except ChecksumMismatchError:
            if path.exists():  # it could not be set aside (a read-only folder): a download cannot replace it
                raise
            print(f"the cached {name} failed its checksum and was set aside; downloading it again", file=sys.stderr)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ModelFileError(f"cannot create the models folder {path.parent} ({in_words(err)}): {_fix(err)}") from None
    with _download_lock(path, info):
        if path.is_file():  # another process downloaded it while this one waited
            return verified_path(name)
        downloader = ResumableDownloader(partial_path(name), info, progressbar)
        pooch.retrieve(
            info.url,
            known_hash=f"sha256:{info.sha256}",
            fname=info.file_name,
            path=path.parent,
            downloader=downloader,
        )
        remember_sha256(path, info.sha256)  # pooch checked it
    return path


@contextmanager
def _download_lock(path: Path, info: ModelInfo):
    """Hold ``<file>.lock``; say so when another process holds it and we wait.

    A download that fails removes the lock file it made, so that a failed
    first try (offline) leaves nothing behind. (A process that was waiting
    on it then downloads on its own; a wrong result is caught by the sha256.)
    """
    lock_path = Path(str(path) + ".lock")
    made_here = not lock_path.exists()
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:  # before OSError: filelock's Timeout is one
        print(f"another process is downloading {info.name}; waiting for it to finish", file=sys.stderr)
        lock.acquire()
    except OSError as err:  # the lock file cannot be created: a read-only folder
        raise ModelFileError(f"cannot download {info.name} into {path.parent} ({in_words(err)}): {_fix(err)}") from None
    try:
        yield
    except BaseException:
        if made_here:
            lock_path.unlink(missing_ok=True)
        raise
    finally:
        lock.release()


class ResumableDownloader:
    """A pooch downloader that continues interrupted transfers and sets bad files aside.

    Bytes are appended to ``part``, which survives failures; the next call
    asks only for the rest (``Range: bytes=<have>-``). A server that answers
    206 continues the file; one that answers 200 sends it whole and the file
    starts over. The sha256 is computed while the bytes arrive: a complete
    file that does not match is set aside (:class:`ChecksumMismatchError`);
    one that matches is handed to pooch, which checks it again and moves it
    into place.
    """

    def __init__(self, part: Path, info: ModelInfo, progressbar: object = True) -> None:
        self.part = part
        self.info = info
        self.progressbar = progressbar

    def __call__(self, url: str, output_file: str, pooch_instance: object) -> None:
        """Fetch ``url`` into ``output_file`` (pooch's downloader signature; ``pooch_instance`` is unused)."""
        have = self.part.stat().st_size if self.part.is_file() else 0
        response = self._request(url, have)
        if have and not (response.status_code == 206 and _continues_at(response, have)):
            have = 0  # 200: the whole file follows; otherwise ask again for the whole file
            if response.status_code != 200:
                response.close()
                response = self._request(url, have)
        digest = hashlib.sha256()
        if have:
            hash_into(self.part, digest)
        remaining = int(response.headers.get("content-length", 0))
        received = self._receive(response, have, remaining, digest)
        if remaining and received < remaining:
            raise self._interrupted(have + received, have + remaining, "the server closed the connection early")
        if digest.hexdigest() != self.info.sha256:
            what = f"the file downloaded from {url}"
            raise reject(self.part, digest.hexdigest(), self.info, what, "Try again later or from another network.")
        os.replace(self.part, output_file)

    def _request(self, url: str, have: int) -> requests.Response:
        headers = {"Accept-Encoding": "identity"}  # byte ranges must count the file's own bytes
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            response = requests.get(url, headers=headers, stream=True, timeout=TIMEOUT_S)
        except requests.RequestException as err:
            raise DownloadError(
                f"cannot download {self.info.name} ({self.info.title}) from {url}: {_reason(err, url)}. "
                + offline_recipe(self.info)
            ) from None
        if response.status_code >= 400 and not (have and response.status_code == 416):
            response.close()
            raise DownloadError(
                f"cannot download {self.info.name} from {url}: the server answered {response.status_code} "
                f"{response.reason}. " + offline_recipe(self.info)
            )
        return response

    def _receive(self, response: requests.Response, have: int, remaining: int, digest) -> int:
        """Write the body after ``have`` bytes of ``part``; returns the bytes received."""
        bar = self._progress(total=have + remaining if remaining else None, initial=have)
        received = 0
        try:
            with open(self.part, "ab" if have else "wb") as out:
                for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        except requests.RequestException as err:
            raise self._interrupted(have + received, have + remaining, _reason(err, response.url)) from None
        except OSError as err:
            raise ModelFileError(
                f"cannot write the download of {self.info.name} to {self.part} ({in_words(err)}): {_fix(err)}; "
                f"the {(have + received) / 1e6:.1f} MB received are kept there and the same command resumes"
            ) from None
        finally:
            response.close()
            if bar is not None:
                bar.close()
        return received

    def _progress(self, total: int | None, initial: int):
        if self.progressbar is True:
            from tqdm.auto import tqdm

            return tqdm(
                total=total, initial=initial, unit="B", unit_scale=True, desc=self.info.file_name, file=sys.stderr
            )
        if self.progressbar:
            self.progressbar.total = total
            if initial:
                self.progressbar.update(initial)
            return self.progressbar
        return None

    def _interrupted(self, have: int, total: int, reason: str) -> DownloadError:
        size = f"{have / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{have / 1e6:.1f} MB"
        return DownloadError(
            f"the download of {self.info.name} was interrupted after {size} ({reason}); run the same "
            f"command again to resume it from {self.part}"
        )


def _continues_at(response: requests.Response, offset: int) -> bool:
    """Whether a 206 answer's ``Content-Range`` starts at ``offset``."""
    return response.headers.get("content-range", "").startswith(f"bytes {offset}-")


def _fix(err: OSError) -> str:
    """What to do about a folder where a file operation failed with ``err``."""
    if err.errno == errno.ENOSPC:
        return f"free some disk space, or set {CACHE_ENV} to a folder on another disk"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"make the folder writable for this user, or set {CACHE_ENV} to another folder"
    return f"set {CACHE_ENV} to a folder that can be written"


def _reason(err: requests.RequestException, url: str) -> str:
    """A short, readable cause of a failed request."""
    host = urlparse(url).hostname
    text = str(err)
    if "Name or service not known" in text or "NameResolution" in text or "getaddrinfo" in text:
        return f"cannot resolve the host {host} (no network or no DNS?)"
    if "Connection refused" in text:
        return f"{host} refused the connection"
    if isinstance(err, requests.Timeout):
        return f"no answer from {host} within {TIMEOUT_S[0]} s (offline or behind a firewall?)"
    if isinstance(err, requests.ConnectionError):
        return f"no connection to {host} ({type(err).__name__})"
    return f"{type(err).__name__}: {text[:200]}"
