"""The electricity task's shared pieces: forecast origins split by where the target lies, the
early-stopping fit of every protocol (on toolkit/loop.py), protocol D's whole walk-forward (Brownlee's
daily set-up), and the report sections of the data and of the hourly protocols H and O."""
from __future__ import annotations

import copy
import time

import numpy as np
import pandas as pd
import torch

from ...toolkit import loop, plots, report, train
from . import series as ts
from ...errors import ExomlError
from . import electricity_plots

TASK = "electricity"
HORIZON_D = 7                          # fixed by protocol D: 7 days
FILE_SUFFIX = {"H": "hourly", "O": "one_hour"}  # the hourly protocols' predictions and figures
WEIGHTS = {"H": "model.safetensors", "O": "model_one_hour.safetensors"}  # H's is the run's model (predict, export)
DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]


def split_origins(index: pd.DatetimeIndex, window: int, horizon: int, val_start, test_start, start=None):
    """Positions t of the first forecast step: train/val/test by where the whole target lies."""
    t = np.arange(window, len(index) - horizon + 1)
    first, last = index[t], index[t + horizon - 1]
    lo = pd.Timestamp(start) if start else index[0]
    return {"train": t[(index[t - window] >= lo) & (last < val_start)],
            "val": t[(first >= val_start) & (last < test_start)],
            "test": t[first >= test_start]}


def fit_best(model, x, y, val, transform, cfg_lr, batch, epochs, patience, cfg, run, g, tag):
    """loop.fit with early stopping on the validation loss (the best weights are kept); val None:
    exactly `epochs` epochs, no validation. Each fit has its own checkpoint in the run folder."""
    loss_fn, opt, _ = train.compile(model, cfg.loss, cfg.optimizer, cfg_lr, cfg.metrics, cfg.weight_decay)

    def show(row):
        if tag in ("H", "O") or row["epoch"] % 50 == 0:
            val_loss = f", val loss {row['val_loss']:.4f}" if "val_loss" in row else ""
            print(f"[electricity] {tag} epoch {row['epoch']}: train loss {row['train_loss']:.4f}{val_loss} "
                  f"({row['time_s']:.0f}s)", flush=True)
    validate = loop.validation(*val, loss_fn, cfg.metrics, transform=transform) if val is not None else None
    return loop.fit(model, x, y, loss_fn, [opt], [], epochs=1 if cfg.dry_run else epochs, batch_size=batch,
                    transform=transform, metrics=cfg.metrics, validate=validate,
                    monitor="val_loss" if val is not None else None,
                    patience=patience if val is not None else None, grad_clip=cfg.grad_clip, generator=g,
                    drop_last=False,
                    max_steps=1 if cfg.dry_run else None, log=lambda row: run.log_epoch({"protocol": tag, **row}),
                    on_epoch=show, run=run, checkpoint=f"checkpoint-{tag}.safetensors", desc=f"electricity {tag}")


def data_section(ds, imputed, val_start, test_start) -> tuple[str, str]:
    return ("Data and missing values", (
        f"{len(ds.frame):,} minute rows, {ds.missing_rows:,} with missing values (`?`, "
        f"{ds.missing_rows / len(ds.frame):.2%}). Hourly means use the observed minutes of each hour; "
        f"{int(imputed.sum())} hours without any reading (in {len(ts.gaps(imputed))} stretches, red) are copied "
        f"from the same hour a week (else a day) earlier; protocols H and O never score them (protocol D, like the "
        f"published set-up, scores every day). Training before "
        f"{val_start:%Y-%m-%d}, validation until {test_start:%Y-%m-%d}, test after (chronological, no shuffling "
        f"across the boundaries); scaling statistics from the training period only.\n\n{report.img('overview.png')}"))


