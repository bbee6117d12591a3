"""The installed `exoml` console script, run as a user runs it: in a subprocess, from another folder.

The rest of the suite calls the CLI in-process or through `python -m exoml`, both of which load
modules (runpy loads importlib.util, pytest loads much more) that a bare console script does not.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from exoml.tasks import names

TASKS = names()

COMMANDS = [
    ["--help"], ["list"], ["data", "list"],
    *[["run", task, "--help"] for task in TASKS], ["run", "all", "--help"],
    ["predict", "--help"], ["tune", "--help"], ["report", "--help"], ["serve", "--help"],
]


def console_script() -> Path:
    """The `exoml` that the shell finds for this interpreter: its own bin folder first (an active
    virtual environment), then PATH."""
    here = Path(sys.executable).parent / "exoml"
    found = here if here.exists() else shutil.which("exoml")
    if found is None:
        pytest.fail("no `exoml` console script: install the package (pip install -e .)")
    return Path(found)


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(console_script()), *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def _check(argv, proc):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exoml {' '.join(argv)} -> exit {proc.returncode}\n{out[-3000:]}"
    assert "Traceback" not in out, f"exoml {' '.join(argv)} printed a traceback\n{out[-3000:]}"
    assert proc.stdout.strip(), f"exoml {' '.join(argv)} printed nothing"


def test_console_script_commands(tmp_path):
    with ThreadPoolExecutor(max_workers=2) as pool:  # 2 cores
        results = list(pool.map(lambda argv: (argv, _run(argv, tmp_path)), COMMANDS))
    for argv, proc in results:
        _check(argv, proc)
    listed = results[1][1].stdout
    assert all(task in listed for task in TASKS)
    assert not any(tmp_path.iterdir()), "a --help or list command wrote into the current folder"


@pytest.mark.parametrize("argv", [["list"], ["run", "iris", "--help"]])
def test_console_script_without_site_hooks(tmp_path, argv):
    """The same script with no .pth start-up code (`python -S`): another package's start-up hook
    must not be what makes a command work. The module search path is passed on explicitly."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "-S", str(console_script()), *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    _check(argv, proc)


def test_deprecations_in_exoml_fail_the_suite():
    """pyproject's filterwarnings turns a deprecation attributed to an exoml module into an error."""
    import warnings
    with pytest.raises(DeprecationWarning):
        warnings.warn_explicit("old API", DeprecationWarning, "x.py", 1, module="exoml.tasks.vision.mnist")
    with pytest.raises(FutureWarning):
        warnings.warn_explicit("old API", FutureWarning, "x.py", 1, module="exoml")
    with warnings.catch_warnings(record=True):  # another package's own deprecations stay warnings
        warnings.warn_explicit("old API", DeprecationWarning, "x.py", 1, module="somelib")
