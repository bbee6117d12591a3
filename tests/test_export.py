"""`exoml export TASK --format onnx` for every torch model: a tiny quick run on fixture data, exported
through the command (mnist's through the installed console script, from another folder), then the
file loaded in ONNX Runtime at batch sizes 1 and 7, its metadata and the verification record checked;
and the refusals (no torch model, no complete run, unknown format, a missing, incomplete or
weightless run), a failed verification (exit 1, nothing that looks like an export), a file whose
batch size the trace fixed, and onnxruntime not installed."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from exoml import data
from exoml.cli import main

from fixtures.cifar import write_cifar_binary
from fixtures.electricity import write_power
from fixtures.imdb import write_aclimdb
from fixtures.kddcup import write_kddcup
from fixtures.mnist import write_mnist

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

TASKS = ["mnist", "fashion-mnist", "cifar10", "cifar100", "imdb", "electricity", "kddcup", "gan"]
GAN = ["--quick", "--conditional", "--n-train", "128", "--batch-size", "32", "--epochs", "1", "--width", "8",
       "--grid-n", "8", "--n-eval", "100", "--judge", "train", "--judge-n-train", "128", "--judge-epochs", "1"]


def _import(task: str, raw: Path) -> list[str]:
    """Import tiny fixture data for `task`; returns the run's extra flags (each run seconds long)."""
    if task in ("mnist", "fashion-mnist", "gan"):
        data.import_("fashion-mnist" if task == "fashion-mnist" else "mnist",
                     write_mnist(raw, n_train=200, n_test=60), subset=True)
        return GAN if task == "gan" else ["--quick", "--train-subset", "150", "--val-size", "30"]
    if task in ("cifar10", "cifar100"):
        hundred = task == "cifar100"
        data.import_(task, [write_cifar_binary(raw, n_per_class=2 if hundred else 12, hundred=hundred,
                                               n_test_per_class=1 if hundred else 3)[0]], subset=True)
        return ["--quick", "--epochs", "1"]
    if task == "imdb":
        data.import_("imdb", [write_aclimdb(raw, n_per_label=20)], subset=True)
        return ["--quick", "--epochs", "1", "--layers", "2"]  # stacked BiLSTM: the second layer reads both directions
    if task == "electricity":
        from test_task_sequences import electricity_flags, power_text_lines
        data.import_("electricity", [write_power(raw, power_text_lines())], subset=True)
        return ["--quick", "--protocols", "H", "--epochs", "1", *electricity_flags()[:4]]
    data.import_("kddcup", write_kddcup(raw, n_train=160, n_test=80), subset=True)
    return ["--quick", "--protocols", "B", "--threads", "1", "--scalers-b", "standard", "--ocsvm-components", "8"]


_RUNS: dict[str, tuple[Path, Path]] = {}


@pytest.fixture
def trained(tmp_path_factory, monkeypatch):
    """task -> (its run folder, its runs folder): one quick run per task for the whole file; the
    test's data home is that run's (export reads the evaluation inputs from it)."""
    def get(task: str) -> tuple[Path, Path]:
        if task not in _RUNS:
            root = tmp_path_factory.mktemp(task.replace("-", "_"))
            monkeypatch.setenv("EXOML_DATA", str(root / "data"))
            data._loaded.clear()
            flags = [*_import(task, root / "raw"), "--dry-run"]  # one step per loop: the weights are what they are
            assert main(["run", task, *flags, "--out", str(root / "runs")]) == 0
            (run,) = (root / "runs" / task).iterdir()
            _RUNS[task] = run, root / "runs"
        run, runs = _RUNS[task]
        monkeypatch.setenv("EXOML_DATA", str(runs.parent / "data"))
        data._loaded.clear()
        return run, runs
    return get


def _feed(session, batch: int) -> dict:
    """Inputs of the exported model's declared shapes and types with `batch` items (9 tokens for imdb)."""
    rng = np.random.default_rng(batch)
    feed = {}
    for i in session.get_inputs():
        shape = [batch if d == "batch" else 9 if isinstance(d, str) else d for d in i.shape]
        if i.type == "tensor(int64)":
            feed[i.name] = rng.integers(0, 10, size=shape).astype(np.int64)
        else:
            feed[i.name] = rng.random(shape, dtype=np.float32)
    return feed


