"""KDD Cup 99's figures and report text: the label categories of the two files, the detection
curves, score histograms and confusion matrices, the sections of protocols A and B, the write-up
around them, and `exoml predict`'s side: its input records, the lines it prints and its score figure."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ...toolkit import plots, report, train
from ...errors import ExomlError
from .common import ONE_HOT

plt = plots.plt


def data_figure(cats: dict[str, np.ndarray], groups: list[str]):
    """Connections per label category in each file."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, (name, c) in enumerate(cats.items()):
        ax.bar(np.arange(len(groups)) + 0.4 * k - 0.2, [(c == g).sum() for g in groups], 0.4, label=name)
    ax.set(yscale="log", ylabel="connections", xticks=range(len(groups)), xticklabels=groups, title="label categories")
    ax.legend()
    return fig


def summary_a(res: dict[str, list[dict]], chosen: dict) -> tuple[list[dict], dict]:
    """Protocol A's table, mean ± std over the splits of each method's results, and the same as
    metrics A_{method}_{key}_mean/std."""
    rows, metrics = [], {}
    for m, runs in res.items():
        row = {"method": m, "scaler": chosen[m][0], "epochs": chosen[m][1] or ""}
        for k in ("precision", "recall", "f1", "roc_auc", "pr_auc", "seconds"):
            v = np.array([d[k] for d in runs])
            row[k] = f"{v.mean():.4f} ± {v.std():.4f}" if k != "seconds" else f"{v.mean():.0f}"
            metrics[f"A_{m}_{k}_mean"], metrics[f"A_{m}_{k}_std"] = float(v.mean()), float(v.std())
        rows.append(row)
    return rows, metrics


def protocol_a(cfg, rows: list[dict], choice: list[dict], seeds: int, n_train: int, n_fit: int, n_val: int,
               y: np.ndarray, n_vnor: int, seconds: float) -> tuple[str, str]:
    """Protocol A's section: mean ± std over the seeds, then the validation choice of settings."""
    return ("Protocol A (normal = anomaly; DAGMM's set-up)", report.md_table(rows) + f"\n\nMean ± std over "
            f"{seeds} random splits (seeds {cfg.seed}..{cfg.seed + seeds - 1}); "
            f"{n_train} attack rows for training ({n_fit} fit, {n_val} for the "
            f"validation loss), {len(y)} test rows of which {int(y.sum())} normal "
            f"({y.mean():.1%}). `seconds`: fit + scoring per split. Published for reference (not run "
            f"here): DAGMM F1 0.9369. Wall time of protocol A: {seconds:.0f} s.\n\n"
            "The last two rows are sanity baselines that learn and choose nothing, on the autoencoder's input: "
            "`untrained_autoencoder` is the autoencoder's shape with its random initial weights (reconstruction "
            "error of an untrained network), `isolation_forest_default` is `IsolationForest()` with scikit-learn's "
            "defaults. Where they come close to the trained detectors, the protocol is easy: the normal rows are "
            "far from the attack rows (mostly smurf and neptune floods) in almost any representation.\n\n"
            f"The scaler (and the autoencoder's epochs) of each method were chosen on the first split by F1 "
            f"on a validation set that shares nothing with the test rows: the {n_val} held-out "
            f"training attacks (inliers) and {n_vnor} normal rows of `corrected` (anomalies), "
            f"thresholded the same way:\n\n" + report.md_table(choice))


