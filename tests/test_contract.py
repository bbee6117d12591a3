"""The task contract (exoml.tasks.contract): a toy task registered from outside the package goes
through every command (run, predict, report, tune, compare, an interrupted run resumed); every
built-in task declares a valid contract; flags mean one thing, --help shows the real values and
settings are checked where they are built."""
from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from exoml import tasks
from exoml.cli import main
from exoml.runner import config_parser
from exoml.toolkit.runs import latest_run

from fixtures import toy_task


@pytest.fixture
def toy():
    tasks.register(toy_task.TASK)
    yield toy_task.TASK
    tasks.unregister(toy_task.NAME)


def _history(run):
    return list(csv.DictReader((run / "history.csv").open()))


def test_toy_task_runs_predicts_reports_tunes_and_resumes(toy, tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs"
    assert main(["list"]) == 0
    assert "toy" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["run", "toy", "--help"])
    assert "(default: 12; profile quick: 4)" in " ".join(capsys.readouterr().out.split())

    # run: a run folder with the resolved settings, the profile recorded
    assert main(["run", "toy", "--out", str(out)]) == 0
    run = latest_run("toy", out)
    info = json.loads((run / "config.json").read_text())
    assert info["task"] == "toy" and info["config"]["profile"] == "full" and info["config"]["epochs"] == 12
    assert json.loads((run / "metrics.json").read_text())["accuracy"] > 0.9
    assert len(_history(run)) == 12

    # predict on new input, with the latest complete run
    capsys.readouterr()
    assert main(["predict", "toy", "2", "2", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("class 1")

    # report: the summary row shows the declared headline metric and reference
    assert main(["report", "--runs", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    assert 'id="toy"' in page and "about 97%" in page and "Toy: two Gaussian blobs" in page

    # tune: 2 trials on the declared metric and space, a best config that `run --config` takes
    capsys.readouterr()
    assert main(["tune", "toy", "--trials", "2", "--study", "s", "--out", str(out), "--quick"]) == 0
    assert "objective: val_accuracy (maximize" in capsys.readouterr().out
    best = json.loads((out / "toy" / "tune-s" / "best_config.json").read_text())
    assert 0.05 <= best["lr"] <= 1.0 and best["profile"] == "quick"
    assert main(["run", "toy", "--config", str(out / "toy" / "tune-s" / "best_config.json"), "--out", str(out)]) == 0

    # compare: variants of one setting, the headline metric in the table
    assert main(["compare", "toy", "--optimizer", "sgd", "adam", "--quick", "--out", str(out)]) == 0
    (table,) = (out / "toy").glob("compare-*/compare.csv")
    assert [r["metric"] for r in csv.DictReader(table.open())] == ["accuracy", "accuracy"]

    # resume: interrupted after epoch 5's checkpoint, continued in its own folder; the same
    # losses as the uninterrupted run above (same seed; RNG restored from the checkpoint)
    monkeypatch.setenv("TOY_INTERRUPT_AT", "5")
    assert main(["run", "toy", "--out", str(tmp_path / "cut")]) == 130
    (cut,) = (tmp_path / "cut" / "toy").iterdir()
    assert json.loads((cut / "status.json").read_text())["status"] == "interrupted"
    monkeypatch.delenv("TOY_INTERRUPT_AT")
    assert main(["run", "toy", "--resume", str(cut)]) == 0
    resumed = _history(cut)
    assert [int(r["epoch"]) for r in resumed] == list(range(1, 13))
    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in _history(run)]


def test_a_task_without_tuning_says_so_before_any_trial(tmp_path, capsys):
    assert main(["tune", "iris", "--trials", "2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "iris cannot be tuned" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "iris").exists() or not any((tmp_path / "iris").rglob("trials"))


@pytest.mark.parametrize("name", tasks.names())
def test_every_task_declares_a_valid_contract(name):
    task = tasks.get(name)
    assert task.name == name and task.exercise and task.model and task.headline.key and task.reference.text
    assert task.default_profile in task.profiles and "quick" in task.profiles
    for profile in task.profiles:  # every profile builds a valid config, recorded under its name
        assert task.settings(profile).profile == profile
    text = config_parser(task).format_help()
    assert "None" not in text  # --help shows the value each setting takes
    if "epochs" in task.config.__dataclass_fields__:  # one meaning everywhere: whole passes
        assert task.config.__dataclass_fields__["epochs"].type in ("int", int)


def test_airbench_model_and_optimizer_described_truthfully():
    task = tasks.get("cifar10")
    assert "airbench" in task.model and "Muon" in task.model
    text = " ".join(config_parser(task).format_help().split())
    assert "always use Muon" in text and "--head-lr" in text


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "batch_size: 0 is out of range (must be >= 1)"),
    (["--lr", "nan"], "lr: nan is not a finite number"),
    (["--lr", "-1"], "lr: -1 is out of range (must be > 0)"),
    (["--dropout", "1"], "dropout: 1 is out of range (must be >= 0 and < 1)"),
    (["--epochs", "0"], "epochs: 0 is out of range (must be > 0)"),
    (["--seed", "-3"], "seed: -3 is out of range (must be >= 0)"),
])
def test_out_of_range_settings_are_refused_in_one_line(argv, message, tmp_path, capsys):
    assert main(["run", "mnist", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "mnist").exists()


def test_config_file_values_are_checked_not_truncated(tmp_path, capsys):
    for bad, message in (({"epochs": 2.5}, "epochs: cannot use 2.5 as int"), ({"k": 0}, "k: 0 is out of range"),
                         ({"k": "3"}, "k: cannot use '3' as int")):
        f = tmp_path / "c.json"
        f.write_text(json.dumps(bad))
        task = "iris" if "k" in bad else "mnist"
        assert main(["run", task, "--config", str(f), "--out", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err


def test_profile_precedence_defaults_profile_file_flags(tmp_path):
    from exoml.runner import task_config
    _, cfg = task_config("mnist", ["--profile", "cpu"])
    assert (cfg.profile, cfg.width, cfg.epochs, cfg.batch_size) == ("cpu", 16, 3, 128)
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"epochs": 4, "width": 24}))
    _, cfg = task_config("mnist", ["--profile", "cpu", "--config", str(f), "--width", "12"])
    assert (cfg.epochs, cfg.width, cfg.convs) == (4, 12, 1)
    _, cfg = task_config("mnist", ["--quick"])
    assert cfg.profile == "quick" and cfg.epochs == 1


def test_every_task_has_quick_cpu_and_full_and_the_default_follows_the_device(monkeypatch):
    """The same three profile names everywhere; without a CUDA GPU `exoml run` takes `cpu`."""
    from exoml import runner
    for name in tasks.names():
        assert {"quick", "cpu", "full"} <= set(tasks.get(name).profiles), name
    monkeypatch.setattr(runner, "has_cuda", lambda: False)
    _, cfg = runner.task_config("mnist", [])
    assert cfg.profile == "cpu" and cfg.epochs == 3
    monkeypatch.setattr(runner, "has_cuda", lambda: True)
    _, cfg = runner.task_config("mnist", [])
    assert cfg.profile == "full" and cfg.epochs > 2
    assert "(default: full)" in runner.config_parser(tasks.get("mnist")).format_help().replace("\n", " ")


def test_a_run_says_which_profile_it_took_why_and_its_measured_time(tmp_path, capsys, monkeypatch):
    from exoml import runner
    monkeypatch.setattr(runner, "has_cuda", lambda: False)
    monkeypatch.setattr(runner, "measured_times", lambda task, profile: [{
        "time": "3 s", "hardware": "a 2-core CPU", "date": "2026-11-30", "row": f"{task}-{profile}",
        "result": "adjusted Rand index 0.7302 (1 seed)"}] if profile == "cpu" else [])
    monkeypatch.setattr(runner, "measured_time", lambda task, profile: next(iter(runner.measured_times(task, profile)),
                                                                              None))
    helped = " ".join(runner.config_parser(tasks.get("iris")).format_help().split())
    assert "took 3 s on a 2-core CPU, 2026-11-30: adjusted Rand index 0.7302 (1 seed)" in helped
    assert main(["run", "iris", "--threads", "1", "--out", str(tmp_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "[iris] profile cpu (the default without a CUDA GPU; others: full, quick): it took 3 s on a " \
                    "2-core CPU (2026-11-30)", first
    assert main(["run", "iris", "--quick", "--threads", "1", "--out", str(tmp_path)]) == 0
    assert "profile quick (as asked; others: full, cpu): its time is not measured" in capsys.readouterr().out


def test_run_all_help_shows_the_shared_flags_and_the_plan(capsys, monkeypatch):
    """`exoml run all --help`: the flags every task takes, then one line per task with the profile
    it would take and its measured time, and their sum; nothing runs."""
    from exoml import runner
    monkeypatch.setattr(runner, "has_cuda", lambda: False)
    monkeypatch.setattr(runner, "measured_time", lambda task, profile: {
        "time": "1 min", "seconds": 60.0, "hardware": "a 2-core CPU", "date": "2026-11-30", "row": f"{task}-{profile}"}
        if task != "gan" else None)
    assert main(["run", "all", "--quick", "--help"]) == 0
    out = capsys.readouterr().out
    assert "flags every task takes: --config --device --dry-run --out --profile --quick --seed" in out
    plan = [line.split() for line in out.splitlines() if line.startswith("  ") and not line.startswith("  profiles")]
    assert [row[:2] for row in plan] == [[name, "quick"] for name in tasks.names()]
    assert " ".join(plan[0][2:]) == "took 1 min on a 2-core CPU (2026-11-30)"
    assert "profiles: as asked; measured times add up to 9 min, plus gan (not measured)" in out


def test_a_run_takes_the_time_measured_on_its_own_kind_of_machine(monkeypatch, capsys):
    """The start line gives the time measured on this kind of machine (vector kernels and cores, or the
    GPU), whatever the CPU's name; with none of its kind, the newest time, said to be from another kind."""
    from exoml import runner
    from exoml.toolkit import train
    times = [{"time": "55 min", "hardware": "Intel Core (AVX2), 2 cores, no GPU, 2 threads", "kind": "AVX2, 2 cores",
              "date": "2026-12-07", "row": "b"},
             {"time": "13 min", "hardware": "AMD EPYC (AVX512, bf16), 2 cores, no GPU, 2 threads",
              "kind": "AVX512, bf16, 2 cores", "date": "2026-12-06", "row": "a"}]
    monkeypatch.setattr(runner, "_measured_table", lambda: {"iris": {"cpu": times}})
    monkeypatch.setattr(runner, "has_cuda", lambda: False)
    cfg = runner.task_config("iris", [])[1]
    monkeypatch.setattr(train, "hardware", lambda: "AMD EPYC (AVX2), 2 cores, no GPU")
    assert runner.measured_time("iris", "cpu")["row"] == "b"
    assert runner.announce(tasks.get("iris"), cfg, False).endswith(
        "it took 55 min on Intel Core (AVX2), 2 cores, no GPU, 2 threads (2026-12-07)")
    monkeypatch.setattr(train, "hardware", lambda: "Intel Xeon (AVX512, bf16), 2 cores, no GPU")
    assert runner.measured_time("iris", "cpu")["row"] == "a"
    monkeypatch.setattr(train, "hardware", lambda: "Apple M2 (NEON), 8 cores, no GPU")
    assert runner.announce(tasks.get("iris"), cfg, False).endswith(
        "it took 55 min on Intel Core (AVX2), 2 cores, no GPU, 2 threads (2026-12-07); not measured on this "
        "kind of machine (NEON, 8 cores)")
    helped = " ".join(runner.config_parser(tasks.get("iris")).format_help().split())
    assert "took 55 min on Intel Core (AVX2), 2 cores, no GPU, 2 threads, 2026-12-07; took 13 min on AMD EPYC " \
           "(AVX512, bf16), 2 cores, no GPU, 2 threads, 2026-12-06" in helped
    # with no time of its kind, a CPU takes the newest CPU time, a GPU the newest GPU time
    gpu = {"time": "2 min", "hardware": "NVIDIA H100 80GB HBM3", "kind": "NVIDIA H100 80GB HBM3", "date": "2026-12-08",
           "row": "g"}
    monkeypatch.setattr(runner, "_measured_table", lambda: {"iris": {"cpu": [gpu, *times]}})
    assert (runner.measured_time("iris", "cpu")["row"], runner.measured_time("iris", "cpu")["here"]) == ("b", False)
    monkeypatch.setattr(train, "hardware", lambda: "NVIDIA A100-SXM4-40GB")
    assert runner.measured_time("iris", "cpu")["row"] == "g"
    monkeypatch.setattr(train, "hardware", lambda: "NVIDIA H100 80GB HBM3")
    assert runner.measured_time("iris", "cpu")["here"] is True
    monkeypatch.setattr(runner, "_measured_table", lambda: {"iris": {"cpu": times}})
    monkeypatch.setattr(train, "hardware", lambda: "Apple M2 (NEON), 8 cores, no GPU")
    assert main(["run", "all", "--help"]) == 0  # the plan marks a time from another kind of machine
    out = capsys.readouterr().out
    assert "iris           cpu    took 55 min on Intel Core (AVX2), 2 cores, no GPU, 2 threads (2026-12-07) *" in out
    assert out.rstrip().endswith("; * not measured on this kind of machine (NEON, 8 cores)")


def test_the_measured_times_ship_with_the_package():
    """`exoml run` reads them through importlib.resources: the installed package must hold them."""
    from exoml.runner import measured_time
    m = measured_time("iris", "quick")
    assert m is not None and m["row"] == "iris-quick" and m["time"].endswith("s")


def test_registry_refuses_builtin_names():
    from exoml.errors import ExomlError
    with pytest.raises(ExomlError, match="taken by a built-in task"):
        tasks.register(dataclasses.replace(toy_task.TASK, name="mnist"))