def hourly_report(run, tag, rows, per_step, mse, out, base, best_base, index, o_test, pred, true) -> tuple[str, str]:
    """Protocol H's or O's verification plots (learning curves, error by horizon step, forecasts of
    sample weeks) and its report section."""
    suffix = FILE_SUFFIX[tag]
    run.save_figure(plots.history_curves(rows, title=f"protocol {tag}: training"), f"curves_{suffix}.png")
    run.save_figure(electricity_plots.sample_weeks(index, o_test, pred, true, base["same_hour_yesterday"], tag=tag),
                    f"forecast_weeks_{suffix}.png")
    table = [{"forecast": k, "RMSE (kW)": float(np.sqrt(mse[k])), "MSE (kW²)": mse[k],
              "MAE (kW)": out.get(f"{tag}_{k}_mae_kw", out[f"{tag}_test_mae_kw"])} for k in per_step]
    vs_best = (f"Model MSE is {out[f'{tag}_mse_vs_best_baseline']:+.1%} relative to the best baseline ({best_base})")
    if tag == "O":
        return ("Protocol O: the next hour, the first year trains (the published notebook's split)", (
            f"{len(o_test):,} test hours (every observed hour after the first 365 days), each forecast from the "
            f"window of hours before it (the inputs of protocol H); baselines on exactly the same hours. {vs_best}. Published (an "
            f"LSTM reading the previous hour only): RMSE 0.619 kW.\n\n{report.md_table(table)}\n\n"
            f"{report.img('forecast_weeks_one_hour.png')}\n\n{report.img('curves_one_hour.png')}"))
    run.save_figure(electricity_plots.horizon_errors(per_step), "error_by_horizon_hourly.png")
    return ("Protocol H: 24 hours ahead from 7 days of hourly data", (
        f"{len(o_test):,} test windows (every hourly origin in the test period whose 24 target hours were "
        f"observed); baselines on exactly the same windows. {vs_best}; target: at most -20%.\n\n"
        f"{report.md_table(table)}\n\n"
        f"{report.img('error_by_horizon_hourly.png')}\n\n{report.img('forecast_weeks_hourly.png')}\n\n"
        f"{report.img('curves_hourly.png')}"))