def protocol_b(cfg, rows: list[dict], choice: list[dict], per_cat: pd.DataFrame, seen: set, n_fit: int,
               n_val: int, n_vatt: int, n_vr2l: int, y: np.ndarray, seconds: float) -> tuple[str, str]:
    """Protocol B's section: the test table, the validation choice of scalers, and each method's
    recall per attack (`per_cat`: one row per test attack: attack, category, "same features as a
    normal row", then one flagged column per method)."""
    methods = [c for c in per_cat.columns if c not in ("attack", "category", "same features as a normal row")]
    grouped = per_cat.groupby(["category", "attack"])
    by_attack = (grouped.size().rename("rows").to_frame()
                 .join(grouped[["same features as a normal row", *methods]].mean()).reset_index()
                 .sort_values(["category", "rows"], ascending=[True, False]))
    by_attack["seen in training"] = by_attack.attack.isin(seen)
    chosen = {r["method"]: r["scaler"] for r in rows}
    val = {r["method"]: r for r in choice if chosen.get(r["method"]) == r["scaler"]}  # validation of the chosen
    r2l = per_cat[per_cat.category == "r2l"]
    twins = r2l["same features as a normal row"]
    top = r2l[twins].attack.value_counts()
    ceiling = (f"{len(r2l)} test rows are r2l; {int(twins.sum())} of them ({twins.mean():.1%}) have exactly the 41 "
               "features of a normal row of the 10% file or of `corrected`"
               + (": " + ", ".join(f"{a} {n}" for a, n in top[top > 0].items()) if twins.any() else "")
               + ". A detector gives such a row the score of its normal twin, so it can flag it only by flagging "
               f"that normal traffic too: at a low false-alarm rate the reachable r2l recall is about "
               f"{1 - twins.mean():.2f}.\n\nTried for r2l: the k-nearest-neighbour distance (`knn`: {cfg.knn_k} "
               f"neighbours among {cfg.knn_reference} distinct normal training rows), a local score (a few unusual "
               "features put a row far from every normal row) where the autoencoder's error averages over all its "
               "input features. The choice among detectors is validation's: with its chosen scaler, each method's "
               "validation F1 and its recall on the validation r2l rows (the "
               f"{n_vr2l} r2l rows of the 10% file, never trained on in protocol B) were "
               + ", ".join(f"{m} {val[m]['val_f1']:.4f} and {val[m].get('val_r2l_recall', float('nan')):.3f}"
                           for m in val)
               + f"; the best validation F1 is {max(val, key=lambda m: val[m]['val_f1'])}'s. How far the validation "
               "r2l recall guides the test's depends on how alike the two files' r2l attacks are (compare the "
               "`seen in training` column); the test's recall per attack is in the table above.\n"
               if len(r2l) else "")
    return ("Protocol B (train on normal traffic, test on `corrected`)", report.md_table(rows) +
            f"\n\n{n_fit} normal rows for fitting, {n_val} held out (validation loss and "
            f"threshold: the {1 - cfg.fpr_target:.1%} quantile of their scores); the scaler of each method "
            f"chosen by F1 on those held-out rows plus {n_vatt} attack rows of the 10% file:\n\n"
            + report.md_table(choice) + f"\n\n{len(y)} test rows, "
            f"{int(y.sum())} attacks. Wall time of protocol B: {seconds:.0f} s.\n\n"
            f"Recall per attack of each method (the false-alarm rates are in the table above), and the share of "
            f"each attack's rows that have the same features as a normal row:\n\n"
            + report.md_table(by_attack.to_dict("records")) + "\n\n" + ceiling)


def write_up(cfg, metrics: dict, sections: list, protos: list[str], n_train: int, n_test: int) -> str:
    """report.md: the intro, the protocols' sections and the plots."""
    intro = (f"Anomaly detection on KDD Cup 99 with a tanh autoencoder ({' -> '.join(map(str, cfg.hidden))} and "
             f"back; {cfg.epochs} epochs in B, chosen from {cfg.epochs_a} in A; {cfg.optimizer} lr {cfg.lr:g}, batch {cfg.batch_size}) against Isolation "
             f"Forest ({cfg.if_trees} trees) and a one-class SVM (Nystroem RBF, {cfg.ocsvm_components} components, "
             f"gamma {cfg.ocsvm_gamma or '1/features'}, nu {cfg.ocsvm_nu:g}); in A also two sanity baselines (the "
             f"autoencoder untrained, a default Isolation Forest), in B a {cfg.knn_k}-nearest-neighbour distance. "
             f"With normal rows as the anomalies (A) "
             f"the scaler and epochs are chosen per method on a validation set of held-out training attacks plus "
             f"normal rows of `corrected`; in B on held-out normal rows plus attacks of the 10% file (tables below). "
             f"{n_train} rows of the 10% file, {n_test} of `corrected`; wall time "
             f"{metrics['wall_s']:.0f} s on {train.device_name(train.pick_device(cfg.device))}.")
    figures = ["data.png", "curves.png", "scores.png", "history.png"] + [f"confusion_{p}.png" for p in protos]
    sections = sections + [("Plots", "\n\n".join(report.img(f) for f in figures))]
    return report.render("KDD Cup 99: anomaly detection", intro, cfg, metrics, sections)


def add_record_args(parser) -> None:
    parser.add_argument("--row", action="append", metavar="RECORD",
                        help="one raw connection record: the 41 comma-separated fields of the data files "
                             "(a 42nd field, the label, is shown but not used); repeatable")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="raw records, one per line, as in the data files")


