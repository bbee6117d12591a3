"""Household electricity: LSTM forecasts of Global_active_power, hourly (protocols H and O) and daily (D).

Data: UCI household power consumption, one reading a minute, 16/12/2006 to 26/11/2010. Missing
minutes (`?`) are handled as documented in exoml.tasks.timeseries.series: an hour is the mean of its observed
minutes; an hour with no reading at all is copied from the same hour a week (else a day) earlier,
using the past only, and flagged. Splits are chronological. Protocols H and D: test from
`test_start` (2010-01-03), validation the `val_weeks` weeks before it, training everything earlier;
protocol O has its own (below). Scaling is fit on each protocol's training period only.

Protocol H: from the past 7 days of hourly values (all 7 columns, calendar features, imputed
flag) predict the next 24 hourly means of Global_active_power (kW), for every hourly forecast
origin in the test period; scored (MSE kW², MAE kW, MSE per step) on the windows whose 24 target
hours were observed, against persistence, same-hour-yesterday and same-hour-last-week forecasts
of the very same windows.
Protocol D (Brownlee's published set-up): daily totals of Global_active_power (sum of the day's
minute readings, kW), the three years before 2010 for training (here its last 26 weeks validate),
test the 46 whole Sunday-Saturday weeks from 2010-01-03; each week's 7 days are forecast from the
`window_d` days before it (21; the published models read 7 or 14), walking forward week by week
with the actual values; RMSE overall and per day, next to the naive forecasts (last day, last
week, same week a year ago) on the same weeks.
Published: naive about 465 kW, LSTM variants 368-400 kW.
Protocol O (the widely copied one-hour-ahead notebook's split): the first 365 days of hourly means
train (here their last `val_weeks_o` weeks validate), every later observed hour is a test target,
forecast from the `window_h` hours before it with H's inputs and model; RMSE (kW) against the same
naive forecasts on the same hours, and the published 0.619 kW (an LSTM reading the previous hour).
Model: LSTM encoder over the input window -> linear layer -> all horizon steps at once (direct
multi-output), MSE loss, Adam, early stopping on the validation loss; D averages a few seeds, each
trained again for its early-stopped number of epochs on all the days before the test (`--daily-refit`);
with `--daily-update N`, walking forward, each member first trains N more epochs on all the days
observed by then, training days and past weeks alike (the published models stay fixed).

Measured results: BENCHMARKS.md. `exoml run electricity --quick` runs in seconds (from 2009-09-01:
H and D test 2010, O's training year runs to 2010-09-01 and it tests the rest).
Predict: `exoml predict electricity [--run DIR]` forecasts the 24 hours after the end of the data.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from ... import data
from ...toolkit import report, train
from . import series as ts
from ...toolkit.config import Common
from .electricity_page import electricity_page
from ..contract import Headline, Profile, Reference, Task
from ...errors import ExomlError
from . import electricity_plots
from .electricity_protocols import FILE_SUFFIX, WEIGHTS, data_section, fit_best, hourly_report, protocol_d, split_origins

NAME = "electricity"
HORIZON_H = 24                        # fixed by protocol H: 24 hours (protocol D's 7 days: electricity_protocols)
HORIZON = {"H": HORIZON_H, "O": 1}    # protocol O: the next hour
YEAR_H = 365 * 24                     # protocol O: the first 365 days of hours train, the rest test


@dataclass
class Config(Common):
    # data and splits
    test_start: str = "2010-01-03"     # first test day (a Sunday: protocol D scores whole Sun-Sat weeks)
    val_weeks: int = 26                # protocols H and D: weeks right before test_start held out for early stopping
    train_start: str = ""              # ignore data before this date ('' = use all; --quick uses less)
    protocols: list[str] = field(default_factory=lambda: ["H", "D", "O"], metadata={
        "help": "H (hourly, 24 hours ahead), D (daily, week ahead), O (one hour ahead, first year trains)"})
    val_weeks_o: int = 8               # protocol O: weeks at the end of its training year held out for early stopping
    # protocols H and O: model and training (O reads the same window and features)
    window_h: int = 168                # hours of history read (7 days)
    train_stride_h: int = 1            # protocol H: hours between the origins of consecutive training windows (O uses every one: its year is small)
    rnn: str = field(default="lstm", metadata={"choices": ["lstm", "gru"], "help": "recurrent cell"})
    hidden: int = 64                   # recurrent units per layer
    layers: int = 2                    # stacked recurrent layers
    dropout: float = 0.2               # between layers and before the output layer
    loss: str = "mse"
    optimizer: str = "adam"            # all parameters of every protocol's models: adam | adamw | sgd | rmsprop
    lr: float = 1e-3                   # learning rate
    weight_decay: float = 0.0
    batch_size: int = 128              # windows per step
    epochs: int = 40                   # protocols H and O: passes over the training windows (fewer only when --patience stops early); the best validation epoch is kept
    patience: int = 5                  # protocols H and O early stopping: epochs without a better validation loss before stopping (0: off)
    grad_clip: float = 1.0             # max gradient norm
    metrics: list[str] = field(default_factory=lambda: ["mae"])
    # protocol D: a small data set (about 1,100 training days), so its own schedule
    window_d: int = 21                 # days of history read (validation RMSE, 5 seeds: 14 days 334.4 kW, 21 days 331.7; BENCHMARKS.md)
    daily_hidden: int = 64             # recurrent units (one layer)
    daily_lr: float = 1e-3
    daily_batch_size: int = 32
    daily_epochs: int = 300            # protocol D: passes over the training days (fewer only when --daily-patience stops early)
    daily_patience: int = 10           # protocol D early stopping, as --patience (0: off); the best epoch is about the 6th
    daily_ensemble: int = 3            # models with different seeds, forecasts averaged (3 did as well as 5-20 on validation: BENCHMARKS.md)
    daily_refit: bool = True           # protocol D: train each model again for its early-stopped epochs on training + validation days
    daily_update: int = field(default=0, metadata={"min": 0})  # protocol D walk-forward: N more epochs on all days observed so far (training days and past weeks) before each week's forecast; the saved daily models are then the walk's last (0: fixed, as published; 1, 2 and 4 raised the validation walk-forward RMSE by 20-39 kW: BENCHMARKS.md)


PROFILES = {
    "full": Profile({}, "protocols H and O (hourly LSTMs) and D (daily, 3-model ensemble) on all data"),
    "cpu": Profile(dict(train_stride_h=3, layers=1, epochs=15, patience=4),
                   "one-layer LSTMs for H (every third training window) and O, up to 15 epochs"),
    "quick": Profile(dict(train_start="2009-09-01", val_weeks=4, train_stride_h=4, hidden=16, layers=1, epochs=2,
             daily_hidden=16, daily_epochs=5, daily_ensemble=1),
                     "seconds: a smoke test of the pipeline"),
}


# ------------------------------------------------------------------ model ---------

class Forecaster(nn.Module):
    """Reads a (B, T, F) window, returns (B, horizon) forecasts in scaled units."""

    def __init__(self, n_features, hidden, layers, horizon, rnn="lstm", dropout=0.0):
        super().__init__()
        cell = {"lstm": nn.LSTM, "gru": nn.GRU}[rnn]
        self.rnn = cell(n_features, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, horizon))

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):  # the recurrence in float32 (bf16 RNNs drift)
            last = self.rnn(x.float())[0][:, -1]
        return self.head(last)


def hourly_frame(frame: pd.DataFrame):
    """Hourly values, imputed flag and the (T, F) model inputs before scaling."""
    hours, imputed = ts.hourly(frame)
    feats = np.concatenate([hours.to_numpy(), imputed.to_numpy(np.float64)[:, None]], 1)
    return hours, imputed, feats


def export(run_dir, info):
    """`exoml export electricity`: protocol H's Forecaster and its test windows (electricity_export.py)."""
    from .electricity_export import export_run
    return export_run(NAME, Forecaster, hourly_frame, HORIZON_H, run_dir, info)


