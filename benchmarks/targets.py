"""The bar each recipe is held to, and where it stands: README.md's targets table (make_docs.py) and
the checks of `exoml run all` (measure_all.py) come from this one list.

A target names the result record that judges it (benchmarks/results/<row>.json, written by
measure.py; with the rows that measured the same recipe over other seeds, pooled), the metrics it
checks on the mean over the seeds, the fewest seeds that count,
and, where it has one, a time limit on one of the record's time metrics. Each bar comes from the
best public result under the same constraints, as its `why` says; a record that misses it shows by
how much, and never moves the bar.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402  (benchmarks/records.py)

# (metrics.json key, ">=" | "<=" | "<", bound); a bound may be ("other key", offset): the other metric's
# mean plus the offset (e.g. the generated digits' confident share against the real digits').
Check = tuple[str, str, "float | tuple[str, float]"]


@dataclass(frozen=True)
class Target:
    task: str
    row: str                       # the record that judges it
    checks: tuple[Check, ...]
    why: str                       # where the bar comes from
    seeds: int = 1                 # the fewest seeds (record["seeds"]) that count
    time: tuple[str, float] | None = None  # (record's time metric, most seconds)
    run_all: bool = False          # `exoml run all` with no flags holds its task's default CPU run to the checks


TARGETS: tuple[Target, ...] = (
    Target("cifar10", "cifar10-cpu", (("accuracy", ">=", 0.94),), "airbench94: 94.0% (on a GPU)",
           seeds=3, time=("train_time_s", 6 * 60), run_all=True),
    Target("cifar10", "cifar10-full", (("accuracy", ">=", 0.95),), "airbench95: 95.0% (on a GPU)",
           time=("train_time_s", 60 * 60)),
    Target("cifar100", "cifar100-cpu", (("accuracy", ">=", 0.75),),
           "ResNet-18 trained 200 epochs: about 75.6% in public tables", seeds=2, time=("train_time_s", 60 * 60),
           run_all=True),
    Target("imdb", "imdb-cpu", (("accuracy", ">=", 0.89),), "Maas et al. 2011: 88.9%", seeds=3,
           time=("train_s", 30 * 60), run_all=True),
    Target("gan", "gan-cpu", (("confident_share", ">=", 0.85), ("class_share_min", ">=", 0.07),
                              ("class_share_max", "<=", 0.13)),
           "most digits recognisable and every digit present", seeds=2, time=("train_s", 20 * 60), run_all=True),
    Target("gan", "gan-cpu", (("inception_score", ">=", 9.5), ("class_share_min", ">=", 0.08),
                              ("class_share_max", "<=", 0.12),
                              ("confident_share", ">=", ("confident_share_real_test", -0.05))),
           "close to real test digits under the same judge (score 9.7-9.9)", seeds=2),
    Target("mnist", "mnist-full", (("accuracy", ">=", 0.9975),), "best published single CNN: 99.83%", seeds=5),
    Target("mnist", "mnist-full-ensemble3", (("accuracy", ">=", 0.9985),),
           "above the best 15-CNN ensemble's 99.79%"),
    Target("mnist", "mnist-cpu", (("accuracy", ">=", 0.993),), "the Keras mnist_cnn example's 99.25%, in seconds",
           seeds=3, time=("wall_s", 30)),
    Target("fashion-mnist", "fashion-mnist-full", (("accuracy", ">=", 0.915),),
           "best MLP in Fashion-MNIST's benchmark table: 88.33%", seeds=3),
    Target("kddcup", "kddcup-cpu", (("A_autoencoder_f1_mean", ">=", 0.99), ("A_seeds", ">=", 10)),
           "DAGMM: F1 0.937", seeds=1),
    Target("electricity", "electricity-cpu", (("D_test_rmse_kw", "<=", 340.0),),
           "best published LSTM-family weekly RMSE: 367.9 kW", seeds=5),
    Target("electricity", "electricity-cpu", (("O_test_rmse_kw", "<", 0.619),),
           "a published one-hour-ahead notebook: 0.619 kW", seeds=5),
    Target("boston", "boston-full", (("engineered_cv_r2_mean", ">=", 0.80),),
           "well above OLS's 0.71 on the same folds", seeds=1),
)

LABELS = {"accuracy": "test accuracy", "confident_share": "confident share", "class_share_min": "rarest digit",
          "class_share_max": "commonest digit", "inception_score": "Inception-style score",
          "confident_share_real_test": "real digits' confident share", "A_autoencoder_f1_mean": "F1 (protocol A)",
          "A_seeds": "splits", "D_test_rmse_kw": "weekly RMSE", "O_test_rmse_kw": "one-hour RMSE",
          "engineered_cv_r2_mean": "nested repeated k-fold R²"}
TIME_LABELS = {"train_time_s": "training", "train_s": "training", "wall_s": "whole run"}


def met(value: float, op: str, bound: float) -> bool:
    return value >= bound if op == ">=" else value <= bound if op == "<=" else value < bound


def pct(key: str) -> bool:
    return "accuracy" in key or "share" in key


def show(key: str, value: float) -> str:
    """A measured value (or a gap) as the docs write it."""
    if pct(key):
        return f"{100 * value:.2f}%"
    if key == "A_seeds":
        return f"{value:.0f}"
    if key.endswith("_kw"):
        return f"{value:.1f} kW" if key.startswith("D_") else f"{value:.3f} kW"
    return f"{value:.2f}" if key == "inception_score" else f"{value:.4f}"


def show_bound(key: str, bound: float) -> str:
    """A bound as a reader states it: 94%, 0.8, 340 kW."""
    return f"{100 * bound:g}%" if pct(key) else f"{bound:g}" + (" kW" if key.endswith("_kw") else "")


def bound_of(check: Check, means: dict[str, float]) -> float | None:
    _, _, bound = check
    if isinstance(bound, tuple):
        other, offset = bound
        return None if other not in means else means[other] + offset
    return bound


def bound_text(check: Check) -> str:
    key, op, bound = check
    op = {">=": "≥", "<=": "≤", "<": "<"}[op]
    if isinstance(bound, tuple):
        other, offset = bound
        return f"{LABELS.get(key, key)} {op} {LABELS.get(other, other)} {'−' if offset < 0 else '+'} " \
               f"{show_bound(key, abs(offset)).replace('%', ' pts')}"
    return f"{LABELS.get(key, key)} {op} {show_bound(key, bound)}"


def minutes(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    return f"{s / 60:.0f} min" if s % 60 == 0 else f"{s / 60:.1f} min"


def target_text(t: Target) -> str:
    parts = [bound_text(c) for c in t.checks]
    if t.seeds > 1:
        parts.append(f"mean of {t.seeds} seeds")
    if t.time:
        key, most = t.time
        parts.append(f"{TIME_LABELS.get(key, key)} ≤ {minutes(most)}")
    return ", ".join(parts)


def judge(t: Target, recs: dict[str, dict], groups: list[list[dict]] | None = None) -> tuple[str, str]:
    """(what the record shows, verdict) for one target: "met", "missed: ..." with by how much, or
    "not measured". `groups`: records.recipe_groups of `recs`, where the caller has them."""
    r = recs.get(t.row)
    if r is None:
        return "—", "not measured"
    group = records.recipe_rows(r, groups if groups is not None else records.recipe_groups(list(recs.values())))
    if len(group) > 1:  # the recipe measured over seeds of their own in several rows: judged on them all
        r = records.pooled(group)
    means = {k: m["mean"] for k, m in r["metrics"].items()}
    shown, missed = [], []
    for check in t.checks:
        key, op, _ = check
        value, bound = means.get(key), bound_of(check, means)
        if value is None or bound is None:
            shown.append(f"{LABELS.get(key, key)}: not in the record")
            missed.append(f"{LABELS.get(key, key)} not recorded")
            continue
        text = show(key, value) if len(t.checks) == 1 else f"{LABELS.get(key, key)} {show(key, value)}"
        if isinstance(check[2], tuple):  # measured against another metric: show that one too
            text += f" (against {show(check[2][0], means[check[2][0]])})"
        shown.append(text)
        if not met(value, op, bound):
            gap = abs(value - bound)
            missed.append(f"{LABELS.get(key, key)} by {show(key, gap).replace('%', ' pts')}")
    n = len(r.get("seeds") or [])
    if n > 1 or t.seeds > 1:
        shown.append(f"{n} seed{'s' if n != 1 else ''}" + (f" ({' + '.join(g['row'] for g in group)})"
                                                           if len(group) > 1 else ""))
    if n < t.seeds:
        missed.append(f"{n} of {t.seeds} seeds")
    if t.time:  # every row within the limit (pooled rows may come from different hosts): the slowest
        key, most = t.time
        times = [g["metrics"][key]["mean"] for g in group if key in g["metrics"]]
        took = max(times) if len(times) == len(group) else None
        if took is None:
            missed.append(f"{TIME_LABELS.get(key, key)} time not recorded")
        else:
            shown.append(f"{minutes(took)} of {TIME_LABELS.get(key, key)}" + (" (the slowest row)" if len(group) > 1 else ""))
            if took > most:
                missed.append(f"time by {minutes(took - most)}")
    return ", ".join(shown), ("**missed**: " + "; ".join(missed)) if missed else "met"


def table(recs: dict[str, dict]) -> str:
    """README.md's targets table: one row per target, judged on its record."""
    lines = ["| task | target | why this bar | record | result | verdict |", "|---|---|---|---|---|---|"]
    groups = records.recipe_groups(list(recs.values()))  # once, not once per target
    for t in TARGETS:
        shown, verdict = judge(t, recs, groups)
        lines.append(f"| `{t.task}` | {target_text(t)} | {t.why} | {t.row if t.row in recs else '—'} | {shown} | "
                     f"{verdict} |")
    return "\n".join(lines)


def run_all_checks() -> dict[str, list[Check]]:
    """{task: checks} that `exoml run all` with no flags holds each task's default CPU run to."""
    out: dict[str, list[Check]] = {}
    for t in TARGETS:
        if t.run_all:
            out.setdefault(t.task, []).extend(t.checks)
    return out
