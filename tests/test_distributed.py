"""Data-parallel training under torchrun, on the CPU with the gloo backend and 2 processes."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from exoml import data
from exoml.cli import main

from fixtures.mnist import write_mnist

FIXTURES = Path(__file__).parent / "fixtures"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _env() -> dict:
    # one thread per process: two ranks on a 2-core machine; no torchrun variables leak in
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(FIXTURES.parent), env.get("PYTHONPATH", "")])}


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _relative_distance(a: dict, b: dict) -> float:
    keys = [k for k in a if a[k].is_floating_point() and "running" not in k]
    num = sum(((a[k] - b[k]) ** 2).sum() for k in keys)
    return float((num / sum((a[k] ** 2).sum() for k in keys)).sqrt())


@pytest.fixture(scope="module")
def ddp_fit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp_fit")
    script = str(FIXTURES / "ddp_fit.py")
    _run([sys.executable, script, str(tmp / "one")], tmp)
    _run([*TORCHRUN, script, str(tmp / "two")], tmp)
    return tmp


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fit_on_two_ranks_equals_one_process(ddp_fit, reduction):
    """Without BatchNorm or random augmentation, 2 ranks x half the batch = 1 process x the batch."""
    one = load_file(ddp_fit / f"one-{reduction}.safetensors")
    two = load_file(ddp_fit / f"two-{reduction}.safetensors")
    with safe_open(str(ddp_fit / f"two-{reduction}.safetensors"), "pt") as fh:
        meta = fh.metadata()
    assert meta["world"] == "2"
    start = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 64, 4))
    moved = sum((one[k] - v).abs().max() for k, v in start.state_dict().items())
    assert moved > 1e-2  # it trained (so the comparison below means something)
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5)


@pytest.fixture
def tiny_mnist(tmp_path):
    write_mnist(tmp_path / "raw", n_train=700, n_test=120)
    data.import_("mnist", [tmp_path / "raw"], subset=True)
    return tmp_path


# no dropout and no random shifts: the two runs then differ only by per-rank BatchNorm statistics
ARGS = ["run", "mnist", "--quick", "--shift", "0", "--dropout", "0", "--epochs", "3", "--device", "cpu"]


def test_torchrun_mnist_matches_single_process(tiny_mnist):
    _run([*TORCHRUN, "-m", "exoml", *ARGS, "--out", "ddp"], tiny_mnist)
    runs = list((tiny_mnist / "ddp" / "mnist").iterdir())
    assert len(runs) == 1  # rank 0 wrote one folder; rank 1 wrote nothing
    (run,) = runs
    assert not list(tiny_mnist.glob("*.tmp")) and not (tiny_mnist / "runs").exists()
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["n_test"] == 120
    ddp_hist = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in ddp_hist] == [1, 2, 3]  # one row per epoch, not one per rank

    for seed, out in ((0, "one"), (1, "other-seed")):
        assert main([*ARGS, "--seed", str(seed), "--out", str(tiny_mnist / out)]) == 0
    one = next((tiny_mnist / "one" / "mnist").iterdir())
    one_hist = list(csv.DictReader((one / "history.csv").open()))
    for a, b in zip(ddp_hist, one_hist):  # the same global batches and schedule
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=0.03)
    w_ddp, w_one = load_file(run / "model.safetensors"), load_file(one / "model.safetensors")
    w_other = load_file(next((tiny_mnist / "other-seed" / "mnist").iterdir()) / "model.safetensors")
    # much closer to the single-process run than another seed is
    assert _relative_distance(w_ddp, w_one) < 0.25 * _relative_distance(w_other, w_one)
    assert json.loads((one / "metrics.json").read_text())["processes"] == 1


def test_tasks_without_data_parallel_refuse_torchrun(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["run", "boston", "--dry-run"]) == 2
    assert "does not train data-parallel" in capsys.readouterr().err


def test_global_batch_must_split_over_ranks(monkeypatch):
    from exoml.toolkit import distributed
    from exoml.errors import ExomlError
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    assert distributed.local_batch(96) == 32
    with pytest.raises(ExomlError, match="does not split evenly over 3"):
        distributed.local_batch(100)


def test_non_finite_loss_names_the_step_and_keeps_the_checkpoint(tmp_path):
    from exoml.toolkit.runs import Run
    from exoml.tasks.vision.common import to_float
    from exoml.toolkit import loop
    from exoml.toolkit.train import TrainingError
    torch.manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8)
    y = torch.randint(0, 2, (40,))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    calls = {"n": 0}

    def loss_fn(out, target):  # finite for 6 steps (one epoch and a half), then NaN
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(out, target)
        return loss * float("nan") if calls["n"] == 7 else loss
    run = Run(tmp_path)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainingError, match=r"at step 7 \(epoch 2\); the checkpoint of epoch 1 is kept"):
        loop.fit(model, x, y, loss_fn, [opt], [], epochs=3, batch_size=10, transform=to_float, run=run)
    with safe_open(str(tmp_path / "checkpoint.safetensors"), "pt") as fh:
        assert json.loads(fh.metadata()["progress"])["epoch"] == 1  # the last good epoch