# ------------------------------------------------------------------ run -----------

def run(cfg: Config, run) -> tuple[dict, str]:
    g = train.seed_everything(cfg.seed)
    device = train.pick_device(cfg.device)
    unknown = set(cfg.protocols) - {"H", "D", "O"}
    if unknown or not cfg.protocols:
        raise ExomlError(f"unknown protocol(s) {sorted(unknown)}: choose among H, D and O")
    try:
        test_start = pd.Timestamp(cfg.test_start)
        pd.Timestamp(cfg.train_start or "2000-01-01")
    except ValueError:
        raise ExomlError(f"test_start / train_start must be dates like 2010-01-03 "
                         f"(got {cfg.test_start!r}, {cfg.train_start!r})") from None
    ds = data.load(NAME)
    val_start = test_start - pd.Timedelta(weeks=cfg.val_weeks)
    hours, imputed, feats = hourly_frame(ds.frame)
    days, day_imputed = ts.daily_totals(hours, imputed)
    if {"H", "D"} & set(cfg.protocols):  # their split: training, validation weeks, test from test_start
        check_split(hours.index, ~imputed.to_numpy(), val_start, test_start)
    metrics, sections, scaler = {"missing_minutes": int(ds.missing_rows), "imputed_hours": int(imputed.sum())}, [], {}
    print(f"[electricity] {len(ds.frame):,} minutes, {ds.missing_rows:,} missing; {len(hours):,} hours "
          f"({int(imputed.sum())} without any reading: imputed), {len(days)} complete days", flush=True)

    # --- explore: the whole series with its missing stretches and the splits, the daily rhythm
    run.save_figure(electricity_plots.overview(hours, imputed, days, val_start, test_start), "overview.png")
    sections.append(data_section(ds, imputed, val_start, test_start))

    # --- protocols H and O read the same hourly inputs: the 7 columns, the imputed flag, calendar
    x_all = np.concatenate([feats, ts.calendar(hours.index)], 1)
    y_kw, imp = hours[ts.TARGET].to_numpy(), imputed.to_numpy()

    # --- protocol H: 7 days of hourly inputs -> the next 24 hours
    if "H" in cfg.protocols:
        split = split_origins(hours.index, cfg.window_h, HORIZON_H, val_start, test_start, cfg.train_start or None)
        split = {k: o[~ts.windows(imp, o, HORIZON_H).any(1)] for k, o in split.items()}  # observed targets only
        split["train"] = split["train"][::cfg.train_stride_h]
        empty = [k for k, o in split.items() if len(o) == 0]
        if empty:
            raise ExomlError(f"protocol H: no {' or '.join(empty)} window has 24 observed hours to forecast; "
                             "import data with more readings there, or move --test-start / --val-weeks")
        mean, std = hourly_scale(x_all[hours.index < val_start])
        scaler["hourly"] = {"mean": mean.tolist(), "std": std.tolist()}
        metrics |= _protocol_hourly(cfg, run, g, device, x_all, mean, std, y_kw, split, hours.index, sections, "H")

    # --- protocol O: the next hour from the hours before it; the first 365 days train, the rest test
    if "O" in cfg.protocols:
        first = int(np.searchsorted(hours.index, pd.Timestamp(cfg.train_start))) if cfg.train_start else 0
        end_train = first + YEAR_H
        val_from = end_train - 7 * 24 * cfg.val_weeks_o
        o = np.arange(first + cfg.window_h, len(hours))
        o = o[~imp[o]]                                    # observed targets only
        split = {"train": o[o < val_from], "val": o[(o >= val_from) & (o < end_train)], "test": o[o >= end_train]}
        empty = [k for k, v in split.items() if len(v) == 0]
        if empty:
            raise ExomlError(f"protocol O needs more than a year of hourly data after --train-start ({len(hours) - first:,} "
                             f"hours); no {' or '.join(empty)} hours")
        mean, std = hourly_scale(x_all[first:val_from])
        scaler["one_hour"] = {"mean": mean.tolist(), "std": std.tolist()}
        metrics |= _protocol_hourly(cfg, run, g, device, x_all, mean, std, y_kw, split, hours.index, sections, "O")

    # --- protocol D: window_d days of daily inputs -> the next week, walk-forward over the test weeks; an
    # ensemble of Forecasters (electricity_protocols.protocol_d: inputs, fit, scoring, report section)
    if "D" in cfg.protocols:
        metrics |= protocol_d(cfg, run, device, Forecaster, days, day_imputed, val_start, test_start, scaler, sections)

    run.save_json("scaler.json", scaler)
    intro = (f"LSTM forecasters of the household's active power on {train.device_name(device)}: protocol H "
             f"(hourly, 24 h ahead), protocol D (daily totals, week ahead, the published set-up) and protocol O "
             f"(one hour ahead, the first year trains: the published notebook's split).")
    return metrics, report.render("Household electricity forecasting", intro, cfg, metrics, sections)


