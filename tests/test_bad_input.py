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


def _args(*argv):
    return lambda tmp: list(argv)


def _config_file(content: str, *argv):
    def prepare(tmp):
        (tmp / "c.json").write_text(content)
        return [*argv, "--config", str(tmp / "c.json")]
    return prepare


def _space_file(content: str):
    def prepare(tmp):
        (tmp / "space.json").write_text(content)
        return ["tune", "mnist", "--quick", "--trials", "1", "--space", str(tmp / "space.json"), "--out", str(tmp)]
    return prepare


# (name, prepare(tmp) -> argv, exit code, text the one-line message must hold; None: must succeed)
CORPUS = [
    ("--epochs 0", _args("run", "mnist", "--quick", "--epochs", "0"), 2, "epochs: 0 is out of range"),
    ("--epochs -1", _args("run", "mnist", "--quick", "--epochs", "-1"), 2, "out of range"),
    ("--batch-size 0", _args("run", "mnist", "--quick", "--batch-size", "0"), 2, "batch_size: 0 is out of range"),
    ("--lr nan", _args("run", "mnist", "--quick", "--lr", "nan"), 2, "not a finite number"),
    ("--lr -1", _args("run", "mnist", "--quick", "--lr", "-1"), 2, "lr: -1 is out of range"),
    ("--dropout 2", _args("run", "mnist", "--quick", "--dropout", "2"), 2, "dropout: 2 is out of range"),
    ("iris --k 0", _args("run", "iris", "--k", "0"), 2, "k: 0 is out of range"),
    ("--seed -5", _args("run", "iris", "--seed", "-5"), 2, "seed: -5 is out of range"),
    ("iris --device foo", _args("run", "iris", "--device", "foo"), 2, "'foo' is not one of"),
    ("a config file holding a list", _config_file("[1, 2, 3]", "run", "iris"), 2, "c.json"),
    ("a config file holding {config: 5}", _config_file('{"config": 5}', "run", "iris"), 2, "config"),
    ("batch_size 64.7 in a config file", _config_file('{"batch_size": 64.7}', "run", "mnist", "--quick"), 2,
     "batch_size"),
    ("compare --seeds 0", _args("compare", "mnist", "--seeds", "0", "--optimizer", "adam", "sgd", "--quick"), 2,
     "--seeds must be at least 1"),
    ("compare --seeds -2", _args("compare", "mnist", "--seeds", "-2", "--optimizer", "adam", "sgd", "--quick"), 2,
     "--seeds must be at least 1"),
    ("tune: a missing space file", _args("tune", "mnist", "--quick", "--space", "/nonexistent/space.json"), 2,
     "cannot read search space"),
    ("tune: an entry without low", _space_file('{"lr": {"type": "float", "high": 0.1}}'), 2, "float needs low"),
    ("tune: an entry that is a number", _space_file('{"lr": 5}'), 2, "must be a mapping"),
    ("tune: low above high", _space_file('{"lr": {"type": "float", "low": 0.1, "high": 0.01}}'), 2,
     "low 0.1 is above high 0.01"),
    ("tune boston (no validation metric)", _args("tune", "boston", "--trials", "1"), 2, "cannot be tuned"),
    ("tune --storage notadb://x", _args("tune", "mnist", "--quick", "--trials", "1", "--storage", "notadb://x"), 2,
     "storage"),
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
