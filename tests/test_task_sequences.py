"""The sequence tasks (imdb, electricity) end to end on tiny generated data in the real file formats
(an aclImdb tree; a UCI power text with `?` rows), `exoml predict` with its error paths, the token
cache, the exact masking of the RNN, missing-value handling, and the naive baselines by hand."""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from exoml import data
from exoml.tasks.text import tokens as text
from exoml.tasks.timeseries import series as ts
from exoml.cli import main

from fixtures.electricity import write_power
from fixtures.imdb import write_aclimdb

_RUNS: dict[str, Path] = {}


def power_text_lines(start=datetime(2010, 1, 1), days: int = 72, step_min: int = 10) -> list[str]:
    """UCI rows every `step_min` minutes with a daily and weekly rhythm, a missing day (`?` rows)
    and a few isolated missing readings."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(days * 24 * 60 // step_min):
        t = start + timedelta(minutes=i * step_min)
        d = f"{t.day}/{t.month}/{t.year};{t:%H:%M:%S}"
        if (t.month, t.day) == (1, 20) or i % 997 == 5:
            out.append(f"{d};?;?;?;?;?;?;")
            continue
        kw = 1.0 + 0.8 * math.sin(2 * math.pi * (t.hour - 6) / 24) + 0.3 * (t.weekday() >= 5) + rng.normal(0, 0.1)
        kw = max(kw, 0.1)
        out.append(f"{d};{kw:.3f};0.100;{240 + rng.normal(0, 1):.3f};{kw * 4.2:.3f};0.000;1.000;{17 * kw:.3f}")
    return out


def electricity_flags() -> list[str]:
    # 72 days from 2010-01-01: test from Sunday 2010-02-28 (two whole weeks), validation two weeks before it;
    # protocol O needs more than a year (its own test below)
    return ["--test-start", "2010-02-28", "--val-weeks", "2", "--daily-ensemble", "2", "--protocols", "H", "D"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One --quick run per task, shared by this file's tests: task -> (run folder, runs folder)."""
    def get(task: str) -> tuple[Path, Path]:
        if task not in _RUNS:
            root = tmp_path_factory.mktemp(task)
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("EXOML_DATA", str(root / "data"))
                data._loaded.clear()
                if task == "imdb":
                    data.import_("imdb", [write_aclimdb(root / "raw", n_per_label=30)], subset=True)
                    extra = ["--epochs", "12", "--lr", "0.01"]  # tiny corpus: a few more passes to learn it
                else:
                    data.import_("electricity", [write_power(root / "raw", power_text_lines())], subset=True)
                    extra = electricity_flags()
                assert main(["run", task, "--quick", "--out", str(root / "runs"), *extra]) == 0
                data._loaded.clear()
            (_RUNS[task],) = list((root / "runs" / task).iterdir())
        return _RUNS[task], _RUNS[task].parent.parent
    return get


def _home(run: Path) -> Path:
    return run.parent.parent.parent / "data"


# ---------------------------------------------------------------- imdb -------------

