"""What a non-editable install gets: the wheel holds every file the package reads at run time."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_the_package_data(tmp_path):
    """measured.json (the times `exoml run` prints) and the web app's static files are not Python
    modules: only pyproject's package-data puts them in a wheel. Every non-Python file under
    src/exoml that git tracks must be in it."""
    tracked = subprocess.run(["git", "ls-files", "src/exoml"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    data = {p.removeprefix("src/") for p in tracked.stdout.split() if not p.endswith(".py")}
    assert "exoml/measured.json" in data
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    tree = tmp_path / "tree"  # a copy of the checkout: building writes build/ and egg-info beside the sources
    for f in files:
        if (ROOT / f).is_file():
            (tree / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, tree / f)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(tree)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(tmp_path.glob("exoml-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert data <= names, sorted(data - names)
