"""Time-series helpers for the electricity task: missing values, hourly/daily series, windows, baselines.

Missing values (the UCI file writes `?`; about 1.25% of the minutes), handled in two steps:
  1. inside an hour, missing minutes are simply left out: the hour's value is the mean of
     its observed minutes (a short gap is bridged by the rest of the hour);
  2. an hour with no reading at all is *imputed* from the past only: the same hour one week
     earlier, else one day earlier, else two/three weeks or two/three days earlier (whichever is
     first available); it is flagged, so forecasts can be scored on observed hours only.
Only past values are used, so no imputed input ever carries information from its future.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

TARGET = "Global_active_power"
PAST_LAGS_H = (168, 24, 336, 48, 504, 72)   # hours back: last week, yesterday, 2 weeks, 2 days, ...
MINUTES_PER_HOUR = 60


def hourly(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """(hourly means with gaps imputed, bool Series: True where the hour had no reading at all).
    The index is the regular hourly grid from the first to the last reading."""
    mean = frame.resample("h").mean()                 # NaN-skipping: the mean of the observed minutes
    empty = mean[TARGET].isna()
    filled = mean.copy()
    for lag in PAST_LAGS_H:
        filled = filled.fillna(mean.shift(lag))       # shift(lag): the value `lag` hours earlier
    # Only the very start of the data (no past to copy from) can still be empty.
    filled = filled.bfill()
    return filled, empty.rename("imputed")


def daily_totals(hours: pd.DataFrame, imputed: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """Complete days only: (daily means of every column plus `total`, the day's Global_active_power
    summed over its minutes as in the published protocol (kW; /60 gives kWh);
    number of imputed hours per day)."""
    counts = hours[TARGET].resample("D").count()
    days = hours.resample("D").mean()
    days["total"] = hours[TARGET].resample("D").sum() * MINUTES_PER_HOUR
    keep = counts == 24                               # drop the partial first and last day
    return days[keep], imputed.resample("D").sum()[keep].astype(int)


def calendar(index: pd.DatetimeIndex, hour: bool = True) -> np.ndarray:
    """Cyclic calendar features (sin, cos) for hour of day, day of week and day of year."""
    parts = [(index.day_of_week + (index.hour / 24 if hour else 0)) / 7, (index.day_of_year - 1) / 365.25]
    if hour:
        parts.insert(0, index.hour / 24)
    return np.stack([f(2 * np.pi * np.asarray(p, dtype=np.float64)) for p in parts for f in (np.sin, np.cos)], 1)


def gaps(mask: pd.Series) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(start, end) of each run of True in a boolean series with a regular index."""
    m = mask.to_numpy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], m.astype(np.int8), [0]])))
    idx = mask.index
    step = idx[1] - idx[0] if len(idx) > 1 else pd.Timedelta(hours=1)
    return [(idx[a], idx[b - 1] + step) for a, b in zip(edges[::2], edges[1::2])]


def windows(series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """(N, horizon): series[t], ..., series[t + horizon - 1] for each origin t (first forecast step)."""
    return series[np.asarray(origins)[:, None] + np.arange(horizon)]


def hourly_baselines(y: np.ndarray, origins: np.ndarray, horizon: int = 24) -> dict[str, np.ndarray]:
    """Naive forecasts of y[t .. t+horizon-1] made at origin t, from y[:t] only.
    persistence: the last hour y[t-1] for every step; same hour yesterday: y[t+h-24];
    same hour last week: y[t+h-168]."""
    if horizon > 24:
        raise ValueError("same-hour-yesterday needs a horizon of at most 24 hours")
    o = np.asarray(origins)[:, None]
    h = np.arange(horizon)[None, :]
    return {"persistence": np.broadcast_to(y[o - 1], (len(o), horizon)).copy(),
            "same_hour_yesterday": y[o + h - 24],
            "same_hour_last_week": y[o + h - 168]}


def weekly_baselines(y: np.ndarray, origins: np.ndarray) -> dict[str, np.ndarray]:
    """Naive forecasts of the 7 days y[t .. t+6] from y[:t]: the last day repeated, the last week
    repeated ("naive weekly"), and the same week one year (52 weeks) earlier when the series
    reaches back that far."""
    o = np.asarray(origins)[:, None]
    d = np.arange(7)[None, :]
    out = {"daily_persistence": np.broadcast_to(y[o - 1], (len(o), 7)).copy(), "weekly_persistence": y[o + d - 7]}
    if o.min() >= 364:
        out["week_one_year_ago"] = y[o + d - 364]
    return out


def mse_by_step(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    return ((np.asarray(pred, dtype=np.float64) - true) ** 2).mean(0)
