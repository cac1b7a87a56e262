"""A non-editable ``pip install .`` into a fresh venv installs models/ and postprocess/ inside the vcam namespace
(no generic top-level packages in site-packages) and the installed copy runs."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_non_editable_install_imports_and_runs(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # Reuse this environment's already-installed dependencies (no downloads); vcam itself is installed for real.
    (site / "outer-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(REPO)],
                   check=True, cwd=tmp_path)
    assert (site / "vcam" / "models").is_dir() and (site / "vcam" / "postprocess").is_dir()
    assert not (site / "models").exists() and not (site / "postprocess").exists()
    assert list((site / "vcam" / "models").rglob("*.onnx")), "model files were not installed"
    assert (site / "vcam" / "assets" / "demo.mp4").is_file()
    # The runtime only: no training, conversion, export or evaluation code is installed.
    installed_py = {p.relative_to(site / "vcam").as_posix() for p in (site / "vcam").rglob("*.py")}
    workshop = sorted(p for p in installed_py if p.startswith("models/") and not p.endswith("__init__.py"))
    assert not workshop, f"training code in the wheel: {workshop}"
    assert not (site / "vcam" / "evaluation").exists() and not (site / "tools").exists()
    assert not list(site.glob("vcam/models/**/*.md"))
    script = (
        "import vcam, vcam.models, vcam.postprocess, pathlib;"
        "assert 'site-packages' in vcam.__file__, vcam.__file__;"
        "from vcam.bench import run_bench;"
        "r = run_bench(frames=5);"
        "assert r['pipeline_ms'] > 0, r; print('ok', r['segmenter'])"
    )
    out = subprocess.run([str(py), "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
    models = subprocess.run([str(venv / "bin" / "vcam"), "models", "--json"], cwd=tmp_path, capture_output=True,
                            text=True)
    assert models.returncode == 0 and '"default_segmenter"' in models.stdout, models.stderr
