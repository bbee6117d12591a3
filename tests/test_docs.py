"""README.md's and BENCHMARKS.md's result tables are what the result records produce."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_committed_docs_match_the_records(capsys):
    assert _script("make_docs").main(["--check"]) == 0, capsys.readouterr().out


def test_a_changed_record_makes_the_docs_stale(tmp_path):
    """Edit one figure in a copy of the records: --check fails, a rewrite shows the new figure."""
    make_docs = _script("make_docs")
    for name in ("README.md", "BENCHMARKS.md", "src/exoml/measured.json"):
        shutil.copy(ROOT / name, tmp_path / Path(name).name)
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    path = results / "mnist-full.json"
    record = json.loads(path.read_text())
    record["metrics"]["accuracy"] = {"mean": 0.5, "sd": 0.0, "values": [0.5]}
    path.write_text(json.dumps(record))
    args = ["--results", str(results), "--root", str(tmp_path), "--package", str(tmp_path)]
    assert make_docs.main(args + ["--check"]) == 1
    assert make_docs.main(args) == 0
    assert "**50.00%** (1 seed)" in (tmp_path / "README.md").read_text()
    assert make_docs.main(args + ["--check"]) == 0
    # a record's time reaches the line `exoml run` prints at its start
    path = results / "iris-quick.json"
    record = json.loads(path.read_text())
    record["metrics"]["wall_s"] = {"mean": 250.0, "sd": 0.0, "values": [250.0]}
    path.write_text(json.dumps(record))
    assert make_docs.main(args + ["--check"]) == 1
    assert make_docs.main(args) == 0
    iris = json.loads((tmp_path / "measured.json").read_text())["iris"]["quick"]
    assert next(m for m in iris if m["row"] == "iris-quick")["time"] == "4 min"


def test_measured_times_keep_the_newest_of_each_kind_of_machine():
    """One profile timed on two kinds of machine keeps both, the newest kind first; a newer record of
    the same kind (another CPU name, the same kernels and cores) replaces the older one."""
    make_docs = _script("make_docs")
    base = json.loads((ROOT / "benchmarks" / "results" / "iris-full.json").read_text())

    def rec(row, hardware, date, wall):
        return base | {"row": row, "hardware": hardware, "date": date,
                       "metrics": base["metrics"] | {"wall_s": {"mean": wall, "sd": 0.0, "values": [wall]}}}
    recs = {"a": rec("a", "AMD EPYC (AVX512, bf16), 2 cores, no GPU", "2026-01-01", 3.0),
            "b": rec("b", "AMD EPYC (AVX2), 2 cores, no GPU", "2026-01-02", 7.0),
            "c": rec("c", "Intel Core (AVX2), 2 cores, no GPU", "2026-01-03", 6.0)}
    table = json.loads(make_docs.measured_times(recs))
    assert [(m["row"], m["kind"], m["time"]) for m in table["iris"]["full"]] == [("c", "AVX2, 2 cores", "6 s"),
                                                                               ("a", "AVX512, bf16, 2 cores", "3 s")]
    # BENCHMARKS.md's table: a column per kind of CPU, the commonest first; kinds unknown left out
    xeon = rec("d", "Intel(R) Xeon(R) Processor, 2 cores, no GPU", "2026-01-04", 5.0)
    table = json.loads(make_docs.measured_times({**recs, "d": xeon}))
    assert make_docs.kinds_table(table).splitlines()[0] == "| task | AVX2, 2 cores | AVX512, bf16, 2 cores |"
    assert "| `iris` | 6 s (c) | 3 s (a) |" in make_docs.kinds_table(table)
    assert make_docs.kinds_table({"iris": {"cpu": table["iris"]["cpu"][:1]}}) == "Measured on one kind of CPU only."


def test_measure_writes_a_record(tmp_path):
    """benchmarks/measure.py: two seeds of a real run, one record with every metric's mean, sd and values."""
    measure = _script("measure")
    assert measure.main(["iris", "--seeds", "2", "--out", str(tmp_path / "runs"), "--results", str(tmp_path),
                         "--", "--quick"]) == 0
    record = json.loads((tmp_path / "iris-quick.json").read_text())
    assert record["task"] == "iris" and record["profile"] == "quick" and record["seeds"] == [0, 1]
    ari = record["metrics"]["ari"]
    assert len(ari["values"]) == 2 and abs(ari["mean"] - sum(ari["values"]) / 2) < 1e-12
    for key in ("hardware", "threads", "versions", "date", "command"):
        assert record[key] not in (None, ""), key
    assert record["command"] == "python benchmarks/measure.py iris --seeds 2 -- --quick"  # not where files went
    assert record["git_sha"] or not (ROOT / ".git").exists()  # a source tree without git has no commit
    run = json.loads(next((tmp_path / "runs" / "iris").glob("*/config.json")).read_text())["config"]
    assert record["settings"] == {k: v for k, v in run.items() if k not in ("seed", "out")}
    # the record times the quick profile while its settings stand, not once they have changed
    make_docs = _script("make_docs")
    recs = {"iris-quick": record}
    assert [m["row"] for m in json.loads(make_docs.measured_times(recs))["iris"]["quick"]] == ["iris-quick"]
    changed = record | {"settings": record["settings"] | {"k": 5}}
    assert "iris" not in json.loads(make_docs.measured_times({"iris-quick": changed}))


