"""Paths as users type them."""

from __future__ import annotations

import os
from pathlib import Path


def user_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` and environment variables (``$HOME``, ``${VAR}``, ``%VAR%`` on Windows) expanded."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(path))))


def in_words(err: OSError) -> str:
    """The cause of a failed file operation in words, e.g. 'permission denied' (not an errno)."""
    return (err.strerror or str(err) or type(err).__name__).lower()
