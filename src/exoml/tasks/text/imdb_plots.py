"""Figures of the imdb task. Each returns a matplotlib Figure; the task saves it with
run.save_figure (atomic, closes it)."""
from __future__ import annotations

import numpy as np

from . import tokens as text
from ...toolkit.plots import plt

POS_NEG = ["tab:red", "tab:green"]  # a list: matplotlib 3.8 reads a 2-tuple as (colour, alpha)


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
