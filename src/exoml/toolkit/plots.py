"""Plots every task shares. Each function returns a matplotlib Figure; save it with
`run.save_figure(fig, "name.png")` (atomic, closes the figure). Agg backend: no display needed."""
from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# A character the font lacks (an emoji in a review) is drawn as a box; matplotlib's warning about
# it names a glyph number and says nothing the user can act on.
warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from (current )?font", category=UserWarning)


def history_curves(history: list[dict], keys: list[list[str]] | None = None, title: str = ""):
    """One panel per group of history columns. By default: the losses (train vs validation), each
    metric (train_<m> vs val_<m>), and the learning rate per epoch (the schedule); bookkeeping
    columns (epoch, step, time, text) are left out."""
    if not history:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.text(0.5, 0.5, "no history", ha="center")
        return fig
    if keys is None:
        keys = default_curve_groups(history)
    # an ensemble's rows say which network they belong to: one line per network, a colour per column
    networks = list(dict.fromkeys(h.get("network") for h in history))
    runs = [[h for h in history if h.get("network") == n] for n in networks]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, group in zip(axes[0], keys):
        for j, k in enumerate(group):
            for n, rows in zip(networks, runs):
                ax.plot([h.get("epoch", i + 1) for i, h in enumerate(rows)], [h.get(k, np.nan) for h in rows],
                        marker="o", ms=3, color=f"C{j}", alpha=1.0 if n == networks[0] else 0.4,
                        label=None if n != networks[0] else k if len(networks) == 1 else f"{k} (faint: other networks)")
        ax.set_xlabel("epoch")
        if group == ["lr"]:
            ax.set_title("learning rate (end of epoch)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or "training curves")
    fig.tight_layout()
    return fig


def default_curve_groups(history: list[dict]) -> list[list[str]]:
    """[[train_loss, val_loss], [train_accuracy, val_accuracy], ..., [lr]] from the columns present."""
    skip = {"epoch", "step", "time_s", "seed", "network"}
    cols: list[str] = []
    for row in history:
        cols += [k for k, v in row.items() if k not in cols and k not in skip and isinstance(v, (int, float))
                 and not isinstance(v, bool)]
    groups, seen = [], set()
    for k in cols:
        if k == "lr" or k in seen:
            continue
        name = k.removeprefix("train_").removeprefix("val_")
        pair = [c for c in (f"train_{name}", f"val_{name}") if c in cols] or [k]
        pair = [c for c in pair if c not in seen]
        seen.update(pair)
        groups.append(pair)
    if "lr" in cols:
        groups.append(["lr"])
    return groups


def confusion_matrix(cm: np.ndarray, classes: list[str], normalize: bool = True, title: str = "confusion matrix"):
    cm = np.asarray(cm, dtype=float)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    n = len(classes)
    size = min(4 + 0.45 * n, 16)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046)
    if n <= 20:
        ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), classes, fontsize=8)
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if shown[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _show(ax, img):
    img = np.asarray(img)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255 if img.dtype == np.uint8 else None)
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(images, titles: list[str] | None = None, ncols: int = 10, title: str = "", colors=None):
    """Images (N, H, W) or (N, H, W, 3) uint8 in a grid with optional per-image titles."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.45 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            _show(ax, images[i])
            if titles:
                ax.set_title(titles[i], fontsize=7, color=(colors[i] if colors else "black"))
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def predictions_grid(images, probs: np.ndarray, y_true, classes: list[str], n: int = 12, ncols: int = 4,
                     title: str = "test predictions"):
    """The classic verification figure: each image with its predicted label, and beside it a bar chart
    of the class probabilities (predicted bar red if wrong, the true class blue)."""
    n = min(n, len(images))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, 2 * ncols, figsize=(2.6 * 2 * ncols * 0.75, 2.0 * nrows), squeeze=False)
    k = min(10, probs.shape[1])
    for i in range(nrows * ncols):
        ax_img, ax_bar = axes[i // ncols, 2 * (i % ncols)], axes[i // ncols, 2 * (i % ncols) + 1]
        if i >= n:
            ax_img.axis("off")
            ax_bar.axis("off")
            continue
        p, t = probs[i], int(y_true[i])
        pred = int(p.argmax())
        ok = pred == t
        _show(ax_img, images[i])
        ax_img.set_title(f"{classes[pred]} {p[pred]:.0%}\n(true: {classes[t]})", fontsize=7,
                         color="tab:blue" if ok else "tab:red")
        top = np.argsort(p)[::-1][:k] if probs.shape[1] > 10 else np.arange(k)
        colors = ["tab:blue" if c == t else ("tab:red" if c == pred else "lightgray") for c in top]
        ax_bar.bar(range(len(top)), p[top], color=colors)
        ax_bar.set_ylim(0, 1)
        ax_bar.set_xticks(range(len(top)), [classes[c][:6] for c in top], rotation=90, fontsize=5)
        ax_bar.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_histogram(labels, classes: list[str], title: str = "class balance"):
    counts = np.bincount(np.asarray(labels), minlength=len(classes))
    fig, ax = plt.subplots(figsize=(max(5, 0.12 * len(classes) + 4), 3))
    ax.bar(range(len(classes)), counts, color="tab:blue")
    if len(classes) <= 20:
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("count")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def probability_bars(image, probs: np.ndarray, classes: list[str], top: int = 5, title: str = ""):
    """One input and its top-k class probabilities: what `exoml predict` saves."""
    order = np.argsort(probs)[::-1][:top]
    fig, (a, b) = plt.subplots(1, 2, figsize=(7, 3), gridspec_kw={"width_ratios": [1, 1.4]})
    _show(a, image)
    b.barh(range(len(order))[::-1], probs[order], color=["tab:blue"] + ["lightgray"] * (len(order) - 1))
    b.set_yticks(range(len(order))[::-1], [classes[i] for i in order])
    b.set_xlim(0, 1)
    b.set_xlabel("probability")
    fig.suptitle(title or f"prediction: {classes[order[0]]} ({probs[order[0]]:.1%})")
    fig.tight_layout()
    return fig