@pytest.mark.parametrize("task", TASKS)
def test_export_loads_in_onnxruntime_with_metadata_and_verification(task, trained, tmp_path, capsys):
    run, runs = trained(task)
    argv = ["export", task, "--out", str(runs), "--format", "onnx"]
    if task == "mnist":  # the installed console script, run from another folder: nothing lands there
        from test_console import console_script
        proc = subprocess.run([str(console_script()), *argv], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert list(tmp_path.iterdir()) == []
        out = proc.stdout
    else:
        capsys.readouterr()
        assert main(argv) == 0
        out = capsys.readouterr().out
    folder = run / "export"
    assert f"exported {folder / 'model.onnx'}" in out and "agreement with PyTorch 100.00%" in out

    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        outputs = session.run(None, _feed(session, batch))
        assert all(o.shape[0] == batch and np.isfinite(o).all() for o in outputs)

    meta = {p.key: p.value for p in onnx.load(str(folder / "model.onnx")).metadata_props}
    metrics = json.loads((run / "metrics.json").read_text())
    assert meta["task"] == task and meta["run"] == run.name and meta["git_sha"]
    headline = metrics.get(meta["headline_metric"])  # kddcup's (protocol A) is absent from a protocol B run
    assert meta["headline_value"] == ("" if headline is None else repr(headline))
    preprocessing = json.loads(meta["preprocessing"])
    classes = json.loads(meta.get("classes", "[]"))
    if task in ("mnist", "fashion-mnist", "cifar10", "cifar100"):
        assert len(classes) == (100 if task == "cifar100" else 10)
        assert len(preprocessing["mean"]) == len(preprocessing["std"]) == preprocessing["channels"]
    elif task == "imdb":
        vocab = json.loads((folder / "vocab.json").read_text())
        assert len(vocab) == preprocessing["vocabulary_words"] and vocab[:2] == ["<pad>", "<unk>"]
        # the sequence length is free: one review of 3 tokens and of 40
        for n in (3, 40):
            assert session.run(None, {"ids": np.full((2, n), 5, dtype=np.int64)})[0].shape == (2,)
    elif task == "electricity":
        features = preprocessing["features"]
        assert len(json.loads(meta["scaler"])["mean"]) == len(features) == session.get_inputs()[0].shape[2]
    elif task == "kddcup":
        assert len(preprocessing["centre"]) == len(preprocessing["numeric"]) and float(meta["threshold"]) > 0
        assert "B_autoencoder_f1" in json.loads(meta["protocol_b_test_metrics"])
    else:
        assert classes == [str(d) for d in range(10)] and json.loads(meta["conditional"]) is True

    record = json.loads((folder / "verification.json").read_text())
    assert record["passed"] and record["agreement"] >= 0.999 and record["within_tolerance"] == 1.0
    assert record["items"] > 0 and record["max_abs_diff"] <= record["tolerance"]["abs"]
    assert record["onnxruntime"] == ort.__version__ and record["task"] == task
    if task == "gan":
        assert record["items"] == 1000
    elif task in ("mnist", "fashion-mnist"):
        assert record["items"] == 60  # the whole (fixture) test split


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert err.startswith("exoml: error: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def test_refusals(trained, tmp_path, monkeypatch, capsys):
    run, runs = trained("mnist")
    assert main(["export", "boston", "--out", str(runs)]) == 2
    _one_line_error(capsys, "no torch model", "mnist")
    assert main(["export", "mnist", "--out", str(tmp_path / "empty")]) == 2
    _one_line_error(capsys, "no complete run")
    assert main(["export", "mnist", "--run", str(run), "--format", "tflite"]) == 2
    _one_line_error(capsys, "tflite", "onnx")
    assert main(["export", "mnist", "--run", str(tmp_path / "missing")]) == 2
    _one_line_error(capsys, "not an exoml run folder")
    assert main(["export", "imdb", "--run", str(run)]) == 2
    _one_line_error(capsys, "run of 'mnist'")

    # a run that did not complete, and one without its weights
    for name, status in (("running", "running"), ("noweights", "complete")):
        other = runs / "mnist" / name
        other.mkdir()
        (other / "config.json").write_text((run / "config.json").read_text())
        (other / "status.json").write_text(json.dumps({"status": status}))
        assert main(["export", "mnist", "--run", str(other)]) == 2
        _one_line_error(capsys, "did not complete" if status == "running" else "no model.safetensors")
        assert not (other / "export").exists()

    # data imported again with another test split: the run's evaluation inputs are gone
    monkeypatch.setenv("EXOML_DATA", str(tmp_path / "other-data"))
    data._loaded.clear()
    data.import_("mnist", write_mnist(tmp_path / "raw", n_train=40, n_test=20), subset=True)
    assert main(["export", "mnist", "--run", str(run)]) == 2
    _one_line_error(capsys, "not the one", "import that data again")


def test_failed_verification_leaves_no_good_export(trained, monkeypatch, capsys):
    import exoml.export as ex
    run, runs = trained("fashion-mnist")
    assert main(["export", "fashion-mnist", "--run", str(run)]) == 0
    monkeypatch.setattr(ex, "ATOL", -1.0)  # no output can be that close: the check must fail
    capsys.readouterr()
    assert main(["export", "fashion-mnist", "--run", str(run)]) == 1
    _one_line_error(capsys, "does not reproduce PyTorch", "nothing exported")
    assert sorted(p.name for p in (run / "export").iterdir()) == ["verification.failed.json"]
    assert json.loads((run / "export" / "verification.failed.json").read_text())["passed"] is False


def test_a_batch_size_fixed_by_the_trace_fails_the_verification(trained, monkeypatch, capsys):
    """Without dynamic axes the file only takes the traced example's batch size: the verification
    (batches of another size) must catch it and keep nothing."""
    import dataclasses
    import exoml.export as ex
    run, _ = trained("mnist")
    real = ex._to_onnx
    monkeypatch.setattr(ex, "_to_onnx", lambda spec, *a: real(dataclasses.replace(spec, dynamic_axes={}), *a))
    capsys.readouterr()
    assert main(["export", "mnist", "--run", str(run)]) == 1
    _one_line_error(capsys, "ONNX Runtime cannot run the exported model", "nothing exported")
    assert not (run / "export" / "model.onnx").exists() and not (run / "export" / "verification.json").exists()


def test_missing_onnxruntime_says_how_to_install(trained, monkeypatch, capsys):
    import sys
    run, _ = trained("mnist")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    assert main(["export", "mnist", "--run", str(run)]) == 2
    _one_line_error(capsys, 'pip install "exoml[export]"')


@pytest.mark.parametrize("rnn,pooling", [("lstm", "mean"), ("gru", "last"), ("gru", "max"), ("mingru", "maxmean")])
def test_imdb_rnn_variants_export_with_any_length(rnn, pooling):
    """Every cell and pooling of the imdb model: with the padding cut off (trim, what PyTorch runs)
    and without it (what is exported) the logits agree, and ONNX Runtime reproduces them on
    batches of other sizes and lengths than the traced one."""
    import torch
    import exoml.export as ex
    from exoml.tasks.contract import Export
    from exoml.tasks.text.imdb import SentimentRNN
    torch.manual_seed(0)
    model = SentimentRNN(60, 8, 6, layers=2, rnn=rnn, pooling=pooling, dropout=0.0, max_len=30).eval()
    rng = np.random.default_rng(0)
    batches = []
    for n, t in ((1, 4), (7, 13), (5, 30)):
        ids = rng.integers(2, 60, size=(n, t))
        ids[0, max(1, t // 2):] = 0  # one review shorter than the batch's longest
        batches.append((ids.astype(np.int64),))
    trimmed = [model(torch.from_numpy(b[0])) for b in batches]
    model.trim = False
    with torch.no_grad():
        for b, ref in zip(batches, trimmed):
            assert torch.allclose(model(torch.from_numpy(b[0])), ref, atol=1e-6)
    spec = Export(module=model, inputs=(torch.tensor([[5, 6, 7], [5, 0, 0]]),), input_names=("ids",),
                  output_names=("logit",), dynamic_axes={"ids": {0: "batch", 1: "tokens"}, "logit": {0: "batch"}},
                  metadata={}, evaluation=lambda: batches, evaluated="random reviews", decide=lambda z: z > 0)
    record = ex.verify(spec, ex._to_onnx(spec, onnx, {"task": "imdb"}), ort)
    assert record["passed"] and record["items"] == 13 and record["batch_sizes"] == [1, 5, 7]