def protocol_d(cfg, run, device, model_cls, days, day_imputed, val_start, test_start, scaler, sections) -> dict:
    """cfg.window_d days of daily inputs -> the next week, walk-forward over the test weeks; an ensemble of
    model_cls (the task's Forecaster) with different seeds, scored against the naive forecasts."""
    # inputs: daily means of the 7 columns, the share of imputed hours, calendar; target: the daily total
    x_all = np.concatenate([days[ds_cols(days)].to_numpy(), (day_imputed.to_numpy() / 24)[:, None],
                            ts.calendar(days.index, hour=False)], 1)
    total = days["total"].to_numpy()
    train_rows = days.index < val_start
    mean, std = x_all[train_rows].mean(0), x_all[train_rows].std(0) + 1e-6
    mean[-5:], std[-5:] = 0.0, 1.0
    t_mean, t_std = total[train_rows].mean(), total[train_rows].std()
    scaler["daily"] = {"mean": mean.tolist(), "std": std.tolist(), "total_mean": t_mean, "total_std": t_std}
    feats = torch.as_tensor((x_all - mean) / std, dtype=torch.float32, device=device)
    y_scaled = (total - t_mean) / t_std
    offs = torch.arange(-cfg.window_d, 0, device=device)
    window = lambda o: feats[o[:, None] + offs]              # noqa: E731
    split = split_origins(days.index, cfg.window_d, HORIZON_D, val_start, test_start, cfg.train_start or None)
    first = int(np.searchsorted(days.index, test_start))
    n_weeks = (len(days) - first) // 7
    split["test"] = first + 7 * np.arange(n_weeks)           # each test Sunday; inputs: the actual days before
    if n_weeks == 0 or len(split["train"]) == 0 or len(split["val"]) == 0:
        raise ExomlError("protocol D needs training, validation and at least one whole test week of daily data")
    def pairs(o):  # (origins, their scaled target weeks)
        return torch.as_tensor(o), torch.as_tensor(ts.windows(y_scaled, o, HORIZON_D), dtype=torch.float32)

    def new_member(m):  # a member's fit and its refit start from the same seed
        g = train.seed_everything(cfg.seed * 1000 + m)
        return model_cls(feats.shape[1], cfg.daily_hidden, 1, HORIZON_D, cfg.rnn, cfg.dropout).to(device), g
    xy = {k: pairs(o) for k, o in split.items()}
    preds, val_preds, refit_epochs, t0, members = [], [], [], time.time(), max(1, cfg.daily_ensemble)
    forecast_kw = lambda model, o: train.predict(model, o, 1024, transform=window).numpy() * t_std + t_mean  # noqa: E731
    rmse_kw = lambda a, b: float(np.sqrt(((a - b) ** 2).mean()))  # noqa: E731
    # every member: early stopping on the validation weeks picks its epochs (and gives its validation
    # forecasts); with --daily-refit it then trains again, from the same seed, for that many epochs on
    # all the days before the test, as the published models train on all three years
    before_test = split_origins(days.index, cfg.window_d, HORIZON_D, test_start, test_start, cfg.train_start or None)
    refit_xy = pairs(before_test["train"])  # every origin whose whole target week ends before the test
    every_origin = split_origins(days.index, cfg.window_d, HORIZON_D, pd.Timestamp.max, pd.Timestamp.max,
                                 cfg.train_start or None)["train"]  # the walk's updates pick the observed ones

    def walk_forward(model, origins, m, seen):
        """Forecast each origin in turn, a week apart, from the actual days before it. With --daily-update
        N the member first trains N epochs (its own Adam, kept from week to week) on every origin whose
        target week is over by then, whenever there are more of them than the `seen` it has trained on:
        the weeks already forecast join the training data as they are observed. Without it the member
        stays fixed, as in the published set-up."""
        if not cfg.daily_update:
            return forecast_kw(model, torch.as_tensor(origins))
        loss_fn, opt, _ = train.compile(model, cfg.loss, cfg.optimizer, cfg.daily_lr, (), cfg.weight_decay)
        g = train.seed_everything(cfg.seed * 1000 + 500 + m)  # data order and dropout: the same after a resume
        out = []
        for i, o in enumerate(origins):
            known = every_origin[every_origin + HORIZON_D <= o]
            if len(known) > seen:
                seen = len(known)
                loop.fit(model, *pairs(known), loss_fn, [opt], epochs=1 if cfg.dry_run else cfg.daily_update,
                         batch_size=cfg.daily_batch_size, transform=window, metrics=(), grad_clip=cfg.grad_clip,
                         generator=g, drop_last=False, max_steps=1 if cfg.dry_run else None,
                         desc=f"electricity D{m} week {i + 1}")
            out.append(forecast_kw(model, torch.as_tensor(origins[i:i + 1])))
        return np.concatenate(out)

    val_sundays = split["val"][::7]            # the test's walk-forward, on the validation weeks
    val_walk = []
    for m in range(members):
        model, gm = new_member(m)
        history = fit_best(model, *xy["train"], xy["val"], window, cfg.daily_lr, cfg.daily_batch_size,
                           cfg.daily_epochs, cfg.daily_patience, cfg, run, gm, f"D{m}")
        val_preds.append(forecast_kw(model, xy["val"][0]))
        walker = copy.deepcopy(model) if cfg.daily_update else model  # updates must not reach the refit-less test walk
        val_walk.append(walk_forward(walker, val_sundays, m, len(xy["train"][0])))
        if cfg.daily_refit:
            best_epoch = min(history, key=lambda row: row["val_loss"])["epoch"]
            model, gm = new_member(m)
            fit_best(model, *refit_xy, None, window, cfg.daily_lr, cfg.daily_batch_size, best_epoch, None, cfg, run,
                     gm, f"D{m}-refit")
            refit_epochs.append(best_epoch)
        seen = len(refit_xy[0]) if cfg.daily_refit else len(xy["train"][0])
        preds.append(walk_forward(model, xy["test"][0].numpy(), m, seen))
        # with --daily-update, the weights after the walk: trained on every test week but the last
        run.save_weights(train.state_dict_for_save(model), f"daily_model_{m}.safetensors",
                         meta={"task": TASK, "protocol": "D", "member": m, "n_features": feats.shape[1],
                               "daily_update": cfg.daily_update})
    pred = np.mean(preds, 0)
    o = split["test"]
    true = ts.windows(total, o, HORIZON_D)
    base = ts.weekly_baselines(total, o)
    rmse_day = {"model": np.sqrt(ts.mse_by_step(pred, true))} | {k: np.sqrt(ts.mse_by_step(v, true))
                                                                   for k, v in base.items()}
    rmse = {"model": rmse_kw(pred, true)} | {k: rmse_kw(v, true) for k, v in base.items()}
    # the ensemble on every validation origin (each day of the validation weeks): what the models' settings
    # are chosen by; --daily-update is chosen by the walk-forward over the validation Sundays
    val_pred, val_true = np.mean(val_preds, 0), ts.windows(total, split["val"], HORIZON_D)
    walk_true = ts.windows(total, val_sundays, HORIZON_D)
    out = {"D_test_rmse_kw": rmse["model"], "D_val_rmse_kw": rmse_kw(val_pred, val_true),
           "D_val_weeks_rmse_kw": rmse_kw(np.mean(val_walk, 0), walk_true), "D_test_weeks": n_weeks,
           "D_train_s": round(time.time() - t0, 1), **({"D_refit_epochs_mean": float(np.mean(refit_epochs))}
                                                         if refit_epochs else {})}
    out |= {f"D_{k}_rmse_kw": rmse[k] for k in base} | {f"D_rmse_{d}_kw": float(v)
                                                       for d, v in zip(weekdays(days.index[o[0]]), rmse_day["model"])}
    run.save_arrays("predictions_daily.npz", week_start=days.index[o].to_numpy(), true_kw=true, pred_kw=pred,
                    members_kw=np.stack(preds), members_val_kw=np.stack(val_preds), val_start_day=days.index[split["val"]].to_numpy(),
                    val_true_kw=val_true, val_pred_kw=val_pred, val_week_start=days.index[val_sundays].to_numpy(),
                    val_weeks_true_kw=walk_true, val_weeks_pred_kw=np.mean(val_walk, 0), **{f"baseline_{k}": v for k, v in base.items()})
    names = weekdays(days.index[o[0]])
    run.save_figure(electricity_plots.daily_forecast(days.index[o[0]:o[-1] + HORIZON_D], true, pred, base["weekly_persistence"],
                                     names, rmse_day), "forecast_daily.png")
    table = [{"forecast": k, "RMSE (kW)": rmse[k], **{d: float(v) for d, v in zip(names, rmse_day[k])}}
             for k in rmse]
    sections.append(("Protocol D: next week of daily totals, walk-forward", (
        f"{n_weeks} test weeks from {days.index[o[0]]:%Y-%m-%d}, each forecast from the {cfg.window_d} days before it; daily total = sum of the day's minute readings "
        f"of Global_active_power (kW, as published; /60 = kWh). Average of {members} LSTM(s), each trained on the "
        f"days before {val_start:%Y-%m-%d} and early-stopped on the {cfg.val_weeks} weeks up to the test"
        + (f"; then, for the number of epochs early stopping picked ({np.mean(refit_epochs):.0f} on average), "
           f"trained again from the same seed on all the days before the test, as the published models train on all three years. The "
           f"validation RMSE is the first fits' (out of sample)" if refit_epochs else
           " (the published models train on all three years)")
        + (f". Walking forward, before each week's forecast each model trains {cfg.daily_update} more "
           f"epoch{'s' if cfg.daily_update > 1 else ''}, "
           f"from where it is, on every daily origin whose target week is over by then (the published models stay fixed; "
           f"the saved daily models are the weights at the walk's end)" if cfg.daily_update else "")
        + f". The same walk-forward over the {len(val_sundays)} validation weeks (the first fits"
        + (", updated likewise" if cfg.daily_update else ", fixed") + "): "
        f"RMSE {out['D_val_weeks_rmse_kw']:.1f} kW. Published: naive "
        f"about 465 kW, LSTM variants 368-400 kW.\n\n{report.md_table(table, '.1f')}\n\n"
        f"{report.img('forecast_daily.png')}")))
    return out


def ds_cols(days: pd.DataFrame) -> list[str]:
    return [c for c in days.columns if c != "total"]


def weekdays(first: pd.Timestamp) -> list[str]:
    start = (first.day_of_week + 1) % 7                        # pandas: Monday = 0; DAYS starts on Sunday
    return [DAYS[(start + i) % 7] for i in range(HORIZON_D)]
