"""`exoml tune --storage postgresql://...`: two workers on one study in a real PostgreSQL server.

The test starts its own server (Debian's postgresql: initdb + pg_ctl, as the `postgres` user when
run as root, on a free port, data in a temporary folder), runs two `exoml tune` workers on one
study at once, kills one with SIGKILL in the middle of a trial, and checks that the other finishes
the requested trials, that the killed trial ends FAIL through the heartbeat, that no trial is
counted twice and that best_config.json is written. Skipped, with the reason, where PostgreSQL or
psycopg2 is not installed (.ci/run installs both).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fixtures.mnist import write_mnist

QUICK = ["--quick", "--epochs", "2", "--train-subset", "200", "--val-size", "50", "--test-subset", "50"]
TRIALS = 4


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server: yields its SQLAlchemy URL; stopped and removed afterwards."""
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install psycopg2-binary)")
    # Directly under /tmp: pytest's own temporary folders are private to root, and the server runs
    # as another user.
    root = Path(tempfile.mkdtemp(prefix="exoml-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        shutil.chown(root, "postgres")
        os.chmod(root, 0o700)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], capture_output=True, text=True, timeout=120)  # noqa: E731
    init = run(pg / "initdb", "-D", data, "-A", "trust", "-U", "postgres")
    assert init.returncode == 0, init.stderr[-2000:]
    start = run(pg / "pg_ctl", "-D", data, "-w", "-l", root / "log", "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
    assert start.returncode == 0, start.stderr + (root / "log").read_text()
    try:
        created = run(pg / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "exoml")
        assert created.returncode == 0, created.stderr
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/exoml"
    finally:
        run(pg / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _study(url: str):
    import optuna
    try:
        return optuna.load_study(study_name="pg", storage=url)
    except KeyError:  # the study is not created yet
        return None


def _trials(url: str):
    study = _study(url)
    return study.trials if study is not None else []


@pytest.mark.faults  # item 19 of the faults corpus: concurrency on a real database
def test_two_workers_one_killed_on_postgres(postgres, tmp_path):
    import optuna
    write_mnist(tmp_path / "mnist", n_train=200, n_test=50)
    env = {**os.environ, "EXOML_DATA": str(tmp_path / "home")}
    subprocess.run([sys.executable, "-m", "exoml", "data", "import", "mnist", str(tmp_path / "mnist"), "--subset"],
                   env=env, check=True, capture_output=True)
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "exoml", "tune", "mnist", "--study", "pg", "--trials", str(TRIALS),
           "--storage", postgres, "--heartbeat", "1", "--out", str(out), *QUICK]
    victim = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    survivor = None
    try:
        time.sleep(1.0)  # both workers at once on the one study
        survivor = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # kill the victim while it is inside a trial of its own (tune records each trial's worker)
        mine = f":{victim.pid}"
        deadline, killed = time.time() + 180, None
        while time.time() < deadline and killed is None and victim.poll() is None:
            running = [t for t in _trials(postgres)
                       if t.state.name == "RUNNING" and str(t.user_attrs.get("worker", "")).endswith(mine)]
            if running:
                victim.send_signal(signal.SIGKILL)  # no chance to clean up
                killed = running[0].number
            time.sleep(0.1)
        assert killed is not None, "the first worker never ran a trial"
        victim.wait(timeout=30)
        stdout, stderr = survivor.communicate(timeout=600)
        assert survivor.returncode == 0, stderr[-3000:]
        # The survivor fails stale trials whenever it starts one; if it finished first, the heartbeat
        # grace period (3 heartbeats) decides the same now.
        time.sleep(3.5)
        optuna.storages.fail_stale_trials(_study(postgres))
    finally:
        for proc in (victim, survivor):
            if proc is not None and proc.poll() is None:
                proc.kill()
    trials = _trials(postgres)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == TRIALS, [(t.number, t.state.name) for t in trials]
    assert len({t.number for t in trials}) == len(trials)                           # no trial counted twice
    runs = [t.user_attrs["run"] for t in finished]
    assert len(runs) == len(set(runs))                                              # each has its own run
    assert {t.number: t.state.name for t in trials}[killed] == "FAIL"               # the killed trial
    assert (out / "mnist" / "tune-pg" / "best_config.json").is_file()
