"""benchmarks/measure_all.py: it times the real `exoml run all`, records each task's result and its
CPU target, and its records reach the docs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_bench_peers import ROOT, _script, docs_copy


def _fake_run(runs: Path, task: str, started: str, ended: str, status: str, metrics: dict) -> None:
    """A run folder in the format exoml writes (config.json, status.json, metrics.json)."""
    path = runs / task / started.replace("-", "").replace(":", "").replace("T", "-")
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"task": task, "config": {"profile": "cpu"}, "started": started,
                                                  "environment": {"git_sha": "0123456789abcdef"}}))
    (path / "status.json").write_text(json.dumps({"status": status, "time": ended}))
    if metrics:
        (path / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture(scope="module")
def quick_record(tmp_path_factory):
    """The real script on `exoml run all --quick` in an empty data home: Iris is bundled and runs,
    every task whose dataset is missing fails at once. (record, stdout)."""
    tmp = tmp_path_factory.mktemp("all")
    env = {**__import__("os").environ, "EXOML_DATA": str(tmp / "empty-data-home")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "measure_all.py"), "--results", str(tmp / "rec"),
                           "--out", str(tmp / "runs"), "--", "--quick"], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads((tmp / "rec" / "all-quick.json").read_text()), proc.stdout, tmp / "runs"


def test_the_real_command_is_timed_and_each_task_recorded(quick_record):
    record, stdout, runs = quick_record
    assert record["command"] == "exoml run all --quick" and record["wall_s"] > 0
    tasks = {t["task"]: t for t in record["tasks"]}
    from exoml.tasks import names
    assert list(tasks) == names()  # every task, in run all's order
    iris = tasks["iris"]
    metrics = json.loads(next((runs / "iris").glob("*/metrics.json")).read_text())
    assert iris["status"] == "complete" and iris["profile"] == "quick"
    assert iris["metrics"]["ari"] == metrics["ari"] and 0 <= iris["seconds"] <= record["wall_s"]
    failed = [t for t in tasks.values() if t["status"] == "failed"]
    assert failed and all("error" in t for t in failed)  # no dataset in the empty data home
    assert record["span_s"] <= record["wall_s"]
    assert "| `iris` | quick | complete | adjusted Rand index (K-means, k=3) |" in stdout
    assert "| **all** | | 1 of 10 complete |" in stdout and "| no |" in stdout.split("| **all** |")[1]


def test_targets_and_totals_from_run_folders(tmp_path):
    """--collect reads the newest run of each task; a target names its metric, a task's time is its
    folder's start to end, and the total meets the budget only when every task completed."""
    ma = _script("measure_all")
    runs = tmp_path / "runs"
    _fake_run(runs, "cifar10", "2026-01-01T10:00:00", "2026-01-01T10:09:00", "complete", {"accuracy": 0.9391})
    _fake_run(runs, "cifar10", "2026-01-01T12:00:00", "2026-01-01T12:10:00", "complete", {"accuracy": 0.9402})
    _fake_run(runs, "gan", "2026-01-01T12:10:00", "2026-01-01T12:30:00", "complete",
              {"fid": 1.0, "confident_share": 0.87, "class_share_min": 0.08, "class_share_max": 0.135})
    _fake_run(runs, "imdb", "2026-01-01T12:30:00", "2026-01-01T12:31:00", "running", {})
    tasks = {t["task"]: t for t in ma.collect(runs)}
    assert tasks["cifar10"]["metrics"]["accuracy"] == 0.9402 and tasks["cifar10"]["seconds"] == 600
    assert [x["met"] for x in tasks["cifar10"]["targets"]] == [True]
    assert [x["met"] for x in tasks["gan"]["targets"]] == [True, True, False]  # one digit over 13%
    assert tasks["imdb"]["status"] == "running" and "seconds" not in tasks["imdb"]  # still running: no time
    assert tasks["boston"]["status"] == "not run"
    path = ma.write("all-test", "exoml run all", list(tasks.values()), None, tmp_path, {"hardware": "A CPU",
                                                                                       "threads": 2, "date": "d"})
    record = json.loads(path.read_text())
    assert record["span_s"] == 1800 and record["git_sha"] == "0123456789ab"
    text = ma.table([record])
    assert "| `cifar10` | cpu | complete | test accuracy | 94.02% | accuracy >= 94.00% | yes | 10.0 min |" in text
    assert "class_share_max <= 13.00% (13.50%) | no |" in text
    assert "| **all** | | 2 of 10 complete | | | ≤ 3.00 h | no | **30.0 min**" in text
    assert "2 of 10 tasks complete, 1 of 3 at their CPU result target (missed: `imdb`, `gan`; time limits" in ma.headline([record])


