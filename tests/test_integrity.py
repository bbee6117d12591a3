"""Damaged files are refused, never used: weights checked against their content hash and for NaN,
dataset caches against the hashes and label ranges recorded at import."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, safe_open, save_file

from exoml import data
from exoml.cli import main
from exoml.errors import ExomlError
from exoml.toolkit import runs
from exoml.toolkit.weights import load_state

from fixtures.mnist import write_mnist


def _saved_linear(tmp_path):
    model = torch.nn.Linear(4, 3)
    with runs.new_run("demo", {}, tmp_path / "runs") as run:
        path = run.save_weights(model.state_dict(), meta={"task": "demo"})
        runs.finish(run, {}, "# report\n")
    return model, path


def _rewrite(path, change):
    """Rewrite a weights file with its metadata kept and its tensors changed by `change`."""
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    state = {k: change(v.clone()) for k, v in load_file(str(path)).items()}
    save_file(state, str(path), metadata=meta)


def test_intact_weights_load(tmp_path):
    model, path = _saved_linear(tmp_path)
    fresh = torch.nn.Linear(4, 3)
    assert load_state(fresh, path, "demo")["content_sha256"]
    assert torch.equal(fresh.weight, model.weight)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.fill_(float("nan")), "damaged"),                       # every float set to NaN
    (lambda t: t.add_(1e-3), "does not match the hash"),                 # bytes changed, values finite
])
def test_damaged_weights_are_refused(tmp_path, change, message):
    _, path = _saved_linear(tmp_path)
    _rewrite(path, change)
    with pytest.raises(ExomlError, match=message):
        load_state(torch.nn.Linear(4, 3), path, "demo")


def test_nan_weights_without_a_hash_are_refused(tmp_path):
    path = tmp_path / "old.safetensors"  # a file written without the hash (e.g. by another tool)
    save_file({"weight": torch.full((3, 4), float("nan")), "bias": torch.zeros(3)}, str(path))
    with pytest.raises(ExomlError, match="non-finite values in weight"):
        load_state(torch.nn.Linear(4, 3), path)


@pytest.fixture
def tiny_mnist_cache(tmp_path):
    src = tmp_path / "mnist"
    write_mnist(src, n_train=30, n_test=10)
    assert main(["data", "import", "mnist", str(src), "--subset"]) == 0
    return data.get("mnist").processed


def test_verify_sees_changed_pixels(tiny_mnist_cache, capsys):
    x = np.load(tiny_mnist_cache / "x_train.npy")
    x[0, 10, 10] ^= 0xFF
    np.save(tiny_mnist_cache / "x_train.npy", x)
    assert main(["data", "verify", "mnist"]) == 2
    assert "x_train.npy changed since it was imported" in capsys.readouterr().out


def test_labels_out_of_range_are_refused(tiny_mnist_cache, capsys):
    y = np.load(tiny_mnist_cache / "y_train.npy")
    y[5] = 12
    np.save(tiny_mnist_cache / "y_train.npy", y)
    data._loaded.clear()
    with pytest.raises(data.DataError, match="labels outside 0..9"):
        data.load("mnist")
    assert main(["data", "verify", "mnist"]) == 2


@pytest.mark.parametrize("meta", [[1, 2], {"counts": {}}, {"arrays": [1]}, {"arrays": {"x_train": 5}}])
def test_a_damaged_meta_json_is_a_clean_error(tiny_mnist_cache, capsys, meta):
    (tiny_mnist_cache / "meta.json").write_text(json.dumps(meta))
    assert main(["data", "verify", "mnist"]) == 2
    out = capsys.readouterr().out
    assert "meta.json does not describe its arrays" in out and "Traceback" not in out


def test_run_files_follow_the_umask(tmp_path):
    """config, status, metrics, report and weights get the same mode as the plots: 0666 less the umask."""
    import os
    old = os.umask(0o022)
    try:
        _, weights = _saved_linear(tmp_path)
        run = weights.parent
        modes = {p.name: p.stat().st_mode & 0o777 for p in run.iterdir() if p.is_file()}
    finally:
        os.umask(old)
    assert {"config.json", "status.json", "metrics.json", "report.md", "model.safetensors"} <= set(modes)
    assert set(modes.values()) == {0o644}, modes


def test_a_run_folder_has_one_writer(tmp_path):
    """While a run is written its folder is locked: a second writer (--resume of a live run) is
    refused, and a 'running' status whose lock is free is recognisably a dead run."""
    with runs.new_run("demo", {}, tmp_path / "runs") as run:
        assert runs.is_live(run.path)
        with pytest.raises(ExomlError, match="being written by another process"):
            with runs.new_run("demo", {}, resume=run.path):
                pass
        status = json.loads((run.path / "status.json").read_text())
        assert status["status"] == "running" and status["pid"] > 0
    assert not runs.is_live(run.path)  # the writer is gone: its status (failed/interrupted/running) is final


def test_out_that_is_a_file_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["run", "iris", "--quick", "--out", str(tmp_path / "afile")]) == 2
    assert "cannot create a run folder under" in capsys.readouterr().err
