"""Checkpoints and --resume: interrupt a run part-way with a signal, resume it, compare with a run
that was never interrupted."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time

import pytest

from exoml import data
from exoml.cli import main

from fixtures.mnist import write_mnist

ARGS = ["--quick", "--epochs", "8", "--train-subset", "200", "--val-size", "50", "--test-subset", "50"]


@pytest.fixture
def tiny_mnist(tmp_path):
    write_mnist(tmp_path / "mnist", n_train=300, n_test=50)
    data.import_("mnist", [tmp_path / "mnist"], subset=True)
    return tmp_path


def _history(run):
    return list(csv.DictReader((run / "history.csv").open()))


def test_interrupt_then_resume_matches_uninterrupted_run(tiny_mnist):
    out = tiny_mnist / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "exoml", "run", "mnist", *ARGS, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    run = None
    while time.time() < deadline and proc.poll() is None:
        runs = list((out / "mnist").glob("2*")) if (out / "mnist").exists() else []
        if runs and (runs[0] / "history.csv").exists() and (runs[0] / "checkpoint.safetensors").exists():
            run = runs[0]
            break
        time.sleep(0.05)
    assert run is not None, "the run never reached its first checkpoint"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130
    status = json.loads((run / "status.json").read_text())["status"]
    assert status == "interrupted" and not (run / "metrics.json").exists()
    done_before = len(_history(run))
    assert 1 <= done_before < 8

    assert main(["run", "mnist", "--resume", str(run)]) == 0
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    resumed = _history(run)
    assert [int(r["epoch"]) for r in resumed] == list(range(1, 9))

    # The same settings and seed, never interrupted: same epochs, same losses (same seed stream).
    assert main(["run", "mnist", *ARGS, "--out", str(tiny_mnist / "ref")]) == 0
    ref = _history(next((tiny_mnist / "ref" / "mnist").glob("2*")))
    assert len(ref) == len(resumed)
    for a, b in zip(ref, resumed):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-4, abs=1e-5)
        assert a["step"] == b["step"]  # the same number of optimizer steps
    m_ref = json.loads(next((tiny_mnist / "ref" / "mnist").glob("2*/metrics.json")).read_text())
    m_res = json.loads((run / "metrics.json").read_text())
    assert m_ref["accuracy"] == pytest.approx(m_res["accuracy"], abs=1e-6)


def test_resume_refuses_complete_or_foreign_runs(tiny_mnist, capsys):
    out = tiny_mnist / "runs"
    assert main(["run", "mnist", *ARGS[:1], "--epochs", "1", "--out", str(out)]) == 0
    run = next((out / "mnist").glob("2*"))
    assert main(["run", "mnist", "--resume", str(run)]) == 2
    assert "already complete" in capsys.readouterr().err
    assert main(["run", "fashion-mnist", "--resume", str(run)]) == 2
    assert "not of 'fashion-mnist'" in capsys.readouterr().err


def _tiny_fit(run, interrupt_at=None):
    """fit() on random data with random augmentation (torch and numpy draws); optionally sends
    this process a SIGINT during step `interrupt_at`."""
    import numpy as np
    import torch
    from exoml.tasks.vision.common import to_float
    from exoml.toolkit import loop
    torch.manual_seed(0)
    np.random.seed(0)
    x = torch.randint(0, 256, (60, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    y = (x.float().mean((1, 2, 3)) > 127.5).long()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / 30)
    calls = {"n": 0}

    def augment(xb, yb, idx, epoch):
        calls["n"] += 1
        if calls["n"] == interrupt_at:
            signal.raise_signal(signal.SIGINT)  # arrives in the middle of a step
        return xb + 0.05 * torch.randn_like(xb) * float(np.random.random()), yb
    history = loop.fit(model, x, y, torch.nn.functional.cross_entropy, [opt], [sched], epochs=5, batch_size=10,
                       transform=to_float, augment=augment, run=run)
    return model, history


def test_signal_mid_epoch_checkpoints_between_steps_and_resume_is_exact(tmp_path):
    from exoml.toolkit.runs import Run
    ref_model, ref_history = _tiny_fit(Run(tmp_path / "ref"))
    with pytest.raises(KeyboardInterrupt):
        _tiny_fit(Run(tmp_path / "cut"), interrupt_at=15)  # step 15 = the 3rd step of epoch 3
    from safetensors import safe_open
    with safe_open(str(tmp_path / "cut" / "checkpoint.safetensors"), "pt") as fh:
        progress = json.loads(fh.metadata()["progress"])
    assert progress["step"] == 15 and progress["partial"] == {**progress["partial"], "epoch": 3, "done": 3}
    model, history = _tiny_fit(Run(tmp_path / "cut", resumed=True))
    assert [r["step"] for r in history] == [r["step"] for r in ref_history] == [6, 12, 18, 24, 30]
    for a, b in zip(history, ref_history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert torch_equal(p, q)


def torch_equal(a, b) -> bool:
    import torch
    return bool(torch.allclose(a, b, rtol=0, atol=1e-6))
