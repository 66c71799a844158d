"""The package builds: an sdist, a wheel made from it, which installs in a fresh venv and passes ``npe2 validate``.

Offline: the build uses this environment's setuptools (no build isolation), and
the fresh venv sees this environment's packages as its dependencies (a ``.pth``
file after its own site-packages), so the napari_p2sam it imports is the wheel's.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import napari_p2sam

pytest.importorskip("build")

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", ".tox", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "bench-out"
)


def run(*args, **kwargs) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # so src/ does not stand in for the wheel
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """sdist and wheel of a copy of this checkout (building writes egg-info next to the sources)."""
    tmp = tmp_path_factory.mktemp("package")
    shutil.copytree(ROOT, tmp / "src", ignore=NOT_SOURCES)
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(tmp / "src"))
    return tmp / "dist"


def test_sdist_and_wheel_carry_the_version_and_licence(dist):
    version = napari_p2sam.__version__
    sdist = dist / f"napari_p2sam-{version}.tar.gz"
    wheel = dist / f"napari_p2sam-{version}-py3-none-any.whl"

    with tarfile.open(sdist) as tar:
        assert f"napari_p2sam-{version}/LICENSE" in tar.getnames()
    with zipfile.ZipFile(wheel) as whl:
        metadata = whl.read(f"napari_p2sam-{version}.dist-info/METADATA").decode()
        assert f"napari_p2sam-{version}.dist-info/licenses/LICENSE" in whl.namelist()
        assert "napari_p2sam/napari.yaml" in whl.namelist()
    assert f"Version: {version}\n" in metadata
    assert "License-Expression: BSD-3-Clause\n" in metadata


def test_wheel_installs_in_a_fresh_venv_and_passes_npe2_validate(dist, tmp_path):
    venv.create(tmp_path / "venv", with_pip=False)
    python = tmp_path / "venv" / "bin" / "python"
    wheel = next(dist.glob("*.whl"))
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel))
    # Only now: pip would take the napari_p2sam it sees there as already installed.
    own_site = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    (own_site / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    where = run(str(python), "-c", "import napari_p2sam; print(napari_p2sam.__file__)")
    assert Path(where.strip()).is_relative_to(own_site)
    out = run(str(python), "-m", "npe2", "validate", "napari-p2sam", "--imports", cwd=tmp_path)
    assert "valid!" in out
