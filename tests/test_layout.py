"""The package layout of docs/architecture.md ("Which package may import which"), checked on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "napari_p2sam"
GUI = {"qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "vispy"}

# package → (our packages it may import, third-party roots it must never import)
RULES = {
    "io": ({"io"}, GUI | {"torch"}),
    "models": ({"models", "io"}, GUI),
    "engine": ({"engine", "models", "io"}, GUI),
    "evaluation": ({"evaluation", "engine", "models", "io"}, GUI),
    "layers": ({"layers", "engine"}, GUI | {"torch"}),
    "worker": ({"worker", "engine", "models", "io"}, GUI),
    "ui": ({"ui", "layers", "worker", "engine", "models", "io", "score_figure"}, {"torch"}),
    "batch": ({"batch", "engine", "models", "io", "score_figure"}, GUI),
    "cli": ({"cli", "engine", "models", "io", "evaluation", "batch", "launch"}, GUI),
}


def imports_of(path: Path) -> list[tuple[str, int]]:
    """``(absolute module name, line)`` of every import in ``path``, at any depth (function-level too)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    here = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                name = ".".join(base + ((node.module,) if node.module else ()))
            else:
                name = node.module or ""
            found.append((name, node.lineno))
    return found


def modules_of(package: str) -> list[Path]:
    return sorted((PACKAGE / package).glob("*.py"))


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_only_what_the_layout_allows(package):
    allowed, forbidden = RULES[package]
    assert modules_of(package), f"no package {package}"
    broken = []
    for path in modules_of(package):
        for name, line in imports_of(path):
            root, _, rest = name.partition(".")
            if root == "napari_p2sam":
                ours = rest.partition(".")[0]
                if ours and ours not in allowed:
                    broken.append(f"{path.name}:{line} imports napari_p2sam.{ours}")
            elif root in forbidden:
                broken.append(f"{path.name}:{line} imports {name}")
    assert not broken, f"{package}/ breaks the layout: " + "; ".join(broken)


def test_the_modules_napari_process_imports_bring_no_torch():
    """What the dock imports in napari's process (layers, the worker's napari side, the stack check) stays torch-free."""
    modules = [
        "napari_p2sam.layers.job",
        "napari_p2sam.layers.output",
        "napari_p2sam.worker.engine_process",
        "napari_p2sam.worker.model_choice",
        "napari_p2sam.worker.messages",
        "napari_p2sam.engine.stack_job",
        "napari_p2sam.engine.quality",
        "napari_p2sam.batch.manifest",
    ]
    script = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    script += "print(sorted(m for m in ('torch', 'segment_anything', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
