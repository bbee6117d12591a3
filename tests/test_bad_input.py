"""The bad-input corpus: hostile or broken inputs given to the installed `exoml` command.

Each case prepares files in a scratch folder, runs the console script there (own data home, own
runs folder) and checks the exit code, that stderr's last line is one clean `exoml: error: ...`
message naming the problem, and that no Python traceback was printed. Run the corpus alone with
`python -m pytest -m faults`.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fixtures.mnist import write_mnist
from test_console import console_script

pytestmark = pytest.mark.faults


def _mnist(tmp: Path, name: str = "m") -> Path:
    write_mnist(tmp / name, n_train=30, n_test=10)
    return tmp / name


def _empty_idx(tmp):
    d = _mnist(tmp)
    (d / "train-images-idx3-ubyte.gz").unlink()
    (d / "train-images-idx3-ubyte").write_bytes(b"")
    return ["data", "import", "mnist", str(d), "--subset"]


def _symlink_loop(tmp):
    d = _mnist(tmp)
    os.symlink(d / "a", d / "b")
    os.symlink(d / "b", d / "a")
    return ["data", "import", "mnist", str(d), "--subset"]


def _empty_dir(tmp):
    (tmp / "empty").mkdir()
    return ["data", "import", "all", str(tmp / "empty")]


def _not_a_dir(tmp):
    return ["data", "import", "all", str(tmp / "nowhere")]


def _imported(tmp):
    subprocess.run([str(console_script()), "data", "import", "mnist", str(_mnist(tmp)), "--subset"], cwd=tmp,
                   env=_env(tmp), check=True, capture_output=True)
    return tmp / "home" / "mnist" / "processed"


def _meta_is_a_list(tmp):
    (_imported(tmp) / "meta.json").write_text("[1, 2]")
    return ["data", "verify", "mnist"]


def _pixels_flipped(tmp):
    cache = _imported(tmp)
    x = np.load(cache / "x_train.npy")
    x[3, 5, 5] ^= 0xFF
    np.save(cache / "x_train.npy", x)
    return ["data", "verify", "mnist"]


def _label_out_of_range(tmp):
    cache = _imported(tmp)
    y = np.load(cache / "y_train.npy")
    y[5] = 12
    np.save(cache / "y_train.npy", y)
    return ["data", "verify", "mnist"]


def _boston_swapped(tmp):
    from fixtures.boston import ROWS, write_housing
    rows = [[r[13]] + r[1:13] + [r[0]] for r in ROWS]  # CRIM and MEDV swapped
    return ["data", "import", "boston", str(write_housing(tmp / "b", rows)), "--subset"]


# (name, prepare(tmp) -> argv, exit code, text the one-line message must hold; None: must succeed)
CORPUS = [
    ("empty IDX file", _empty_idx, 2, "the file is empty"),
    ("symlink loop inside an import folder", _symlink_loop, 0, None),
    ("import all from an empty folder", _empty_dir, 2, "no dataset found under"),
    ("import all from a missing folder", _not_a_dir, 2, "is not one"),
    ("meta.json holding a list", _meta_is_a_list, 2, "meta.json does not describe its arrays"),
    ("pixel bytes changed in the cache", _pixels_flipped, 2, "changed since it was imported"),
    ("a label out of range in the cache", _label_out_of_range, 2, "y_train.npy changed since it was imported"),
    ("Boston with CRIM and MEDV swapped", _boston_swapped, 2, "is outside its range"),
]


def _env(tmp: Path) -> dict:
    return {**os.environ, "EXOML_DATA": str(tmp / "home"), "MPLBACKEND": "Agg"}


@pytest.mark.parametrize("name, prepare, code, message", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_corpus(tmp_path, name, prepare, code, message):
    argv = prepare(tmp_path)
    proc = subprocess.run([str(console_script()), *argv], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    assert proc.returncode == code, f"exit {proc.returncode}\n{out[-2000:]}"
    if message is not None:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.stdout.strip().splitlines()[-1]
        assert message in last and "\n" not in last, out[-2000:]
        assert "exoml: error:" in proc.stderr or "FAILED" in proc.stdout, out[-2000:]
