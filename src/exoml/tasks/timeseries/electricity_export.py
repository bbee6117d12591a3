"""`exoml export electricity`: protocol H's forecaster (7 days of scaled hourly features -> the next 24
hours), verified on the run's test windows."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import ExomlError
from ..contract import Export
from . import series as ts

CALENDAR = ["hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "yearday_sin", "yearday_cos"]  # ts.calendar


def export_run(task: str, forecaster, hourly_frame, horizon: int, run_dir: Path, info: dict,
               batch_size: int = 1024) -> Export:
    import torch
    from ... import data
    from ...toolkit.weights import load_state
    c = info["config"]
    if "H" not in c.get("protocols", ["H"]):
        raise ExomlError(f"{run_dir} has no hourly model (it ran protocols {c['protocols']}); train one with H")
    try:
        sc = json.loads((run_dir / "scaler.json").read_text())["hourly"]
        with np.load(run_dir / "predictions_hourly.npz", allow_pickle=False) as p:
            origins = p["origin"]
    except (OSError, ValueError, KeyError):
        raise ExomlError(f"{run_dir} has no readable scaler.json and predictions_hourly.npz (its test windows)") \
            from None
    mean, std = np.asarray(sc["mean"]), np.asarray(sc["std"])
    hours, _, feats = hourly_frame(data.load(task).frame)
    pos = hours.index.get_indexer(origins)
    if (pos < c["window_h"]).any():
        raise ExomlError(f"the imported electricity data no longer holds the test windows of {run_dir}")
    x = ((np.concatenate([feats, ts.calendar(hours.index)], 1) - mean) / std).astype(np.float32)
    offs = np.arange(-c["window_h"], 0)
    model = forecaster(x.shape[1], c["hidden"], c["layers"], horizon, c["rnn"], c["dropout"])
    load_state(model, run_dir / "model.safetensors", task=task)
    model = model.float().eval()

    def batches():
        for i in range(0, len(pos), batch_size):
            yield (x[pos[i:i + batch_size, None] + offs],)

    names = [*hours.columns, "imputed", *CALENDAR]
    preprocessing = {
        "input": f"float32 (N, {c['window_h']}, {len(names)}): the {c['window_h']} hours before the first forecast "
                 "hour, oldest first; per hour the features below, each scaled as (value - mean) / std",
        "features": names, "mean": mean.tolist(), "std": std.tolist(),
        "hourly_values": "the mean of the hour's observed minute readings; an hour without any reading is copied "
                         "from the same hour a week (else a day) earlier and its `imputed` feature is 1",
        "calendar": "sin and cos of 2 pi x (hour / 24; (weekday + hour / 24) / 7 with Monday = 0; "
                    "(day of year - 1) / 365.25)",
        "output": f"forecast (N, {horizon}) in scaled units: kW = forecast * {std[0]!r} + {mean[0]!r} "
                  f"(hourly mean of {ts.TARGET} for the next {horizon} hours)"}
    return Export(
        module=model, inputs=(torch.zeros(2, c["window_h"], len(names)),), input_names=("window",),
        output_names=("forecast",), dynamic_axes={"window": {0: "batch"}, "forecast": {0: "batch"}},
        metadata={"target": ts.TARGET, "horizon_hours": horizon, "preprocessing": preprocessing,
                  "scaler": {"mean": mean.tolist(), "std": std.tolist()}},
        evaluation=batches, evaluated=f"the run's protocol H test windows ({len(pos):,} forecast origins)")