def test_one_recipe_over_two_rows_is_pooled(tmp_path):
    """Seeds of one recipe measured in two rows (same task, profile and task flags, no seed twice)
    get a note with the figures over all the seeds and where each came from; a row of other flags is
    not pooled, and a later row that repeats a seed stays out of the pool."""
    make_docs = _script("make_docs")
    for name in ("README.md", "BENCHMARKS.md", "src/exoml/measured.json"):
        shutil.copy(ROOT / name, tmp_path / Path(name).name)
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    for other in results.glob("mnist-full?*.json"):  # only the rows below measure the full recipe
        other.unlink()
    base = json.loads((results / "mnist-full.json").read_text()) | {"task_flags": "--profile full"}
    acc = lambda *v: {"accuracy": {"mean": sum(v) / len(v), "sd": 0.0, "values": list(v)}}  # noqa: E731
    rows = {"mnist-full": (base | {"seeds": [0, 1], "metrics": acc(0.99, 0.98)}),
            "mnist-full-more": (base | {"row": "mnist-full-more", "seeds": [2, 3, 4], "metrics": acc(0.97, 0.96, 0.95),
                                        "task_flags": "", "hardware": "Another CPU"}),  # the same recipe
            "mnist-full-again": (base | {"row": "mnist-full-again", "seeds": [0], "task_flags": "--profile full --x 1",
                                         "metrics": acc(0.5)})}
    for row, record in rows.items():
        (results / f"{row}.json").write_text(json.dumps(record))
    args = ["--results", str(results), "--root", str(tmp_path), "--package", str(tmp_path)]
    assert make_docs.main(args) == 0
    bench = (tmp_path / "BENCHMARKS.md").read_text()
    note = next(line for line in bench.splitlines() if line.startswith("- mnist-full + mnist-full-more (one recipe"))
    assert note.startswith("- mnist-full + mnist-full-more (one recipe, seeds 0, 1, 2, 3, 4): test accuracy "
                           "**97.00%** ± 1.58 pts (5 seeds) (seeds 0, 1: ")
    assert "seeds 2, 3, 4: Another CPU, " in note
    assert "mnist-full-again (one recipe" not in bench and "+ mnist-full-again" not in bench
    # a later row of the same recipe that repeats seed 1 (and adds seed 5): left out of the pool, which stays as it was
    (results / "mnist-full-repeat.json").write_text(json.dumps(base | {"row": "mnist-full-repeat", "seeds": [1, 5],
                                                                         "date": "2099-01-01", "metrics": acc(0.9, 0.1)}))
    assert make_docs.main(args) == 0
    bench = (tmp_path / "BENCHMARKS.md").read_text()
    assert note in bench.splitlines() and "+ mnist-full-repeat" not in bench


