"""Config-to-flags, run folders, training helpers, the IDX parser and the data CLI's error paths."""
from __future__ import annotations

import argparse
import gzip
import io
import json
import tarfile
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from exoml import data
from exoml.toolkit import runs, train
from exoml.cli import main
from exoml.toolkit.config import Common, ConfigError, add_config_args, build_config
from exoml.data.core import DataError, iter_tar
from exoml.data.mnist import parse_idx

from conftest import FASHION_SYSTEM, shared
from fixtures.mnist import idx_bytes, write_mnist


@dataclass
class DemoConfig(Common):
    epochs: int = 3             # passes over the data
    lr: float = 1e-3            # learning rate
    optimizer: str = field(default="adam", metadata={"choices": ["adam", "sgd"]})
    widths: list[int] = field(default_factory=lambda: [32, 64])
    augment: bool = True


def _parse(argv, quick=None, config_file=None):
    profiles = {"full": {}, "quick": quick or {}}
    p = argparse.ArgumentParser()
    add_config_args(p, DemoConfig, profiles)
    return build_config(DemoConfig, vars(p.parse_args(argv)), profiles, config_file)


def test_config_flags_defaults_and_precedence(tmp_path):
    cfg = _parse([])
    assert (cfg.epochs, cfg.lr, cfg.optimizer, cfg.widths, cfg.augment) == (3, 1e-3, "adam", [32, 64], True)
    cfg = _parse(["--epochs", "5", "--widths", "8", "16", "--augment", "false", "--dry-run"])
    assert (cfg.epochs, cfg.widths, cfg.augment, cfg.dry_run) == (5, [8, 16], False, True)
    # profile < config file < flags
    f = tmp_path / "best.json"
    f.write_text(json.dumps({"lr": 0.5, "epochs": 7}))
    cfg = _parse(["--quick", "--epochs", "9"], quick={"epochs": 1, "lr": 0.1, "optimizer": "sgd"}, config_file=str(f))
    assert (cfg.epochs, cfg.lr, cfg.optimizer, cfg.profile) == (9, 0.5, "sgd", "quick")
    with pytest.raises(SystemExit):
        _parse(["--optimizer", "lbfgs"])
    f.write_text(json.dumps({"not_a_setting": 1}))
    with pytest.raises(ConfigError, match="unknown settings"):
        _parse([], config_file=str(f))


def test_run_folder_lifecycle(tmp_path):
    out = tmp_path / "runs"
    with runs.new_run("demo", {"a": 1}, out) as run:
        run.log_epoch({"epoch": 1, "loss": 0.5})
        run.log_epoch({"epoch": 2, "loss": 0.25, "val_acc": 0.9})
        runs.finish(run, {"accuracy": 0.9}, "# report\n")
    assert runs.latest_run("demo", out) == run.path
    assert json.loads((run.path / "status.json").read_text())["status"] == "complete"
    cfg = json.loads((run.path / "config.json").read_text())
    assert cfg["config"] == {"a": 1} and "torch" in cfg["environment"]["versions"]
    assert (run.path / "history.csv").read_text().splitlines()[0] == "epoch,loss,val_acc"
    assert not list(run.path.glob(".*tmp*"))  # no temporary files left behind

    with pytest.raises(RuntimeError):
        with runs.new_run("demo", {}, out) as failed:
            raise RuntimeError("boom")
    status = json.loads((failed.path / "status.json").read_text())
    assert status["status"] == "failed" and "boom" in status["error"]
    assert not (failed.path / "metrics.json").exists()
    assert runs.latest_run("demo", out) == run.path  # the failed run is never picked


def test_fit_learns_and_stops_on_nan():
    from exoml.toolkit import loop
    g = train.seed_everything(0)
    x = torch.randn(256, 4)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    loss_fn, opt, metrics = train.compile(model, "cross_entropy", "adam", 1e-2, metrics=["accuracy", "f1"])
    hist = loop.fit(model, x, y, loss_fn, [opt], epochs=15, batch_size=32, metrics=list(metrics),
                    validate=loop.validation(x, y, loss_fn, list(metrics)), generator=g, drop_last=False)
    assert hist[-1]["val_accuracy"] > 0.9 and hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["train_accuracy"] > 0.9 and set(hist[-1]) >= {"val_f1", "lr", "time_s", "step"}
    for name in ("adamw", "sgd", "rmsprop"):
        train.make_optimizer(name, model.parameters(), 0.01)
    with pytest.raises(ValueError, match="unknown optimizer"):
        train.make_optimizer("lbfgs", model.parameters(), 0.01)
    x_bad = x.clone()
    x_bad[5] = float("nan")
    with pytest.raises(train.TrainingError, match="non-finite training loss at step 1"):
        loop.fit(model, x_bad, y, loss_fn, [opt], epochs=1, batch_size=256)


def test_fit_keeps_the_best_epoch_and_stops_after_patience():
    from exoml.toolkit import loop
    x = torch.randn(64, 3)
    y = x.sum(1, keepdim=True)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scores = iter([0.5, 0.4, 0.45, 0.41, 0.39, 0.1])  # the validation "loss" per epoch: best at epoch 2

    def validate(m):
        validate.weights.append(m.weight.detach().clone())
        return {"loss": next(scores)}
    validate.weights = []
    hist = loop.fit(model, x, y, torch.nn.functional.mse_loss, [opt], epochs=6, batch_size=16, metrics=("mse",),
                    validate=validate, monitor="val_loss", patience=2)
    assert [r["epoch"] for r in hist] == [1, 2, 3, 4]  # two epochs without a better loss after epoch 2
    assert torch.equal(model.weight, validate.weights[1])  # the weights of epoch 2 came back
    assert "train_mse" in hist[0]


