"""A file's sha256, remembered beside it so that an unchanged file is hashed once.

The record ``<file>.sha256.json`` holds the digest and the file's stamp when
it was hashed: size, modification time and change time (ns). It answers for
the file only while the stamp is the same; any write, replacement or
``touch`` makes :func:`remembered_sha256` return None and the file is hashed
again. (The change time cannot be set by hand, so a file edited and then given
back its old modification time is still hashed again.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

RECORD_SUFFIX = ".sha256.json"
BLOCK_BYTES = 1 << 20


def record_path(path: Path) -> Path:
    """Where the sha256 of ``path`` is remembered."""
    return path.with_name(path.name + RECORD_SUFFIX)


def sha256_of(path: Path) -> str:
    """Hash every byte of ``path`` (hex sha256) and remember the result."""
    stamp = _stamp(path)  # taken first: a write while hashing changes the stamp, so the record never matches
    digest = hashlib.sha256()
    hash_into(path, digest)
    remember_sha256(path, digest.hexdigest(), stamp)
    return digest.hexdigest()


def remembered_sha256(path: Path) -> str | None:
    """The sha256 recorded for ``path`` as it is now, or None (no record, or the file changed since)."""
    try:
        record = json.loads(record_path(path).read_text())
        return record["sha256"] if record["stamp"] == _stamp(path) else None
    except (OSError, ValueError, KeyError, TypeError):  # no record, or an unreadable one: hash the file again
        return None


def remember_sha256(path: Path, sha256: str, stamp: list[int] | None = None) -> None:
    """Record ``sha256`` for ``path`` (with its stamp now, or ``stamp``).

    Skipped where the folder cannot be written: the file is then hashed
    again next time, nothing else changes.
    """
    try:
        record_path(path).write_text(json.dumps({"sha256": sha256, "stamp": stamp or _stamp(path)}))
    except OSError:
        pass


def forget_sha256(path: Path) -> None:
    """Remove the record of ``path`` (when the file is moved away)."""
    record_path(path).unlink(missing_ok=True)


def hash_into(path: Path, digest) -> None:
    """Feed every byte of ``path`` to ``digest`` (a hashlib object)."""
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            digest.update(block)


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