def test_flags_that_restate_a_profile_do_not_make_another_recipe():
    """A record measured with `--val-size 0` times cifar10's cpu profile as it stands (that is its
    default); `--val-size 5000` is another recipe, and a flag the task no longer has is kept as given."""
    make_docs = _script("make_docs")
    record = {"task": "cifar10", "profile": "cpu"}
    assert make_docs.records.recipe_flags({**record, "task_flags": "--profile cpu --val-size 0"}) == ""
    assert make_docs.records.recipe_flags({**record, "task_flags": "--profile cpu --val-size 5000"}) == "--val-size 5000"
    assert make_docs.records.recipe_flags({**record, "task_flags": "--no-such-flag 1"}) == "--no-such-flag 1"


def test_a_setting_a_record_predates_counts_as_its_default():
    """A run's config.json written before a setting existed ran with its default (settings are added
    switched off): where the profile now sets another value, the record is out of date for it."""
    import sys
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import records
    finally:
        sys.path.pop(0)
    now = records.settings_of(__import__("exoml.tasks", fromlist=["get"]).get("cifar100").settings("cpu"))
    before = {k: v for k, v in now.items() if k not in ("low_res", "low_res_share")}
    assert records.changed_settings("cifar100", "cpu", before) == {"low_res": (0, 24), "low_res_share": (0.0, 0.47)}
    assert records.changed_settings("cifar100", "cpu", now) == {}
    assert records.changed_settings("cifar100", "cpu", {**now, "gone": 1}) == {}  # a setting that no longer exists


def test_the_readme_row_is_the_default_recipe_else_the_cpu_profile():
    """A task whose full recipe has no record shows its cpu profile's row, whatever other rows
    (validation studies, variants) are newer or sort first."""
    pick = _script("make_docs").headline_record
    rec = lambda row, profile, date: {"row": row, "task": "cifar100", "profile": profile, "date": date}  # noqa: E731
    recs = {r["row"]: r for r in (rec("cifar100-cpu-val5000", "cpu", "2026-12-08"), rec("cifar100-cpu", "cpu", "2026-12-07"),
                                  rec("cifar100-quick", "quick", "2026-12-09"))}
    assert pick("cifar100", recs)["row"] == "cifar100-cpu"
    recs["cifar100-full"] = rec("cifar100-full", "full", "2026-12-01")
    assert pick("cifar100", recs)["row"] == "cifar100-full"
    del recs["cifar100-cpu"], recs["cifar100-full"]
    assert pick("cifar100", recs)["row"] == "cifar100-cpu-val5000"


def test_targets_are_judged_on_the_record_mean_seeds_and_time():
    """A target is met only when every check holds on the mean, with enough seeds, within its time;
    a miss says by how much; a bound may be another metric plus an offset."""
    targets = _script("targets")
    t = targets.Target("cifar100", "row", (("accuracy", ">=", 0.75),), "why", seeds=2, time=("train_time_s", 3600))
    rec = lambda acc, seeds, secs: {"row": {"seeds": seeds, "metrics": {  # noqa: E731
        "accuracy": {"mean": acc}, "train_time_s": {"mean": secs}}}}
    assert targets.judge(t, rec(0.7512, [0, 1], 3500)) == ("75.12%, 2 seeds, 58.3 min of training", "met")
    shown, verdict = targets.judge(t, rec(0.7456, [0], 3610))
    assert verdict == "**missed**: test accuracy by 0.44 pts; 1 of 2 seeds; time by 10 s", verdict
    assert targets.judge(t, {}) == ("—", "not measured")
    # the same recipe measured over other seeds in another row (e.g. another day) counts with it
    one = lambda row, seed, acc, date: {"row": row, "task": "cifar100", "profile": "cpu", "task_flags": "--profile cpu",  # noqa: E731
                                        "date": date, "seeds": [seed], "metrics": {
                                            "accuracy": {"mean": acc, "values": [acc]},
                                            "train_time_s": {"mean": 3500.0, "values": [3500.0]}}}
    pair = {"row": one("row", 0, 0.7490, "2026-12-07"), "row-seed1": one("row-seed1", 1, 0.7530, "2026-12-08")}
    assert targets.judge(t, pair) == ("75.10%, 2 seeds (row + row-seed1), 58.3 min of training (the slowest row)",
                                      "met")
    pair["row-seed1"]["metrics"]["train_time_s"] = {"mean": 3700.0, "values": [3700.0]}  # every row within the limit
    assert targets.judge(t, pair)[1] == "**missed**: time by 100 s"
    pair["row-seed1"]["seeds"] = [0]  # a repeated seed is not a new one
    assert targets.judge(t, pair)[1] == "**missed**: test accuracy by 0.10 pts; 1 of 2 seeds"
    near = targets.Target("gan", "row", (("confident_share", ">=", ("confident_share_real_test", -0.05)),), "why")
    gan = lambda c: {"row": {"seeds": [0], "metrics": {  # noqa: E731
        "confident_share": {"mean": c}, "confident_share_real_test": {"mean": 0.98}}}}
    assert targets.judge(near, gan(0.94))[1] == "met"
    assert targets.judge(near, gan(0.92))[1] == "**missed**: confident share by 1.00 pts"
    low = targets.Target("electricity", "row", (("D_test_rmse_kw", "<=", 340.0),), "why")
    assert targets.judge(low, {"row": {"seeds": [0], "metrics": {"D_test_rmse_kw": {"mean": 350.7}}}})[1] == \
        "**missed**: weekly RMSE by 10.7 kW"