def test_machine_kind_keeps_what_decides_speed():
    """A CPU's kind is its vector kernels and cores, whatever its name (parentheses included); a GPU's,
    its name; a CPU text without kernels (older records) has none. This machine's text has a kind."""
    assert train.machine_kind("AMD EPYC (AVX512, bf16), 2 cores, no GPU") == "AVX512, bf16, 2 cores"
    assert train.machine_kind("Intel(R) Core(TM) i5 (AVX2), 8 cores, no GPU") == "AVX2, 8 cores"
    assert train.machine_kind("Intel(R) Xeon(R) Processor, 2 cores, no GPU") is None
    assert train.machine_kind("NVIDIA H100 80GB HBM3") == "NVIDIA H100 80GB HBM3"
    assert train.machine_kind(train.hardware())


def test_idx_parser_rejects_bad_files():
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert (parse_idx(idx_bytes(arr)) == arr).all()
    with pytest.raises(DataError, match="bad magic"):
        parse_idx(b"\x01\x02" + idx_bytes(arr)[2:])
    with pytest.raises(DataError, match="truncated"):
        parse_idx(idx_bytes(arr)[:-3])
    huge = bytes([0, 0, 8, 3]) + b"".join((100000).to_bytes(4, "big") for _ in range(3))
    with pytest.raises(DataError, match="implausibly large"):
        parse_idx(huge)


def test_tar_member_escaping_is_rejected(tmp_path):
    p = tmp_path / "evil.tar.gz"
    with tarfile.open(p, "w:gz") as tf:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DataError, match="unsafe member"):
        list(iter_tar(p))
    assert not (tmp_path.parent / "outside.txt").exists()


def test_import_tiny_mnist_and_cli_errors(tmp_path, capsys):
    src = tmp_path / "mnist"
    write_mnist(src, n_train=30, n_test=10, gz=False, dotted=True)  # raw IDX, the dotted spelling
    assert main(["data", "import", "mnist", str(src)]) == 2  # not the official counts
    assert "--subset" in capsys.readouterr().err
    assert main(["data", "import", "mnist", str(src), "--subset"]) == 0
    m = data.load("mnist")
    assert m.x_train.shape == (30, 28, 28) and m.y_test.dtype == np.int64 and m.classes[3] == "3"
    assert main(["data", "verify", "mnist"]) == 0

    corrupt = tmp_path / "corrupt"
    write_mnist(corrupt, n_train=30, n_test=10)
    p = corrupt / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:200])  # truncated gzip
    wrong = tmp_path / "wrong"
    write_mnist(wrong, n_train=30, n_test=10)
    (wrong / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x0d\x01" + bytes(14)))
    for folder, message in ((corrupt, "corrupt or truncated"), (wrong, "not unsigned byte"),
                            (tmp_path / "missing", "no such file")):
        assert main(["data", "import", "mnist", str(folder), "--subset"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert data.load("mnist").x_train.shape == (30, 28, 28)  # the good cache survived the failed imports


def test_cli_list_and_unknown_names(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(t in out for t in ("cifar10", "boston", "imdb", "iris", "kddcup", "gan", "electricity",
                                  "mnist", "fashion-mnist", "cifar100"))
    assert main(["run", "no-such-task"]) == 2
    assert main(["data", "verify", "no-such-data"]) == 2
    assert main(["data", "verify", "mnist"]) == 2  # not imported in this test's data home


@pytest.mark.realdata
def test_real_mnist_and_fashion_counts():
    meta = data.import_("mnist", [shared("mnist")])
    assert meta["counts"] == {"train": 60000, "test": 10000} and not meta["subset"]
    m = data.load("mnist")
    assert np.bincount(m.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    if not FASHION_SYSTEM.exists():
        pytest.skip("dataset-fashion-mnist not installed")
    data.import_("fashion-mnist", [FASHION_SYSTEM])
    f = data.load("fashion-mnist")
    assert (np.bincount(f.y_train) == 6000).all() and (np.bincount(f.y_test) == 1000).all()


@pytest.mark.parametrize("task", ["mnist", "fashion-mnist", "cifar10", "cifar100", "boston", "iris", "kddcup",
                                  "imdb", "electricity", "gan"])
def test_every_task_help_lists_its_settings(task, capsys):
    from exoml.cli import main
    with pytest.raises(SystemExit) as e:
        main(["run", task, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--seed" in out and "--resume" in out and "(default:" in out


def test_help_text_falls_back_to_the_field_comment(capsys):
    from exoml.cli import main
    with pytest.raises(SystemExit):
        main(["run", "cifar10", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--batch-size INT images per step (default: 2000; profile quick: 100)" in out
    assert "keep 60% of the old value" in out  # a % in a comment is printed as is


def test_done_line_prints_counts_as_integers(monkeypatch, capsys, tmp_path):
    import exoml.runner as runner
    monkeypatch.setattr(runner, "execute", lambda spec, cfg: (tmp_path, {"n_test": 10000, "accuracy": 0.98765}))
    runner.run_task("mnist", ["--quick"])
    assert "[mnist] done: accuracy=0.9877, n_test=10000" in capsys.readouterr().out  # the headline first