def read_records(row: list[str] | None, csv: Path | None) -> tuple[list[tuple[str, str]], str]:
    """The raw records of `--row` (repeatable) or `--csv FILE` as (where, text) pairs, plus a
    stem naming the input (for the plot's file name)."""
    if bool(row) == bool(csv):
        raise ExomlError("give the input as --row RECORD (repeatable) or as --csv FILE (one of the two)")
    if row:
        return [(f"--row {i}", r) for i, r in enumerate(row, 1)], "row"
    try:
        text = Path(csv).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ExomlError(f"cannot read {csv}: {e}") from None
    lines = [(f"{Path(csv).name} line {i}", ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise ExomlError(f"{csv}: no records")
    return lines, Path(csv).stem


def print_scores(lines: list[tuple[str, str]], df: pd.DataFrame, score: np.ndarray, thr: float,
                 categories: dict[str, list[str]]) -> None:
    """One line per record: score, verdict, the label given as a 42nd field and symbolic values unseen in training."""
    labels = [ln.strip().split(",")[-1].strip() if ln.count(",") == len(df.columns) else "" for _, ln in lines]
    for i, (s, lab) in enumerate(zip(score, labels), 1):
        unseen = [f"{c}={df[c].iloc[i - 1]}" for c in ONE_HOT if df[c].iloc[i - 1] not in categories[c]]
        print(f"row {i}: anomaly score {s:.5f} (threshold {thr:.5f}) -> {'ATTACK' if s > thr else 'normal'}"
              + (f"  [given label: {lab}]" if lab else "")
              + (f"  [unseen in training: {', '.join(unseen)}]" if unseen else ""))


def score_figure(val: np.ndarray, test: np.ndarray, y: np.ndarray, thr: float, score: np.ndarray):
    """The given records' anomaly scores against held-out normal training rows and test attacks."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    allv = np.concatenate([val, test, score])
    bins = np.logspace(np.log10(max(allv.min(), 1e-8)), np.log10(allv.max() + 1e-8), 80)
    ax.hist(val, bins=bins, alpha=0.5, density=True, label="held-out normal training rows")
    ax.hist(test[y], bins=bins, alpha=0.5, density=True, label="test attacks")
    ax.axvline(thr, color="k", ls="--", label="threshold")
    for s in score:
        ax.axvline(s, color="tab:red", lw=2)
    ax.plot([], [], color="tab:red", lw=2, label="your record(s)")
    ax.set(xscale="log", xlabel="autoencoder reconstruction error", ylabel="density", title="anomaly score")
    ax.legend(fontsize=8)
    return fig


def detection_plots(run, curves: dict, protos: list[str]) -> None:
    """PR and ROC curves of every method, histograms of the autoencoder's scores (normal vs attack)
    and its confusion matrices; `curves[(protocol, method)] = (y, scores, threshold)`. In protocol A
    the positives are the normal rows (the anomalies), in B the attacks."""
    methods = list(dict.fromkeys(m for _, m in curves))
    fig, axes = plt.subplots(len(protos), 2, figsize=(10, 4 * len(protos)), squeeze=False)
    for row_axes, p in zip(axes, protos):
        for m in [m for m in methods if (p, m) in curves]:  # the protocols' methods differ
            y, sc, _ = curves[(p, m)]
            if 0 < y.sum() < len(y):
                pr, rc, _ = skm.precision_recall_curve(y, sc)
                fpr, tpr, _ = skm.roc_curve(y, sc)
                row_axes[0].plot(rc, pr, label=m)
                row_axes[1].plot(fpr, tpr, label=m)
        row_axes[0].set(xlabel="recall", ylabel="precision", title=f"protocol {p}: precision-recall")
        row_axes[1].set(xlabel="false positive rate", ylabel="true positive rate", xscale="log",
                        title=f"protocol {p}: ROC")
        for ax in row_axes:
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    run.save_figure(fig, "curves.png")
    fig, axes = plt.subplots(1, len(protos), figsize=(6 * len(protos), 3.6), squeeze=False)
    for ax, p in zip(axes[0], protos):
        y, sc, thr = curves[(p, "autoencoder")]
        bins = np.logspace(np.log10(max(sc.min(), 1e-8)), np.log10(sc.max() + 1e-8), 80)
        ax.hist(sc[(y if p == "A" else ~y)], bins=bins, alpha=0.6, label="normal")
        ax.hist(sc[~(y if p == "A" else ~y)], bins=bins, alpha=0.6, label="attack")
        ax.axvline(thr, color="k", ls="--", label="threshold")
        ax.set(xscale="log", yscale="log", xlabel="autoencoder reconstruction error", ylabel="test rows",
               title=f"protocol {p}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    run.save_figure(fig, "scores.png")
    for p in protos:
        y, sc, thr = curves[(p, "autoencoder")]
        pos = "normal (anomaly)" if p == "A" else "attack"
        neg = "attack" if p == "A" else "normal"
        run.save_figure(plots.confusion_matrix(skm.confusion_matrix(y, sc > thr, labels=[False, True]), [neg, pos],
                                               normalize=True, title=f"protocol {p}: autoencoder"), f"confusion_{p}.png")
