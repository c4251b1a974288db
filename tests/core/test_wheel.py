"""The wheel carries its resources: a non-editable install had no window icon."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # a clean copy: a stale build/ of the checkout must not put in what the sources would not
    src = tmp_path_factory.mktemp("src") / "prismq-desktop"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__",
                                                            ".*_cache", "docs", "benchmarks", "tests"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
                         capture_output=True, text=True, timeout=300, cwd=out)
    assert res.returncode == 0, res.stderr[-2000:]
    (whl,) = out.glob("prismq_desktop-*.whl")
    return whl


@pytest.mark.slow
def test_the_wheel_holds_the_icon_and_the_function_runner(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "prismq_desktop/resources/prismq.png" in names
    assert "prismq_desktop/core/functions/runner.py" in names  # a child interpreter runs this file
    assert zipfile.ZipFile(wheel).read("prismq_desktop/resources/prismq.png").startswith(PNG_MAGIC)


@pytest.mark.slow
def test_the_installed_package_finds_its_icon(wheel, tmp_path):
    target = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    # -S: no site-packages, so the editable checkout cannot answer instead of the installed copy
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import prismq_desktop; "
             "from prismq_desktop.resources import icon_path; p = icon_path(); "
             "print(prismq_desktop.__file__); print(p); print(p.read_bytes()[:8] == bytes.fromhex('89504e470d0a1a0a'))")
    out = subprocess.run([sys.executable, "-S", "-c", probe, str(target)], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    pkg, icon, is_png = out.stdout.splitlines()
    assert pkg.startswith(str(target)) and icon.startswith(str(target))
    assert is_png == "True"
