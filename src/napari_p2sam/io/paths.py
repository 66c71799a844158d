"""Paths as users type them."""

from __future__ import annotations

import os
from pathlib import Path


def user_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` and environment variables (``$HOME``, ``${VAR}``, ``%VAR%`` on Windows) expanded."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(path))))
