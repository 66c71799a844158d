"""How an error names the setting that fixes it, so each front end can say it in its own words.

Engine, io and model messages say what to do in plain words ("choose another
output"); the settings they mean are attached by their Python keyword names
(``out``, ``skip_unreadable``), and a front end adds its own spelling where it
catches the error: the command line its flags (``--out``, ``--skip-unreadable``).
"""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


def for_settings(err: E, *settings: str) -> E:
    """``err`` with the ``settings`` that fix it (Python keyword names) attached; returns it, to raise."""
    err.settings = settings
    return err


def settings_of(err: BaseException) -> tuple[str, ...]:
    """The settings attached by :func:`for_settings` (none if not)."""
    return getattr(err, "settings", ())