def test_imdb_quick_run_end_to_end(trained):
    run, _ = trained("imdb")
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    m = json.loads((run / "metrics.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "n_test", "best_epoch", "val_accuracy"):
        assert key in m, key
    assert m["n_test"] == 60
    # "loved it" / "hated it" ends every fixture review: a working model gets nearly all right
    assert m["accuracy"] >= 0.9
    p = np.load(run / "predictions.npz", allow_pickle=False)
    assert np.isclose((p["pred"] == p["label"]).mean(), m["accuracy"])
    assert np.array_equal(p["pred"], (p["prob_pos"] > 0.5).astype(int))
    for f in ("history.csv", "model.safetensors", "vocab.json", "report.md", "lengths.png", "labels.png",
              "top_words.png", "curves.png", "confusion.png", "probabilities.png"):
        assert (run / f).is_file(), f
    assert "Most confident mistakes" in (run / "report.md").read_text()


def test_imdb_interrupted_run_resumes_to_the_same_result(trained, monkeypatch, tmp_path):
    import csv
    import signal
    from exoml.toolkit.runs import Run
    ref, _ = trained("imdb")
    monkeypatch.setenv("EXOML_DATA", str(_home(ref)))
    data._loaded.clear()
    real_log, calls = Run.log_epoch, {"n": 0}

    def log_then_stop(self, row):  # Ctrl-C right after the 3rd epoch is logged
        real_log(self, row)
        calls["n"] += 1
        if calls["n"] == 3:
            signal.raise_signal(signal.SIGINT)
    monkeypatch.setattr(Run, "log_epoch", log_then_stop)
    args = ["run", "imdb", "--quick", "--out", str(tmp_path), "--epochs", "12", "--lr", "0.01"]
    assert main(args) == 130
    (run,) = list((tmp_path / "imdb").iterdir())
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    assert len(list(csv.DictReader((run / "history.csv").open()))) == 3
    monkeypatch.setattr(Run, "log_epoch", real_log)
    assert main(["run", "imdb", "--resume", str(run)]) == 0
    data._loaded.clear()
    got = list(csv.DictReader((run / "history.csv").open()))
    want = list(csv.DictReader((ref / "history.csv").open()))
    assert [r["epoch"] for r in got] == [r["epoch"] for r in want]
    for a, b in zip(got, want):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-5)
    m_got, m_want = (json.loads((r / "metrics.json").read_text()) for r in (run, ref))
    assert m_got["accuracy"] == m_want["accuracy"] and m_got["best_epoch"] == m_want["best_epoch"]


def test_imdb_token_cache_is_plain_npy_and_reused(trained, monkeypatch):
    run, _ = trained("imdb")
    (folder,) = list((_home(run) / "imdb" / "tokens").iterdir())
    for f in folder.glob("*.npy"):
        np.load(f, allow_pickle=False)  # no pickled objects anywhere
    monkeypatch.setenv("EXOML_DATA", str(_home(run)))
    data._loaded.clear()
    ds = data.load("imdb")
    called = []
    corpus = text.token_cache({"train": ds.train, "test": ds.test}, progress=called.append)
    assert not called and corpus["cache"] == str(folder)  # read back, not rebuilt
    # ids count words of the training split only: the test-only word "test" is unknown
    assert "test" not in corpus["words"] and "train" in corpus["words"]
    first = corpus["test_ids"][corpus["test_offsets"][0]]
    assert first == text.UNK


def test_tokenize_pad_and_vocabulary_cut():
    assert text.tokenize("A <br /><br />GREAT film, isn't it?!") == ["a", "great", "film", "isn't", "it", "?", "!"]
    assert text.tokenize("Naïve café", lowercase=False, punctuation="") == ["Naïve", "café"]
    ids = np.array([5, 6, 7, 8, 9, 2, 3], dtype=np.int32)
    offsets = np.array([0, 5, 7])
    x = text.pad(ids, offsets, max_len=3, vocab_size=8)
    # the first review keeps its last 3 tokens (9 is beyond the vocabulary: unknown); the second is padded
    assert x.tolist() == [[7, 1, 1], [2, 3, 0]]


def test_masked_bidirectional_rnn_ignores_padding():
    from exoml.tasks.text.imdb import SentimentRNN
    torch.manual_seed(0)
    for rnn, pooling in [("lstm", "max"), ("lstm", "mean"), ("lstm", "last"), ("mingru", "maxmean"),
                         ("mingru", "last")]:
        model = SentimentRNN(50, 8, 6, layers=2, rnn=rnn, pooling=pooling, dropout=0.0).eval()
        short = torch.tensor([[4, 9, 13]])
        batch = torch.tensor([[4, 9, 13, 0, 0, 0, 0], [5, 6, 7, 8, 9, 10, 11]])
        with torch.no_grad():
            alone, together = model(short), model(batch)
        assert torch.allclose(alone[0], together[0], atol=1e-6), (rnn, pooling)


def test_imdb_batches_are_cut_to_a_few_steady_lengths():
    """A batch is cut after its longest review rounded up to LENGTH_STEP tokens (never past the
    padded width), so steps repeat a few tensor shapes (Task.steady_shapes); the logits are those of
    the uncut batch."""
    from exoml.tasks.text.imdb import LENGTH_STEP, SentimentRNN
    torch.manual_seed(0)
    model = SentimentRNN(50, 8, 6, layers=2, rnn="lstm", dropout=0.0).eval()
    seen = []
    model.embed.register_forward_hook(lambda module, args, out: seen.append(out.shape[1]))
    width = 3 * LENGTH_STEP + 5
    for longest in (1, LENGTH_STEP, LENGTH_STEP + 1, width - 2, width):
        batch = torch.randint(2, 50, (3, width))
        batch[:, longest:] = 0
        batch[1:, 1:] = 0                                      # the others shorter
        with torch.no_grad():
            cut = model(batch)
            model.trim = False
            whole = model(batch)
            model.trim = True
        assert torch.allclose(cut, whole, atol=1e-6), longest
    assert seen[::2] == [LENGTH_STEP, LENGTH_STEP, 2 * LENGTH_STEP, width, width]


def test_mingru_scan_equals_the_step_by_step_recurrence():
    from exoml.tasks.text.mingru import LOG_A_MIN, MinGRU, linear_scan
    torch.manual_seed(0)
    log_a = (-torch.nn.functional.softplus(3 * torch.randn(3, 53, 5))).clamp(min=LOG_A_MIN)  # 53: not a chunk multiple
    b = torch.randn(3, 53, 5)
    h, want = torch.zeros(3, 5), []
    for t in range(53):
        h = log_a[:, t].exp() * h + b[:, t]
        want.append(h)
    assert torch.allclose(linear_scan(log_a, b), torch.stack(want, 1), atol=1e-5)
    # the layer: z = sigmoid(gate), h_t = (1 - z) h_{t-1} + z * candidate, gates from the input only
    layer = MinGRU(4, 5)
    x = torch.randn(2, 40, 4)
    gate, cand = layer.proj(x).chunk(2, -1)
    z = torch.sigmoid(gate).clamp(max=1 - math.exp(LOG_A_MIN))
    h, want = torch.zeros(2, 5), []
    for t in range(40):
        h = (1 - z[:, t]) * h + torch.sigmoid(gate[:, t]) * cand[:, t]
        want.append(h)
    with torch.no_grad():
        assert torch.allclose(layer(x), torch.stack(want, 1), atol=1e-5)
        assert torch.allclose(layer(x[:, :17]), layer(x)[:, :17], atol=1e-6)  # causal: the future never leaks back


def test_length_buckets_is_a_shuffled_permutation_of_similar_lengths():
    from exoml.toolkit.loop import length_buckets
    lengths = torch.randint(1, 500, (1000,))
    order_of = length_buckets(lengths, batch_size=32, span=10)
    first, second = order_of(torch.Generator().manual_seed(0)), order_of(torch.Generator().manual_seed(1))
    assert sorted(first.tolist()) == list(range(1000)) and not torch.equal(first, second)
    assert torch.equal(first, order_of(torch.Generator().manual_seed(0)))   # the generator decides
    spread = lambda o: float(np.mean([(lengths[o[i:i + 32]].max() - lengths[o[i:i + 32]].min()).item()  # noqa: E731
                                      for i in range(0, 992, 32)]))
    assert spread(first) < 0.2 * spread(torch.randperm(1000))               # batches of similar lengths


def test_imdb_predict_text_and_file(trained, tmp_path, capsys):
    run, runs = trained("imdb")
    assert main(["predict", "imdb", "great wonderful film, loved it", "--out", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "positive" in out or "negative" in out
    png = Path(out.strip().splitlines()[-1].split("plot: ")[1])
    assert png.is_file() and png.parent == run / "predictions"
    review = tmp_path / "review.txt"
    review.write_text("awful boring plot, hated it\n", encoding="utf-8")
    assert main(["predict", "imdb", "--file", str(review), "--run", str(run)]) == 0
    assert (run / "predictions" / "review.png").is_file()


def test_imdb_predict_with_emoji_prints_no_library_warning(trained):
    """A review with characters the plot font lacks: the answer and the plot, and nothing else on stderr."""
    import subprocess
    from test_console import console_script
    _, runs = trained("imdb")
    proc = subprocess.run([str(console_script()), "predict", "imdb", "What a wonderful \U0001F600 film \U0001F3AC",
                           "--out", str(runs)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "plot:" in proc.stdout
    assert proc.stderr.strip() == "", proc.stderr[-2000:]


@pytest.mark.parametrize("kind, message", [
    ("empty", "empty"), ("spaces", "empty"), ("binary", "binary"), ("latin1", "not UTF-8"),
    ("missing", "not found"), ("none", "quoted argument"), ("no_words", "no words")])
def test_imdb_predict_bad_input(trained, tmp_path, capsys, kind, message):
    _, runs = trained("imdb")
    f = tmp_path / "r.txt"
    args = {"empty": [""], "spaces": ["  \n\t "], "no_words": ["... ,;"], "none": []}.get(kind)
    if args is None:
        if kind == "binary":
            f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
        elif kind == "latin1":
            f.write_bytes("très bon film".encode("latin-1"))
        args = ["--file", str(f)]
    assert main(["predict", "imdb", *args, "--out", str(runs)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("exoml: error:") and message in err and "\n" not in err


def test_imdb_predict_without_a_run(tmp_path, capsys):
    assert main(["predict", "imdb", "fine film", "--out", str(tmp_path / "none")]) == 2
    assert "no complete run" in capsys.readouterr().err


# ---------------------------------------------------------------- electricity -------

def test_electricity_quick_run_end_to_end(trained):
    run, _ = trained("electricity")
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    m = json.loads((run / "metrics.json").read_text())
    assert m["imputed_hours"] == 24 and m["missing_minutes"] > 144
    assert m["D_test_weeks"] == 2
    for key in ("H_test_mse_kw2", "H_test_mae_kw", "H_persistence_mse_kw2", "H_same_hour_yesterday_mse_kw2",
                "H_same_hour_last_week_mse_kw2", "D_test_rmse_kw", "D_weekly_persistence_rmse_kw",
                "D_rmse_Sun_kw"):
        assert np.isfinite(m[key]), key
    # the saved forecasts reproduce the metrics, baselines included
    h = np.load(run / "predictions_hourly.npz", allow_pickle=False)
    assert np.isclose(((h["pred_kw"] - h["true_kw"]) ** 2).mean(), m["H_test_mse_kw2"])
    assert np.isclose(((h["baseline_same_hour_yesterday"] - h["true_kw"]) ** 2).mean(),
                      m["H_same_hour_yesterday_mse_kw2"])
    assert h["pred_kw"].shape == (m["H_test_windows"], 24)
    assert pd.Timestamp(h["origin"].min()) >= pd.Timestamp("2010-02-28")  # test windows only
    d = np.load(run / "predictions_daily.npz", allow_pickle=False)
    assert np.isclose(np.sqrt(((d["pred_kw"] - d["true_kw"]) ** 2).mean()), m["D_test_rmse_kw"])
    # the validation RMSE (what D's settings are chosen by) from the saved validation forecasts: every
    # validation day is a forecast origin, and each whole week lies before the test
    assert np.isclose(np.sqrt(((d["val_pred_kw"] - d["val_true_kw"]) ** 2).mean()), m["D_val_rmse_kw"])
    assert len(d["val_start_day"]) > 0 and d["val_start_day"][-1] + np.timedelta64(6, "D") < d["week_start"][0]
    assert [str(pd.Timestamp(t).date()) for t in d["week_start"]] == ["2010-02-28", "2010-03-07"]
    for f in ("history.csv", "model.safetensors", "daily_model_0.safetensors", "daily_model_1.safetensors",
              "scaler.json", "report.md", "overview.png", "curves_hourly.png", "error_by_horizon_hourly.png",
              "forecast_weeks_hourly.png", "forecast_daily.png"):
        assert (run / f).is_file(), f
    hist = pd.read_csv(run / "history.csv")
    assert set(hist["protocol"]) == {"H", "D0", "D0-refit", "D1", "D1-refit"}
    # each member trains again, on training + validation days, for the epochs early stopping picked
    for m in (0, 1):
        first, refit = hist[hist["protocol"] == f"D{m}"], hist[hist["protocol"] == f"D{m}-refit"]
        assert len(refit) == first.loc[first["val_loss"].idxmin(), "epoch"] and refit["val_loss"].isna().all()
    assert d["members_val_kw"].shape == (2, *d["val_pred_kw"].shape)
    assert np.allclose(d["members_val_kw"].mean(0), d["val_pred_kw"])


def test_electricity_interrupted_in_its_fourth_fit_resumes_to_the_same_result(trained, monkeypatch, tmp_path):
    """A run of several fits (protocol H, then two protocol-D members, each fitted and then refitted),
    stopped by SIGINT inside the second D member's first fit: the resumed run takes the finished fits
    from their checkpoints, continues the fourth mid-way, and ends with the metrics and history of the
    uninterrupted run."""
    import csv
    import signal
    from exoml.toolkit.runs import Run
    ref, _ = trained("electricity")
    monkeypatch.setenv("EXOML_DATA", str(_home(ref)))
    data._loaded.clear()
    real_log = Run.log_epoch

    def log_then_stop(self, row):  # Ctrl-C right after D1's second epoch is logged
        real_log(self, row)
        if row.get("protocol") == "D1" and row["epoch"] == 2:
            signal.raise_signal(signal.SIGINT)
    monkeypatch.setattr(Run, "log_epoch", log_then_stop)
    assert main(["run", "electricity", "--quick", "--out", str(tmp_path), *electricity_flags()]) == 130
    (run,) = list((tmp_path / "electricity").iterdir())
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    assert {p.name for p in run.glob("checkpoint*")} == {"checkpoint-H.safetensors", "checkpoint-D0.safetensors",
                                                         "checkpoint-D0-refit.safetensors", "checkpoint-D1.safetensors"}
    monkeypatch.setattr(Run, "log_epoch", real_log)
    assert main(["run", "electricity", "--resume", str(run)]) == 0
    data._loaded.clear()
    got = list(csv.DictReader((run / "history.csv").open()))
    want = list(csv.DictReader((ref / "history.csv").open()))
    assert [(r["protocol"], r["epoch"]) for r in got] == [(r["protocol"], r["epoch"]) for r in want]
    for a, b in zip(got, want):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-6)
        assert (a["val_loss"] == b["val_loss"] == "") or float(a["val_loss"]) == pytest.approx(float(b["val_loss"]),
                                                                                                 rel=1e-6)
    m_got, m_want = (json.loads((r / "metrics.json").read_text()) for r in (run, ref))
    timing = [k for k in m_want if k.endswith("_s")]
    assert {k: v for k, v in m_got.items() if k not in timing} == {k: v for k, v in m_want.items() if k not in timing}


def test_electricity_predict_next_24_hours(trained, monkeypatch, capsys):
    run, runs = trained("electricity")
    monkeypatch.setenv("EXOML_DATA", str(_home(run)))
    data._loaded.clear()
    assert main(["predict", "electricity", "--out", str(runs)]) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("  2010-")]
    assert len(rows) == 24 and rows[0].startswith("  2010-03-14 00:00")  # the data ends 2010-03-13 23:50
    assert all(np.isfinite(float(r.split()[-1])) for r in rows)
    assert (run / "predictions" / "forecast-20100314-0000.png").is_file()


def test_electricity_predict_errors(trained, tmp_path, capsys):
    run, _ = trained("electricity")
    assert main(["predict", "electricity", "--run", str(tmp_path)]) == 2
    assert "not an exoml run folder" in capsys.readouterr().err
    other = tmp_path / "copy"
    other.mkdir()
    info = json.loads((run / "config.json").read_text())
    info["config"]["protocols"] = ["D"]
    (other / "config.json").write_text(json.dumps(info))
    (other / "status.json").write_text(json.dumps({"status": "complete"}))
    assert main(["predict", "electricity", "--run", str(other)]) == 2
    assert "no hourly model" in capsys.readouterr().err


# ---------------------------------------------------------------- missing values and baselines

def test_hourly_imputation_uses_the_past_and_flags_it():
    idx = pd.date_range("2010-01-01", periods=9 * 24 * 60, freq="min")
    gap = np.asarray(idx.hour) + 100.0 * (np.asarray(idx.day) - 1)   # a different value every hour of every day
    frame = pd.DataFrame({ts.TARGET: gap, "other": 1.0}, index=idx)
    frame.loc["2010-01-09 05:00":"2010-01-09 05:59", ts.TARGET] = np.nan       # a whole hour: imputed
    frame.loc["2010-01-09 07:00":"2010-01-09 07:29", ts.TARGET] = np.nan       # half an hour: rest of it
    frame.loc["2010-01-09 07:30":"2010-01-09 07:59", ts.TARGET] = 50.0
    hours, imputed = ts.hourly(frame)
    assert imputed.sum() == 1 and imputed["2010-01-09 05:00"]
    assert hours.loc["2010-01-09 05:00", ts.TARGET] == 5 + 100 * 1        # same hour one week earlier (Jan 2)
    assert hours.loc["2010-01-09 07:00", ts.TARGET] == 50.0                # mean of the observed minutes
    days, day_imputed = ts.daily_totals(hours, imputed)
    assert len(days) == 9 and day_imputed.iloc[-1] == 1
    assert np.isclose(days["total"].iloc[0], gap[:1440].sum())            # sum of the minute readings


def test_hourly_baselines_by_hand():
    # origin t = 200 (first forecast hour), horizon 3, on y[k] = k**2 / 100
    y = np.arange(400) ** 2 / 100
    base = ts.hourly_baselines(y, np.array([200]), horizon=3)
    true = ts.windows(y, [200], 3)[0]                                       # 400, 404.01, 408.04
    assert np.allclose(true, [400.0, 404.01, 408.04])
    assert np.allclose(base["persistence"][0], [396.01] * 3)                # y[199]
    assert np.allclose(base["same_hour_yesterday"][0], [309.76, 313.29, 316.84])   # y[176], y[177], y[178]
    assert np.allclose(base["same_hour_last_week"][0], [10.24, 10.89, 11.56])  # y[32], y[33], y[34]
    # MSE by hand: persistence errors 3.99, 8.00, 12.03
    mse = ts.mse_by_step(base["persistence"], true[None]).mean()
    assert np.isclose(mse, (3.99 ** 2 + 8.0 ** 2 + 12.03 ** 2) / 3)
    yest = ts.mse_by_step(base["same_hour_yesterday"], true[None])
    assert np.allclose(yest, [90.24 ** 2, 90.72 ** 2, 91.2 ** 2])
    # on a purely daily-periodic series yesterday's value is exact, persistence is not
    p = np.tile(np.arange(24.0), 20)
    o = np.array([240, 264])
    b = ts.hourly_baselines(p, o)
    assert ts.mse_by_step(b["same_hour_yesterday"], ts.windows(p, o, 24)).max() == 0
    assert np.isclose(ts.mse_by_step(b["persistence"], ts.windows(p, o, 24)).mean(), sum(k * k for k in range(24)) / 24)


def test_weekly_baselines_by_hand():
    y = np.arange(800, dtype=float) * 10
    week = ts.weekly_baselines(y, np.array([400]))
    assert np.allclose(week["daily_persistence"][0], [3990.0] * 7)
    assert np.allclose(week["weekly_persistence"][0], [3930, 3940, 3950, 3960, 3970, 3980, 3990])
    assert np.allclose(week["week_one_year_ago"][0], [360, 370, 380, 390, 400, 410, 420])
    true = ts.windows(y, [400], 7)
    # weekly persistence is off by exactly 70 every day; daily persistence by 10, 20, ..., 70
    assert np.isclose(np.sqrt(ts.mse_by_step(week["weekly_persistence"], true).mean()), 70.0)
    assert np.isclose(ts.mse_by_step(week["daily_persistence"], true).mean(), np.mean(np.square(np.arange(10, 80, 10))))


def test_electricity_refuses_a_test_period_without_readings(tmp_path, capsys):
    """Every minute from the test start on is '?': a one-line error, not a crash in the scoring."""
    lines = [line if line.split(";")[0].split("/")[1:] == ["1", "2010"] or int(line.split(";")[0].split("/")[0]) < 28
             and line.split(";")[0].split("/")[1] == "2" else ";".join(line.split(";")[:2]) + ";?;?;?;?;?;?;"
             for line in power_text_lines()]
    data.import_("electricity", [write_power(tmp_path / "raw", lines)], subset=True)
    assert main(["run", "electricity", "--quick", "--out", str(tmp_path / "runs"), *electricity_flags()]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("exoml: error: the test period has no readings"), err


def test_electricity_one_hour_protocol_trains_on_the_first_year_and_scores_the_rest(tmp_path, monkeypatch, capsys):
    """Protocol O on 400 days of hourly rows: the first 365 days train (their last 8 weeks validate),
    every later observed hour is a test target; the saved forecasts reproduce the metrics, and the
    persistence baseline is the hour before."""
    monkeypatch.setenv("EXOML_DATA", str(tmp_path / "data"))
    data._loaded.clear()
    lines = power_text_lines(start=datetime(2009, 1, 1), days=400, step_min=60)
    data.import_("electricity", [write_power(tmp_path / "raw", lines)], subset=True)
    try:
        assert main(["run", "electricity", "--quick", "--protocols", "O", "--train-start", "",
                     "--out", str(tmp_path / "runs")]) == 0
    finally:
        data._loaded.clear()
    (run,) = list((tmp_path / "runs" / "electricity").iterdir())
    m = json.loads((run / "metrics.json").read_text())
    o = np.load(run / "predictions_one_hour.npz", allow_pickle=False)
    origins = pd.to_datetime(o["origin"])
    # the hours that have a reading, and O's three sets by hand: after a 168-hour window, training up to
    # the last 8 weeks of the first 365 days, those weeks validate, every later observed hour tests
    observed = pd.DatetimeIndex(sorted({pd.Timestamp(datetime.strptime(" ".join(line.split(";")[:2]), "%d/%m/%Y %H:%M:%S"))
                                        for line in lines if "?" not in line}))
    year, val_from = pd.Timestamp("2010-01-01"), pd.Timestamp("2010-01-01") - pd.Timedelta(weeks=8)
    first = pd.Timestamp("2009-01-01") + pd.Timedelta(hours=168)
    want = [((observed >= first) & (observed < val_from)).sum(), ((observed >= val_from) & (observed < year)).sum(),
            (observed >= year).sum()]
    assert f"O: {want[0]:,} train / {want[1]:,} val / {want[2]:,} test windows" in capsys.readouterr().out
    assert origins.min() == year and m["O_test_windows"] == want[2] and o["pred_kw"].shape == (want[2], 1)
    assert np.isclose(np.sqrt(((o["pred_kw"] - o["true_kw"]) ** 2).mean()), m["O_test_rmse_kw"])
    assert np.isclose(np.sqrt(((o["baseline_persistence"] - o["true_kw"]) ** 2).mean()), m["O_persistence_rmse_kw"])
    hours = pd.Series(o["true_kw"][:, 0], index=origins)
    last = pd.Series(o["baseline_persistence"][:, 0], index=origins - pd.Timedelta(hours=1))
    both = hours.index.intersection(last.index)
    assert len(both) > 600 and np.allclose(hours[both], last[both])  # persistence = the previous hour's value
    assert set(pd.read_csv(run / "history.csv")["protocol"]) == {"O"}
    for f in ("model_one_hour.safetensors", "curves_one_hour.png", "forecast_weeks_one_hour.png"):
        assert (run / f).is_file(), f
    assert "Protocol O: the next hour" in (run / "report.md").read_text()


def test_electricity_one_hour_protocol_needs_a_year(trained, monkeypatch, capsys):
    run, _ = trained("electricity")
    monkeypatch.setenv("EXOML_DATA", str(_home(run)))
    data._loaded.clear()
    try:
        assert main(["run", "electricity", "--quick", "--out", str(run.parent.parent / "o"), "--protocols", "O",
                     "--test-start", "2010-02-28", "--val-weeks", "2"]) == 2
    finally:
        data._loaded.clear()
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "exoml: error: protocol O needs more than a year of hourly data")


def test_imdb_refuses_a_subset_too_small_to_split(tmp_path, capsys):
    data.import_("imdb", [write_aclimdb(tmp_path / "raw", n_per_label=4)], subset=True)  # 8 + 8 reviews
    assert main(["run", "imdb", "--quick", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("exoml: error: imdb needs at least 40 training reviews"), err


def test_electricity_daily_update_trains_only_on_weeks_already_observed(trained, monkeypatch):
    """--daily-update: walking forward, each member trains on every origin whose target week is over
    before the week it forecasts next (validation and test walks alike), the week just observed
    included; the saved walk-forward forecasts reproduce the validation metric."""
    from exoml.tasks.timeseries import electricity_protocols
    ref, _ = trained("electricity")
    monkeypatch.setenv("EXOML_DATA", str(_home(ref)))
    data._loaded.clear()
    real_fit, updates = electricity_protocols.loop.fit, []

    def spy(model, x, y, *args, **kw):
        if "week" in kw.get("desc", ""):
            updates.append((kw["desc"], x.numpy().copy()))
        return real_fit(model, x, y, *args, **kw)
    monkeypatch.setattr(electricity_protocols.loop, "fit", spy)
    out = ref.parent.parent / "update"
    try:
        assert main(["run", "electricity", "--quick", "--out", str(out), *electricity_flags()[:-3], "--protocols", "D",
                     "--daily-update", "2"]) == 0
    finally:
        data._loaded.clear()
    (run,) = list((out / "electricity").iterdir())
    d = np.load(run / "predictions_daily.npz", allow_pickle=False)
    m = json.loads((run / "metrics.json").read_text())
    days = pd.date_range("2010-01-01", periods=72, freq="D")
    day = lambda t: int(days.get_loc(pd.Timestamp(t)))  # noqa: E731
    # 2 members x (1 validation update before its second Sunday + 1 test update before the second test week)
    val2, test2 = day(d["val_week_start"][1]), day(d["week_start"][1])
    assert [desc for desc, _ in updates] == ["electricity D0 week 2", "electricity D0 week 2",
                                             "electricity D1 week 2", "electricity D1 week 2"]
    for (_, known), forecast_day in zip(updates, [val2, test2] * 2):
        assert known.max() + 7 == forecast_day           # the week that just ended is in, nothing later
        assert len(np.unique(known)) == len(known)
    assert np.isclose(np.sqrt(((d["val_weeks_pred_kw"] - d["val_weeks_true_kw"]) ** 2).mean()),
                      m["D_val_weeks_rmse_kw"])
    assert "trains 2 more epochs, from where it is" in (run / "report.md").read_text()