def test_run_all_records_reach_the_docs(quick_record, tmp_path):
    make_docs = _script("make_docs")
    results, args = docs_copy(tmp_path, "all")
    assert make_docs.main(args) == 0
    block = (tmp_path / "BENCHMARKS.md").read_text().split("<!-- generated:run-all -->")[1]
    assert block.split("<!-- /generated:run-all -->")[0].strip() == "Not measured yet."
    record, _, _ = quick_record
    (results / "all" / "all-quick.json").write_text(json.dumps(record))
    assert make_docs.main(args + ["--check"]) == 1
    assert make_docs.main(args) == 0
    readme = (tmp_path / "README.md").read_text()
    assert "`exoml run all --quick` took **" in readme and "1 of 10 tasks complete" in readme
    assert "| `iris` | quick | complete |" in (tmp_path / "BENCHMARKS.md").read_text()
    # flags were given (--quick): its times do not stand for the defaults; a plain `exoml run all` does
    assert "all-quick" not in [m["row"] for m in json.loads((tmp_path / "measured.json").read_text())["iris"]["quick"]]
    plain = record | {"command": "exoml run all", "row": "all-defaults", "date": "2999-01-01"}
    (results / "all" / "all-defaults.json").write_text(json.dumps(plain))
    assert make_docs.main(args) == 0
    iris = json.loads((tmp_path / "measured.json").read_text())["iris"]["quick"][0]  # the newest kind of machine
    took = next(t for t in record["tasks"] if t["task"] == "iris")["seconds"]
    assert iris["row"] == "all-defaults" and iris["seconds"] == round(took, 1) and iris["date"] == "2999-01-01"
    # A run whose settings are no longer its profile's (here: another number of clusters) times nothing.
    tasks = [t | {"settings": t["settings"] | {"k": 4}} if t["task"] == "iris" else t for t in plain["tasks"]]
    (results / "all" / "all-defaults.json").write_text(json.dumps(plain | {"tasks": tasks}))
    assert make_docs.main(args) == 0
    iris = json.loads((tmp_path / "measured.json").read_text())["iris"]["quick"]
    assert "all-defaults" not in [m["row"] for m in iris]
    assert "Settings its profiles no longer have: `iris` (k 4, now 3)." in (tmp_path / "README.md").read_text()
    assert "- `iris` ran settings its profile no longer has: k 4, now 3" in (tmp_path / "BENCHMARKS.md").read_text()


def test_a_record_is_dirty_only_when_the_code_changed(tmp_path):
    """A record's commit gets -dirty for changed tracked files, not for the records a measurement
    before it wrote under benchmarks/results/ in the same checkout, nor for the docs made from them."""
    records = _script("records")
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "row.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    assert not records.dirty(tmp_path)
    (tmp_path / "README.md").write_text("docs\n")
    git("add", "README.md")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "docs")
    (tmp_path / "benchmarks" / "results" / "row.json").write_text('{"row": 1}')
    (tmp_path / "README.md").write_text("docs rebuilt from the records\n")
    (tmp_path / "new.py").write_text("untracked\n")
    assert not records.dirty(tmp_path)
    (tmp_path / "code.py").write_text("x = 2\n")
    assert records.dirty(tmp_path)
