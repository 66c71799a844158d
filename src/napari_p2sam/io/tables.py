"""CSV tables that spreadsheets open as they are: a cell that would start a formula (``=HYPERLINK(...)``) is text."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""How a spreadsheet cell that it would run as a formula begins."""


def spreadsheet_text(cell: object) -> str:
    """``cell`` as CSV text that spreadsheets show as it is: text starting like a formula gets a leading ``'``.

    Numbers (``-0.5``) stay numbers.
    """
    text = str(cell)
    if not text.startswith(FORMULA_STARTS):
        return text
    try:
        float(text)
    except ValueError:
        return "'" + text
    return text


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write ``header`` and ``rows`` as CSV, every cell through :func:`spreadsheet_text`."""
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([spreadsheet_text(cell) for cell in row] for row in [header, *rows])


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file :func:`write_csv` wrote, as ``{column: text}``, the ``'`` it added removed."""
    with open(path, newline="") as f:
        return [{key: written_text(value) for key, value in row.items()} for row in csv.DictReader(f)]


def written_text(cell: str) -> str:
    """The text :func:`spreadsheet_text` was given for the CSV text ``cell``."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) and spreadsheet_text(cell[1:]) == cell:
        return cell[1:]
    return cell
