"""`exoml tune` and `exoml compare` on the mnist task with tiny generated data."""
from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os

import pytest

from exoml import data
from exoml.cli import main

from fixtures.mnist import write_mnist


QUICK = ["--quick", "--epochs", "2", "--train-subset", "200", "--val-size", "50", "--test-subset", "50"]


@pytest.fixture
def tiny_mnist(tmp_path):
    write_mnist(tmp_path / "mnist", n_train=200, n_test=50)
    data.import_("mnist", [tmp_path / "mnist"], subset=True)
    return tmp_path


def _trials(db: str) -> list:
    import optuna
    return optuna.load_study(study_name="s", storage=db).trials


def _completed_trials(db) -> int:
    """Completed trials in a study database that another process may still be creating: read with
    plain sqlite3, read-only (opening it with optuna would race the writer's schema set-up)."""
    import sqlite3
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:  # the schema is not there yet, or the file is locked for a moment
        return 0


def test_tune_study_resumes_and_best_config_runs(tiny_mnist, capsys):
    out = tiny_mnist / "runs"
    args = ["tune", "mnist", "--study", "s", "--out", str(out), *QUICK]
    assert main([*args, "--trials", "2"]) == 0
    folder = out / "mnist" / "tune-s"
    db = f"sqlite:///{folder / 'study.db'}"
    assert len(_trials(db)) == 2
    # "Interrupted" after 2 of 3 trials: running again with --trials 3 adds exactly one.
    assert main([*args, "--trials", "3"]) == 0
    trials = _trials(db)
    assert len(trials) == 3 and len({t.number for t in trials}) == 3
    assert all(t.user_attrs.get("metric") == "val_accuracy" for t in trials if t.state.name == "COMPLETE")
    best = json.loads((folder / "best_config.json").read_text())
    assert "lr" in best and (folder / "report.md").exists() and (folder / "optimization_history.png").exists()
    # The best config retrains as an ordinary run, evaluated once on the test split.
    assert main(["run", "mnist", "--config", str(folder / "best_config.json"), "--out", str(out)]) == 0
    cfg = json.loads(sorted((out / "mnist").glob("2*/config.json"))[-1].read_text())["config"]
    assert cfg["lr"] == pytest.approx(best["lr"])
    # The study shows up in the HTML report, its plots copied beside the page.
    assert main(["report", "--runs", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    assert "Tuning mnist" in page and (out / "report" / "img" / "mnist" / "tune-s" / "optimization_history.png").exists()


def _worker(home: str, out: str, n: int) -> None:
    os.environ["EXOML_DATA"] = home
    from exoml.cli import main as m
    assert m(["tune", "mnist", "--study", "s", "--trials", str(n), "--out", out, *QUICK]) == 0


def test_tune_two_workers_share_one_sqlite_study(tiny_mnist):
    out = tiny_mnist / "runs"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(os.environ["EXOML_DATA"], str(out), 3)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert all(p.exitcode == 0 for p in procs)
    trials = _trials(f"sqlite:///{out / 'mnist' / 'tune-s' / 'study.db'}")
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    # Neither lost nor duplicated: distinct numbers, each with its own run folder.
    assert len({t.number for t in trials}) == len(trials) and len(finished) >= 3
    runs = [t.user_attrs["run"] for t in finished if "run" in t.user_attrs]
    assert len(runs) == len(set(runs))


def test_compare_two_optimizers(tiny_mnist):
    out = tiny_mnist / "runs"
    assert main(["compare", "mnist", "--optimizer", "adam", "sgd", "--out", str(out), *QUICK]) == 0
    folder = next((out / "mnist").glob("compare-*"))
    rows = list(csv.DictReader((folder / "compare.csv").open()))
    assert [r["variant"] for r in rows] == ["optimizer=adam", "optimizer=sgd"]
    assert all(0.0 <= float(r["mean"]) <= 1.0 for r in rows)
    assert (folder / "curves.png").stat().st_size > 1000


def test_compare_rejects_bad_variant_before_training(tiny_mnist, capsys):
    out = tiny_mnist / "runs"
    with pytest.raises(SystemExit):
        main(["compare", "mnist", "--optimizer", "adam", "lbfgs", "--out", str(out), *QUICK])
    assert not (out / "mnist").exists() or not list((out / "mnist").glob("compare-*/runs/*/*/metrics.json"))
    assert main(["compare", "mnist", "--out", str(out)]) == 2
    assert "nothing to compare" in capsys.readouterr().err


def test_tune_resumes_after_a_real_interruption(tiny_mnist):
    """Kill a study mid-way (SIGINT, as Ctrl-C), run the same command again: it completes."""
    import signal
    import subprocess
    import sys
    import time
    out = tiny_mnist / "runs"
    cmd = [sys.executable, "-m", "exoml", "tune", "mnist", "--study", "s", "--trials", "3", "--out", str(out), *QUICK]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "mnist" / "tune-s" / "study.db"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if _completed_trials(db):
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    finished = lambda: [t for t in _trials(f"sqlite:///{db}") if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished()) >= 1  # (the signal may land after the last trial: then nothing is left to do)
    assert main(cmd[3:]) == 0
    assert len(finished()) == 3 and (out / "mnist" / "tune-s" / "best_config.json").exists()


def test_space_file_overrides_and_is_checked(tiny_mnist, capsys):
    out = tiny_mnist / "runs"
    space = tiny_mnist / "space.json"
    space.write_text(json.dumps({"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}))
    assert main(["tune", "mnist", "--study", "sp", "--trials", "1", "--space", str(space), "--out", str(out), *QUICK]) == 0
    best = json.loads((out / "mnist" / "tune-sp" / "best_config.json").read_text())
    assert 1e-3 <= best["lr"] <= 1e-2
    space.write_text(json.dumps({"no_such_setting": {"type": "int", "low": 1, "high": 2}}))
    assert main(["tune", "mnist", "--study", "bad", "--space", str(space), "--out", str(out)]) == 2
    assert "unknown settings" in capsys.readouterr().err


@pytest.fixture
def tiny_cifar10(tmp_path, monkeypatch):
    from fixtures.cifar import write_cifar_binary
    monkeypatch.setenv("EXOML_DATA", str(tmp_path / "data"))
    data._loaded.clear()
    data.import_("cifar10", [write_cifar_binary(tmp_path / "raw", n_per_class=20, n_test_per_class=2)[0]],
                 subset=True)
    yield tmp_path
    data._loaded.clear()


def test_tune_holds_out_a_validation_split_where_the_default_trains_on_everything(tiny_cifar10, capsys):
    """cifar10 trains on all its training images by default (nothing is chosen at run time); its tuning
    trials hold out 5,000 (capped by the split at a fifth of this tiny training set), and its
    best_config.json keeps the plain default. A flag (in any spelling argparse takes) or a profile
    that sets the split wins over the trials' setting."""
    out = tiny_cifar10 / "runs"
    small = ["--epochs", "1", "--widths", "8", "16", "16", "--batch-size", "40", "--tta", "none", "--out", str(out)]

    def trial_config(study: str) -> dict:
        (trial,) = (out / "cifar10" / f"tune-{study}" / "trials" / "cifar10").iterdir()
        assert "val_accuracy" in (trial / "history.csv").read_text()
        return json.loads((trial / "config.json").read_text())["config"]

    assert main(["tune", "cifar10", "--study", "s", "--trials", "1", "--profile", "cpu", *small]) == 0
    assert "every trial: --val-size 5000" in capsys.readouterr().out
    assert trial_config("s")["val_size"] == 5000
    folder = out / "cifar10" / "tune-s"
    assert json.loads((folder / "best_config.json").read_text())["val_size"] == 0
    assert "Every trial also took `val_size` = 5000" in (folder / "report.md").read_text()
    assert main(["tune", "cifar10", "--study", "q", "--trials", "1", "--quick", *small]) == 0
    assert trial_config("q")["val_size"] == 100  # the quick profile's own split
    # Named on the command line, the setting is the user's: no validation split, nothing to tune on.
    for flags in (["--val-size=0"], ["--val", "0"]):
        assert main(["tune", "cifar10", "--study", "t", "--trials", "1", "--profile", "cpu", *flags, *small]) != 0
        assert "no trial completed" in capsys.readouterr().err


def test_trial_settings_must_name_settings_of_the_task():
    from exoml.tasks.contract import Tuning
    from exoml.tasks import get
    import dataclasses
    with pytest.raises(ValueError, match="unknown settings: val_sise"):
        dataclasses.replace(get("cifar10"), tuning=Tuning("val_accuracy", trial_settings={"val_sise": 5000}))
