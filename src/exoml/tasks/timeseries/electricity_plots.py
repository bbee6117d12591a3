"""Figures of the electricity task. Each returns a matplotlib Figure; the task saves it with
run.save_figure (atomic, closes it)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.dates import DateFormatter

from . import series as ts
from ...toolkit.plots import plt


def overview(hours: pd.DataFrame, imputed: pd.Series, days: pd.DataFrame, val_start, test_start):
    """The whole series (daily means) with its missing stretches and the splits; the daily rhythm."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 3.6), gridspec_kw={"width_ratios": [3, 1]})
    daily_kw = hours[ts.TARGET].resample("D").mean()
    a.plot(daily_kw.index, daily_kw.to_numpy(), lw=0.7, color="tab:blue", label="daily mean")
    for s, e in ts.gaps(imputed):
        a.axvspan(s, e, color="tab:red", alpha=0.5, lw=0)
    a.axvspan(val_start, test_start, color="tab:orange", alpha=0.12, label="validation")
    a.axvspan(test_start, hours.index[-1], color="tab:green", alpha=0.12, label="test")
    a.plot([], [], color="tab:red", lw=4, alpha=0.5, label="no reading (imputed)")
    a.set(ylabel="Global active power (kW)", title="series overview")
    a.legend(fontsize=7, loc="upper right")
    prof = hours[ts.TARGET].groupby([hours.index.day_of_week >= 5, hours.index.hour]).mean().unstack(0)
    for weekend, name in ((False, "weekdays"), (True, "weekend")):
        if weekend in prof:
            b.plot(prof.index, prof[weekend], label=name)
    b.set(xlabel="hour of day", ylabel="mean kW", title="daily rhythm")
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig


def horizon_errors(per_step: dict[str, np.ndarray]):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, v in per_step.items():
        ax.plot(np.arange(1, len(v) + 1), v, marker="o", ms=3, lw=2.5 if k == "model" else 1, label=k)
    ax.set(xlabel="hours ahead", ylabel="test MSE (kW²)", title="protocol H: error by horizon step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def sample_weeks(index, origins, pred, true, yesterday, n: int = 3, tag: str = "H"):
    """n test weeks spread over the year: day-ahead forecasts issued at midnight, day after day
    (horizon 24, protocol H), or every hour's forecast of the next hour (horizon 1, protocol O)."""
    horizon = pred.shape[1]
    times = index[origins]
    midnight = np.flatnonzero(times.hour == 0)
    issued = midnight if horizon > 1 else np.arange(len(origins))
    starts = midnight[np.linspace(0, max(len(midnight) - 8, 0), n).astype(int)] if len(midnight) else []
    fig, axes = plt.subplots(len(starts) or 1, 1, figsize=(11, 2.4 * max(len(starts), 1)), squeeze=False)
    for ax, s in zip(axes[:, 0], starts):
        sel = issued[(issued >= s) & (times[issued] < times[s] + pd.Timedelta(days=7))]
        t = np.concatenate([times[i] + pd.to_timedelta(np.arange(horizon), "h") for i in sel])
        ax.plot(t, np.concatenate([true[i] for i in sel]), color="k", lw=1, label="actual")
        ax.plot(t, np.concatenate([pred[i] for i in sel]), color="tab:blue", lw=1.3, label="LSTM")
        ax.plot(t, np.concatenate([yesterday[i] for i in sel]), color="tab:orange", lw=0.8, alpha=0.7,
                label="same hour yesterday")
        ax.set_ylabel("kW")
        ax.legend(fontsize=7, loc="upper right")
    axes[0, 0].set_title(f"protocol {tag}: " + ("day-ahead forecasts issued at midnight (test weeks)" if horizon > 1
                                                     else "each hour forecast from the hours before it (test weeks)"))
    fig.tight_layout()
    return fig


def daily_forecast(stamps, true, pred, last_week, day_names: list[str], rmse_day: dict[str, np.ndarray]):
    """Protocol D: the walk-forward forecasts of every test week, and the RMSE by day of the week."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [3, 1.2]})
    a.plot(stamps, true.reshape(-1), color="k", lw=1, label="actual")
    a.plot(stamps, pred.reshape(-1), color="tab:blue", lw=1.2, label="LSTM (walk-forward, week by week)")
    a.plot(stamps, last_week.reshape(-1), color="tab:orange", lw=0.8, alpha=0.7, label="last week")
    a.set(ylabel="daily total (kW)", title=f"protocol D: the test weeks from {stamps[0]:%Y-%m-%d}")
    a.xaxis.set_major_formatter(DateFormatter("%b"))
    a.legend(fontsize=8)
    for k, v in rmse_day.items():
        b.plot(day_names, v, marker="o", lw=2.5 if k == "model" else 1, label=k)
    b.set(ylabel="RMSE (kW)", title="error by day of the week")
    b.legend(fontsize=7)
    fig.tight_layout()
    return fig


def next_day(past: pd.Series, stamps, kw: np.ndarray, start):
    """`exoml predict electricity`: the last days of data and the forecast of the next 24 hours."""
    fig, ax = plt.subplots(figsize=(11, 3.4))
    ax.plot(past.index, past.to_numpy(), color="k", lw=1, label="last 7 days (actual)")
    ax.plot(stamps, kw, color="tab:blue", lw=2, marker="o", ms=3, label="LSTM forecast, next 24 h")
    ax.plot(stamps, past.to_numpy()[-24:], color="tab:orange", lw=1, alpha=0.8, label="same hour yesterday")
    ax.set(ylabel="kW", title=f"24-hour forecast from {start:%Y-%m-%d %H:%M}")
    ax.legend(fontsize=8)
    return fig
