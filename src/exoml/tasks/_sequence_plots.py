"""Figures of the sequence tasks (imdb, electricity). Each returns a matplotlib Figure;
the task saves it with run.save_figure (atomic, closes it)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.dates import DateFormatter

from .. import text
from .. import timeseries as ts
from ..plots import plt

POS_NEG = ("tab:red", "tab:green")


# ---------------------------------------------------------------- imdb ---------------

def review_lengths(lengths: np.ndarray, y: np.ndarray, classes: list[str], max_len: int):
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.linspace(0, np.percentile(lengths, 99), 60)
    for k, c in enumerate(classes):
        ax.hist(lengths[y == k], bins=bins, alpha=0.55, label=c, color=POS_NEG[k])
    ax.axvline(max_len, color="k", ls="--", lw=1, label=f"max_len {max_len}")
    ax.set(xlabel="tokens per review", ylabel="reviews", title="training reviews: length in tokens (99% shown)")
    ax.legend()
    return fig


def label_balance(y_train: np.ndarray, y_test: np.ndarray, classes: list[str]):
    fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), sharey=True)
    for ax, (split, yy) in zip(axes, (("train", y_train), ("test", y_test))):
        ax.bar(classes, np.bincount(yy, minlength=2), color=POS_NEG)
        ax.set_title(f"{split}: {len(yy):,} reviews")
    fig.suptitle("label balance")
    return fig


def top_words(corpus: dict, y: np.ndarray, classes: list[str], k: int = 20):
    """The k most frequent training words of each class, leaving out English stop words."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    ids, off, words = corpus["train_ids"], corpus["train_offsets"], corpus["words"]
    doc = np.repeat(np.arange(len(off) - 1), np.diff(off))
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.5))
    for ax, c in zip(axes, range(2)):
        counts = np.bincount(ids[y[doc] == c], minlength=len(words))
        top = [i for i in np.argsort(-counts) if i > text.UNK and words[i] not in ENGLISH_STOP_WORDS
               and len(words[i]) > 1][:k]
        ax.barh(range(len(top))[::-1], counts[top], color=POS_NEG[c])
        ax.set_yticks(range(len(top))[::-1], [words[i] for i in top], fontsize=8)
        ax.set_title(f"{classes[c]} reviews")
        ax.set_xlabel("occurrences")
    fig.suptitle("most frequent words per class (stop words left out)")
    fig.tight_layout()
    return fig


def probabilities(prob: np.ndarray, y: np.ndarray, lens: np.ndarray):
    """Predicted p(positive) by true class, and test accuracy by review length (octiles)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    for k, c in enumerate(("neg", "pos")):
        a.hist(prob[y == k], bins=40, range=(0, 1), alpha=0.6, color=POS_NEG[k], label=f"true {c}")
    a.set(xlabel="predicted p(positive)", ylabel="test reviews", title="predicted probabilities")
    a.legend()
    edges = np.unique(np.percentile(lens, np.linspace(0, 100, 9)))
    which = np.clip(np.searchsorted(edges, lens, side="right") - 1, 0, max(len(edges) - 2, 0))
    acc = [((prob[which == i] > 0.5) == y[which == i]).mean() if (which == i).any() else np.nan
           for i in range(max(len(edges) - 1, 1))]
    centres = (edges[:-1] + edges[1:]) / 2 if len(edges) > 1 else edges
    b.plot(centres, acc, marker="o")
    b.set(xlabel="tokens read (after truncation)", ylabel="accuracy", title="test accuracy by review length")
    b.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def reading(cuts: np.ndarray, probs: np.ndarray, title: str):
    """`exoml predict imdb`: p(positive) after each prefix of the review, and the final verdict."""
    p = float(probs[-1])
    label = "positive" if p > 0.5 else "negative"
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [3, 1]})
    a.plot(cuts, probs, marker=".", color=POS_NEG[int(p > 0.5)])
    a.axhline(0.5, color="gray", lw=0.8, ls="--")
    a.set(ylim=(0, 1), xlabel="tokens read", ylabel="p(positive)", title="verdict while reading the review")
    b.bar(["negative", "positive"], [1 - p, p], color=POS_NEG)
    b.set(ylim=(0, 1), title=f"{label} ({max(p, 1 - p):.1%})")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- electricity --------

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


def sample_weeks(index, origins, pred, true, yesterday, n: int = 3):
    """Day-ahead forecasts issued at midnight, day after day, for n test weeks spread over the year."""
    horizon = pred.shape[1]
    midnight = np.flatnonzero(index[origins].hour == 0)
    starts = midnight[np.linspace(0, max(len(midnight) - 8, 0), n).astype(int)] if len(midnight) else []
    fig, axes = plt.subplots(len(starts) or 1, 1, figsize=(11, 2.4 * max(len(starts), 1)), squeeze=False)
    for ax, s in zip(axes[:, 0], starts):
        sel = [i for i in midnight if s <= i and index[origins[i]] < index[origins[s]] + pd.Timedelta(days=7)]
        t = np.concatenate([index[origins[i]] + pd.to_timedelta(np.arange(horizon), "h") for i in sel])
        ax.plot(t, np.concatenate([true[i] for i in sel]), color="k", lw=1, label="actual")
        ax.plot(t, np.concatenate([pred[i] for i in sel]), color="tab:blue", lw=1.3, label="LSTM")
        ax.plot(t, np.concatenate([yesterday[i] for i in sel]), color="tab:orange", lw=0.8, alpha=0.7,
                label="same hour yesterday")
        ax.set_ylabel("kW")
        ax.legend(fontsize=7, loc="upper right")
    axes[0, 0].set_title("protocol H: day-ahead forecasts issued at midnight (test weeks)")
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