def test_every_target_reads_metrics_its_record_has():
    """A renamed metric or row would turn a target into 'not recorded' or 'not measured' silently."""
    targets, records = _script("targets"), _script("records")
    recs = records.load_all(ROOT / "benchmarks" / "results")
    from exoml.tasks import names
    for t in targets.TARGETS:
        assert t.task in names() and t.row in recs, t
        shown, verdict = targets.judge(t, recs)
        assert "not recorded" not in verdict and "not in the record" not in shown, (t, shown, verdict)
    assert set(_script("measure_all").CPU_TARGETS) == {"cifar10", "cifar100", "imdb", "gan"}


def test_the_readme_row_pools_the_seeds_of_its_recipe():
    """A recipe measured on seed 0 in one row and seed 1 in another is shown over both seeds, with
    both commands; a row of other settings (another profile version) stays out."""
    make_docs = _script("make_docs")
    settings = {"epochs": 30}
    rec = lambda row, seed, acc, date, command: {  # noqa: E731
        "format": "exoml-result-1", "row": row, "task": "cifar100", "profile": "cpu", "task_flags": "--profile cpu",
        "date": date, "seeds": [seed], "settings": settings, "command": command, "hardware": "CPU", "threads": 2,
        "metrics": {"accuracy": {"mean": acc, "sd": 0.0, "values": [acc]},
                    "train_time_s": {"mean": 3300.0, "sd": 0.0, "values": [3300.0]}}}
    recs = {"cifar100-cpu": rec("cifar100-cpu", 0, 0.7456, "2026-12-07", "measure cifar100 --seeds 1"),
            "cifar100-cpu-seed1": rec("cifar100-cpu-seed1", 1, 0.7500, "2026-12-08", "measure cifar100 --first-seed 1")}
    row = next(line for line in make_docs.readme_table(recs).splitlines() if line.startswith("| `cifar100` |"))
    assert "**74.78%** ± 0.31 pts (2 seeds)" in row and "`measure cifar100 --seeds 1` + `measure cifar100 --first-seed 1`" in row
    assert "55.0 min (training, mean)" in row
    recs["cifar100-cpu-seed1"] |= {"hardware": "Slower CPU", "metrics": recs["cifar100-cpu-seed1"]["metrics"] | {
        "train_time_s": {"mean": 3900.0, "sd": 0.0, "values": [3900.0]}}}  # no mean over two machines
    row = next(line for line in make_docs.readme_table(recs).splitlines() if line.startswith("| `cifar100` |"))
    assert "65.0 min (training, mean) on the slowest host" in row and "CPU, 2 threads; Slower CPU, 2 threads" in row
    recs["cifar100-cpu-seed1"]["settings"] = {"epochs": 32}
    row = next(line for line in make_docs.readme_table(recs).splitlines() if line.startswith("| `cifar100` |"))
    assert "**74.56%** (1 seed)" in row and "--first-seed" not in row
