"""benchmarks/bench_peers.py: the side-by-side benchmark runs end to end, and its records reach the docs."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def docs_copy(tmp_path: Path, emptied: str) -> tuple[Path, list[str]]:
    """README.md, BENCHMARKS.md and the records copied into tmp_path, with the records folder
    `emptied` (e.g. "peers") empty: (the copied results folder, make_docs arguments that use them)."""
    for name in ("README.md", "BENCHMARKS.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results, ignore=shutil.ignore_patterns(emptied))
    (results / emptied).mkdir()
    shutil.copy(ROOT / "src" / "exoml" / "measured.json", tmp_path / "measured.json")
    return results, ["--results", str(results), "--root", str(tmp_path), "--package", str(tmp_path)]


@pytest.fixture(scope="module")
def iris_record(tmp_path_factory):
    """The real script's smallest setting for the iris row (scikit-learn's KMeans against `exoml run
    iris --quick`; Iris is bundled, so it runs in the test's empty data home): (record, stdout)."""
    results = tmp_path_factory.mktemp("peers")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_peers.py"), "--rows", "iris",
                           "--smallest", "--threads", "1", "--seed", "3", "--results", str(results)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads((results / "iris-smallest.json").read_text()), proc.stdout


def test_smallest_iris_row(iris_record):
    record, stdout = iris_record
    assert record["status"] == "measured" and record["smallest"] and record["seed"] == 3 and record["threads"] == 1
    for key in ("hardware", "versions", "date", "command", "git_sha"):
        assert key in record, key
    import torch
    if not torch.cuda.is_available():  # the CPU's kernels name the host: one model name covers unlike CPUs
        assert f"({torch.backends.cpu.get_cpu_capability()}" in record["hardware"], record["hardware"]
    assert "--rows iris --smallest" in record["command"]
    ref, ex = record["reference"], record["exoml"]
    assert 0.5 < ref["value"] < 0.9 and ref["seconds"] > 0 and "scikit-learn.org" in ref["source"]
    assert ex["command"] == "exoml run iris --quick --seed 3" and ex["seconds"] > 0
    # exoml's K-means (10 restarts) is the same model as KMeans(n_clusters=3, n_init=10): the same score
    assert record["same_model"]["equal"], record["same_model"]
    assert record["same_model"]["exoml"] == pytest.approx(record["same_model"]["reference"], abs=1e-12)
    # iris has no epochs: exoml reaches the reference's score with its whole run, if its score does
    if ex["value"] >= ref["value"]:
        assert ex["reach_s"] == ex["seconds"] and record["ratios"]["reach"] == pytest.approx(ref["seconds"] / ex["seconds"])
    row = next(line for line in stdout.splitlines() if line.startswith("| iris |"))
    assert f"{ref['value']:.4f} in " in row and f"{ex['value']:.4f} in " in row


def test_records_reach_the_docs(iris_record, tmp_path):
    """A (non-smallest) peers record appears in BENCHMARKS.md's and README.md's generated blocks;
    without records both say it is not measured; smallest records are never shown."""
    make_docs = _script("make_docs")
    results, args = docs_copy(tmp_path, "peers")
    assert make_docs.main(args) == 0
    for name in ("README.md", "BENCHMARKS.md"):
        block = (tmp_path / name).read_text().split("<!-- generated:peers -->")[1].split("<!-- /generated:peers -->")[0]
        assert block.strip() == "Not measured yet.", name
    record, _ = iris_record
    (results / "peers" / "iris-smallest.json").write_text(json.dumps(record))
    assert make_docs.main(args + ["--check"]) == 0  # a smallest record changes nothing
    (results / "peers" / "iris.json").write_text(json.dumps(record | {"smallest": False}))
    assert make_docs.main(args + ["--check"]) == 1
    assert make_docs.main(args) == 0
    bench, readme = (tmp_path / "BENCHMARKS.md").read_text(), (tmp_path / "README.md").read_text()
    assert "| iris | [scikit-learn KMeans(n_clusters=3)]" in bench and "**equal**" in bench
    assert "| `iris` | scikit-learn KMeans(n_clusters=3) |" in readme
    # a record's note reaches the table's notes; the README names each host's rows
    other = record | {"smallest": False, "row": "boston", "hardware": "Another CPU", "note": "a NOTE of this run"}
    (results / "peers" / "boston.json").write_text(json.dumps(other))
    assert make_docs.main(args) == 0
    bench, readme = (tmp_path / "BENCHMARKS.md").read_text(), (tmp_path / "README.md").read_text()
    assert "- boston: " in bench and "a NOTE of this run" in bench.split("- boston: ")[1].splitlines()[0]
    hosts = readme.split("Measured on ")[1].split("; each row's")[0].split("; ")
    assert sorted(hosts) == sorted([f"Another CPU, {record['threads']} threads (`boston`)",
                                    f"{record['hardware']}, {record['threads']} threads (`iris`)"])


