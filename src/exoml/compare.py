"""`exoml compare TASK --optimizer adam sgd rmsprop [--seeds K]`: train each variant, one table, one figure.

Any setting given several values becomes a variant axis (several axes give their product);
settings given one value apply to every variant. Each variant runs `--seeds K` times (the base
seed, +1, ..., +K-1) as ordinary runs, then we write, in runs/<task>/compare-<timestamp>/:

    compare.csv / report.md   mean ± std of the task's headline metric (its contract) and of the
                              time, one row per variant
    curves.png                the variants' learning curves (validation metric per epoch, mean over seeds;
                              the training loss where the runs hold out no validation split)
"""
from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import time
from pathlib import Path

import numpy as np

from .errors import ExomlError
from .toolkit.report import img, md_table
from .toolkit.runs import atomic_write_text


def parse_axes(rest: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Split `--name v1 v2 --flag v` into variant axes (several values) and fixed flags."""
    groups: list[tuple[str, list[str]]] = []
    for tok in rest:
        if tok.startswith("--"):
            groups.append((tok, []))
        elif groups:
            groups[-1][1].append(tok)
        else:
            raise ExomlError(f"unexpected argument {tok!r}: settings are given as --name value...")
    axes = {flag: vals for flag, vals in groups if len(vals) > 1}
    fixed = [x for flag, vals in groups if len(vals) <= 1 for x in (flag, *vals)]
    return axes, fixed


def compare(task: str, rest: list[str], seeds: int = 1) -> Path:
    from .runner import execute, task_config
    import matplotlib.pyplot as plt
    if seeds < 1:
        raise ExomlError(f"--seeds must be at least 1 (got {seeds})")
    axes, fixed = parse_axes(rest)
    if not axes and seeds < 2:
        raise ExomlError("nothing to compare: give a setting several values (e.g. --optimizer adam sgd) or --seeds K")
    variants = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())] or [{}]
    # Parse every variant before training any: a typo fails in a second, not after an hour.
    configs = []
    for v in variants:
        argv = fixed + [x for flag, val in v.items() for x in (flag, val)]
        spec, cfg = task_config(task, argv, prog="exoml compare")
        configs.append((v, spec, cfg))
    folder = Path(configs[0][2].out) / task / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=False)
    rows, curves = [], {}
    for v, spec, cfg in configs:
        label = " ".join(f"{k.lstrip('-')}={val}" for k, val in v.items()) or "base"
        values, times, histories, metric = [], [], [], None
        for s in range(seeds):
            cfg_s = dataclasses.replace(cfg, seed=cfg.seed + s)
            path, metrics = execute(spec, cfg_s, out=folder / "runs")
            metric = spec.headline.key  # the task's headline metric, on the test split
            if not isinstance(metrics.get(metric), (int, float)):
                raise ExomlError(f"{task} run {path} has no {metric!r} (its headline metric) to compare: "
                                 "do these settings skip the part of the task that measures it?")
            values.append(metrics[metric])
            times.append(json.loads((path / "metrics.json").read_text()).get("elapsed_s", float("nan")))
            hist = path / "history.csv"
            if hist.exists():
                with open(hist, newline="") as fh:
                    histories.append(list(csv.DictReader(fh)))
        rows.append({"variant": label, "metric": metric, "mean": float(np.mean(values)),
                     "std": float(np.std(values)), "seeds": seeds, "time_s_mean": float(np.mean(times))})
        curves[label] = histories
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(folder / "compare.csv", buf.getvalue())

    fig, ax = plt.subplots(figsize=(6.5, 4))
    key = None
    for label, hists in curves.items():
        if not hists:
            continue
        cols = [c for c in hists[0][0] if c.startswith("val_") and c != "val_loss"] or ["val_loss", "train_loss"]
        key = next((c for c in cols if c in hists[0][0]), None)
        if key is None:
            continue
        n = min(len(h) for h in hists)
        ys = np.array([[float(r[key]) if r.get(key) not in (None, "") else np.nan for r in h[:n]] for h in hists])
        ax.plot(range(1, n + 1), np.nanmean(ys, 0), marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{key} (mean over seeds)" if key else "")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{task}: learning curves by variant")
    fig.savefig(folder / "curves.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    text = (f"# Compare {task}\n\n{len(variants)} variants x {seeds} seed(s); test metric on the official "
            f"test split, mean ± std over seeds.\n\n{md_table(rows)}\n\n{img('curves.png', 'learning curves')}\n")
    atomic_write_text(folder / "report.md", text)
    print(md_table(rows))
    print(f"[compare {task}] table: {folder / 'compare.csv'}; figure: {folder / 'curves.png'}")
    return folder
