"""The electricity page in `exoml serve`: pick a day of the test period and see the run's 24-hour
forecast made at its midnight against what happened and the naive baselines. These are the
forecasts the run scored on its test windows (predictions_hourly.npz, written by protocol H), so
the page needs neither the data set nor a second copy of the inference code."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...errors import ExomlError
from ...serve.page import BadInput, Bars, Field, Page, Picture, Table, Verdict, png_of_figure


def load_test_forecasts(run_dir, info) -> dict:
    """{day (YYYY-MM-DD): index of its midnight window} and the run's test forecasts (kW)."""
    if "H" not in info.get("config", {}).get("protocols", ["H"]):
        raise ExomlError(f"{run_dir.name} has no hourly model (it ran protocols {info['config']['protocols']})")
    try:
        with np.load(run_dir / "predictions_hourly.npz", allow_pickle=False) as p:
            arrays = {k: p[k] for k in p.files}
    except (OSError, ValueError, KeyError):
        raise ExomlError(f"{run_dir.name} has no readable predictions_hourly.npz") from None
    origins = pd.DatetimeIndex(arrays["origin"])
    days = {f"{t:%Y-%m-%d}": i for i, t in enumerate(origins) if t.hour == 0}
    if not days:
        raise ExomlError(f"{run_dir.name}: no test window starts at midnight")
    return {"days": days, "origins": origins, **arrays}


def figure(start, true, pred, baselines: dict):
    import matplotlib.pyplot as plt
    hours = np.arange(24)
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.plot(hours, true, color="k", lw=2, marker="o", ms=3, label="what happened")
    ax.plot(hours, pred, color="tab:blue", lw=2, marker="o", ms=3, label="LSTM forecast")
    for (name, v), style in zip(baselines.items(), ("--", ":", "-.")):
        ax.plot(hours, v, ls=style, lw=1.2, label=name.replace("_", " "))
    ax.set(xlabel=f"hour of {start:%A %Y-%m-%d}", ylabel="kW (hourly mean)", xticks=hours[::2],
           title="24-hour forecast made at midnight vs what happened")
    ax.legend(fontsize=8, ncol=2)
    return fig


def electricity_page() -> Page:
    def fields(state):
        days = list(state["days"])
        return [Field("day", "Day of the test period", "select", default=days[0], choices=[(d, d) for d in days],
                      help=f"{len(days)} days whose 24 hours were all observed")]

    def answer(state, inputs):
        i = state["days"].get(inputs["day"])
        if i is None:
            raise BadInput(f"{inputs['day']!r} is not a day of the test period")
        true, pred = state["true_kw"][i], state["pred_kw"][i]
        base = {k.removeprefix("baseline_"): state[k][i] for k in state if k.startswith("baseline_")}
        mse = {"LSTM": float(((pred - true) ** 2).mean())} | {k: float(((v - true) ** 2).mean())
                                                              for k, v in base.items()}
        best = min(mse, key=mse.get)
        start = state["origins"][i]
        return [Verdict(f"{start:%A %Y-%m-%d}: forecast MSE {mse['LSTM']:.3f} kW² "
                        f"({'best of all' if best == 'LSTM' else f'the best was {best}'})"),
                Picture("forecast vs what happened", png_of_figure(figure(start, true, pred, base))),
                Bars("mean squared error of the day (kW², lower is better)",
                     [(k.replace("_", " "), v) for k, v in sorted(mse.items(), key=lambda kv: kv[1])],
                     signed=True, unit=""),
                Table("hour by hour (kW)", [{"hour": f"{h:02d}:00", "actual": float(true[h]), "LSTM": float(pred[h]),
                                             **{k.replace("_", " "): float(v[h]) for k, v in base.items()}}
                                            for h in range(24)])]

    return Page(about="Pick a day of the test period: the run's hourly forecaster predicted its 24 hours from the "
                      "7 days before it; see that forecast against what the household used and against the naive "
                      "forecasts (the last hour, the same hour yesterday, the same hour last week).",
                load=load_test_forecasts, fields=fields, answer=answer, submit="Show the day")