def test_time_to_reach():
    bench = _script("bench_peers")
    row = bench.ROWS["mnist-pytorch"]
    history = [{"epoch": 1, "val_accuracy": 0.97, "t_s": 10.0}, {"epoch": 2, "val_accuracy": 0.991, "t_s": 19.0}]
    ex = {"metrics": {"accuracy": 0.992}, "history": history, "seconds": 30.0}
    assert bench.time_to_reach(row, 0.99, ex) == (19.0, 2)
    assert bench.time_to_reach(row, 0.995, ex) == (None, None)          # the final test score falls short
    assert bench.time_to_reach(row, 0.9915, ex) == (30.0, None)         # validation never did, the test score does
    lower = bench.ROWS["electricity"]                                    # RMSE: lower is better, no history
    assert bench.time_to_reach(lower, 380.0, {"metrics": {"D_test_rmse_kw": 360.0}, "history": [],
                                              "seconds": 50.0}) == (50.0, None)
    assert bench.time_to_reach(lower, 350.0, {"metrics": {"D_test_rmse_kw": 360.0}, "history": [],
                                              "seconds": 50.0}) == (None, None)


def test_a_failed_row_is_reported_and_keeps_the_earlier_record(tmp_path):
    """Boston is not in the test's empty data home: exoml's side fails; the row says why, the exit
    status is 1, and the measurement already recorded for the row is not replaced."""
    earlier = tmp_path / "boston-smallest.json"
    earlier.write_text('{"format": "exoml-peers-1", "row": "boston", "status": "measured"}')
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_peers.py"), "--rows", "boston",
                           "--smallest", "--threads", "1", "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| boston |"))
    assert "failed: exoml:" in row and "dataset boston is not available" in row
    assert earlier.read_text() == '{"format": "exoml-peers-1", "row": "boston", "status": "measured"}'


def test_unknown_row_is_a_usage_error():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_peers.py"), "--rows", "nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_the_goal_column_says_met_or_by_how_much_it_missed():
    """Met: exoml ends better and reaches the reference's score in a third of its time or less; a row
    that cannot run here (airbench94 without a GPU) is listed as not measured, not left out."""
    bench = _script("bench_peers")
    row = lambda ex, ref, reach, higher=True: {  # noqa: E731
        "row": "r", "status": "measured", "metric": {"higher_is_better": higher},
        "reference": {"value": ref}, "exoml": {"value": ex}, "ratios": {"reach": reach}}
    assert bench.goal(row(0.99, 0.98, 3.0)) == "met"
    assert bench.goal(row(0.99, 0.98, 1.6)) == "**missed**: 1.6× sooner"
    assert bench.goal(row(0.99, 0.98, 1.5976)) == "**missed**: 1.6× sooner"  # as the ratio column rounds it
    assert bench.goal(row(0.99, 0.98, 1 / 16)) == "**missed**: 16× longer"
    assert bench.goal(row(0.99, 0.98, 2.99)) == "**missed**: 2.9× sooner"   # rounded away from the goal
    assert bench.goal(row(0.99, 0.98, 1 / 1.62)) == "**missed**: 1.7× longer"
    assert bench.goal(row(0.97, 0.98, None)) == "**missed**: does not end better"
    assert bench.goal(row(350.0, 398.0, 3.7, higher=False)) == "met"
    assert bench.goal(row(0.87, 0.22, None)) == "met (better at equal time)"  # the GAN: equal training time
    short = row(0.78, 0.69, 4.2) | {"row": "cifar10-1-epoch", "task": "cifar10", "hardware": "CPU", "threads": 2,
                                    "reference": {"value": 0.69, "name": "n", "seconds": 1.0},
                                    "exoml": {"value": 0.78, "seconds": 1.0}, "metric": {"higher_is_better": True, "kind": "pct2"}}
    assert "| `cifar10-1-epoch` (not the default: `--epochs 1`) |" in bench.headline([short])
    gpu = {"row": "cifar10-airbench", "status": "not measured: no GPU", "reference": {"name": "airbench94"}}
    assert bench.goal(gpu) == "—"
    assert "`cifar10-airbench`, airbench94: not measured: no GPU." in bench.headline([row(0.99, 0.98, 3.0) | {
        "task": "x", "hardware": "CPU", "threads": 2, "reference": {"value": 0.98, "name": "n", "seconds": 1.0},
        "exoml": {"value": 0.99, "seconds": 1.0}, "metric": {"higher_is_better": True, "kind": "pct2"}}, gpu])
