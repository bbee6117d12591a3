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
