"""The documented examples run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import case_file

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_python_api_example_runs(tiny_checkpoint):
    ct_pair = case_file("lung-ct", "ref_image.png").parent
    out = subprocess.run(
        [sys.executable, str(DOCS / "examples" / "python_api.py"), str(tiny_checkpoint), str(ct_pair)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    assert out.startswith("chosen k = ")
    k = int(out.split()[3].rstrip(","))
    assert 1 <= k <= 3
    assert out.count("tried k=") == 3
    assert out.count("positive point") == k and out.count("negative point") == 1