def check_split(index: pd.DatetimeIndex, observed: np.ndarray, val_start, test_start) -> None:
    """Protocols H and D: the data must hold the validation and test starts, and each of the three
    periods some readings (a period of '?' only has nothing to learn or score)."""
    if not (index[0] < val_start < test_start < index[-1]):
        raise ExomlError(f"the data ({index[0]:%Y-%m-%d} to {index[-1]:%Y-%m-%d}) does not contain "
                         f"the validation start {val_start:%Y-%m-%d} and test start {test_start:%Y-%m-%d}")
    for period, inside in (("training", index < val_start), ("validation", (index >= val_start) & (index < test_start)),
                           ("test", index >= test_start)):
        if not (observed & inside).any():
            raise ExomlError(f"the {period} period has no readings (every minute is missing); "
                             "import data with readings there, or move --test-start / --val-weeks")


def hourly_scale(x_fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of the hourly inputs over the rows a protocol trains on; the imputed flag and the
    calendar's sin/cos (the last 7 columns) stay as they are."""
    mean, std = x_fit.mean(0), x_fit.std(0) + 1e-6
    mean[-7:], std[-7:] = 0.0, 1.0
    return mean, std


def _protocol_hourly(cfg, run, g, device, x_all, mean, std, y_kw, split, index, sections, tag) -> dict:
    """Protocols H (horizon 24) and O (horizon 1): a Forecaster over window_h hours of inputs, fit
    with early stopping, scored on the test origins against the naive hourly forecasts."""
    horizon = HORIZON[tag]
    feats = torch.as_tensor((x_all - mean) / std, dtype=torch.float32, device=device)
    y_scaled = (y_kw - mean[0]) / std[0]                     # column 0 is Global_active_power
    offs = torch.arange(-cfg.window_h, 0, device=device)
    window = lambda o: feats[o[:, None] + offs]  # noqa: E731  origins -> (B, window_h, F), built on the device
    xy = {k: (torch.as_tensor(o), torch.as_tensor(ts.windows(y_scaled, o, horizon), dtype=torch.float32))
          for k, o in split.items()}
    if cfg.dry_run:
        xy = {k: (a[:cfg.batch_size], b[:cfg.batch_size]) for k, (a, b) in xy.items()}
    model = Forecaster(feats.shape[1], cfg.hidden, cfg.layers, horizon, cfg.rnn, cfg.dropout).to(device)
    print(f"[electricity] {tag}: {len(xy['train'][0]):,} train / {len(xy['val'][0]):,} val / {len(xy['test'][0]):,} "
          f"test windows", flush=True)
    t0 = time.time()
    rows = fit_best(model, *xy["train"], xy["val"], window, cfg.lr, cfg.batch_size, cfg.epochs, cfg.patience,
                    cfg, run, g, tag)
    train_s = time.time() - t0
    o_test = xy["test"][0].numpy()
    pred = train.predict(model, xy["test"][0], 1024, transform=window).numpy() * std[0] + mean[0]
    true = ts.windows(y_kw, o_test, horizon)
    base = ts.hourly_baselines(y_kw, o_test, horizon)
    per_step = {"model": ts.mse_by_step(pred, true)} | {k: ts.mse_by_step(v, true) for k, v in base.items()}
    mse = {k: float(v.mean()) for k, v in per_step.items()}
    best_base = min(base, key=mse.get)
    out = {f"{tag}_test_mse_kw2": mse["model"], f"{tag}_test_rmse_kw": float(np.sqrt(mse["model"])),
           f"{tag}_test_mae_kw": float(np.abs(pred - true).mean()),
           f"{tag}_test_windows": len(o_test), f"{tag}_best_baseline": best_base,
           f"{tag}_best_baseline_mse_kw2": mse[best_base], f"{tag}_mse_vs_best_baseline": mse["model"] / mse[best_base] - 1,
           f"{tag}_epochs": len(rows), f"{tag}_train_s": round(train_s, 1)}
    out |= {f"{tag}_{k}_mse_kw2": mse[k] for k in base} | {f"{tag}_{k}_mae_kw": float(np.abs(v - true).mean())
                                                           for k, v in base.items()}
    out |= {f"{tag}_{k}_rmse_kw": float(np.sqrt(mse[k])) for k in base}
    suffix = FILE_SUFFIX[tag]
    run.save_arrays(f"predictions_{suffix}.npz", origin=index[o_test].to_numpy(), true_kw=true, pred_kw=pred,
                    **{f"baseline_{k}": v for k, v in base.items()})
    run.save_weights(train.state_dict_for_save(model), WEIGHTS[tag], meta={"task": NAME, "protocol": tag, "n_features": feats.shape[1]})
    # verification plots (learning curves, sample weeks, H's error by horizon step) and the report section
    sections.append(hourly_report(run, tag, rows, per_step, mse, out, base, best_base, index, o_test, pred, true))
    return out


# ------------------------------------------------------------------ predict -------

def add_predict_args(parser) -> None:
    pass  # the input is the end of the cached data set; --run picks the model


def predict(args) -> int:
    from ...toolkit.runs import Run
    from ...toolkit.weights import load_state, open_run
    run_dir, info = open_run(NAME, args.run, args.out)
    c = info["config"]
    if "H" not in c.get("protocols", ["H"]):
        raise ExomlError(f"{run_dir} has no hourly model (it ran protocols {c['protocols']}); train one with H")
    try:
        sc = json.loads((run_dir / "scaler.json").read_text())["hourly"]
    except (OSError, json.JSONDecodeError, KeyError):
        raise ExomlError(f"{run_dir} has no readable scaler.json with hourly statistics") from None
    hours, imputed, feats = hourly_frame(data.load(NAME).frame)
    x = np.concatenate([feats, ts.calendar(hours.index)], 1)[-c["window_h"]:]
    x = torch.as_tensor((x - np.array(sc["mean"])) / np.array(sc["std"]), dtype=torch.float32)[None]
    model = Forecaster(x.shape[-1], c["hidden"], c["layers"], HORIZON_H, c["rnn"], c["dropout"])
    load_state(model, run_dir / "model.safetensors", task=NAME)
    model.eval()
    with torch.no_grad():
        kw = model(x)[0].numpy() * sc["std"][0] + sc["mean"][0]
    start = hours.index[-1] + pd.Timedelta(hours=1)
    stamps = start + pd.to_timedelta(np.arange(HORIZON_H), "h")
    print(f"forecast of Global_active_power (hourly mean, kW) after the last reading "
          f"({hours.index[-1]:%Y-%m-%d %H:%M} hour):")
    for t, v in zip(stamps, kw):
        print(f"  {t:%Y-%m-%d %H:%M}  {v:6.3f}")
    past = hours[ts.TARGET].iloc[-c["window_h"]:]
    fig = electricity_plots.next_day(past, stamps, kw, start)
    out = Run(run_dir).save_figure(fig, f"predictions/forecast-{start:%Y%m%d-%H%M}.png")
    print(f"plot: {out}")
    return 0


TASK = Task(
    name=NAME, exercise="Household electricity forecasting", dataset="electricity",
    model="RNN (LSTM) forecaster: next 24 hours from the last 7 days (H); next week from 21 days (D); next hour (O)",
    headline=Headline("H_test_mse_kw2", "test MSE, protocol H (kW²)", higher_is_better=False),
    reference=Reference("no standard figure for protocol H; protocol D's weekly RMSE (D_test_rmse_kw): naive "
                        "465 kW, LSTM 368-400 kW", None,
                        "Brownlee, multi-step LSTM forecasting of household power"),
    page=electricity_page(),
    config=Config, profiles=PROFILES, run=run, predict=predict, add_predict_args=add_predict_args, export=export,
    tune_note="its history mixes protocols H, D and O; tune protocol H with --protocols H --metric val_loss")
