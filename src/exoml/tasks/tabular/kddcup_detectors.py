"""KDD Cup 99's detectors, trained and scored the same way in both protocols: a tanh autoencoder,
Isolation Forest and a one-class SVM (both protocols), two sanity baselines that choose and learn
nothing (protocol A: the same autoencoder untrained, Isolation Forest with scikit-learn's defaults)
and a k-nearest-neighbour distance (protocol B); and each protocol's choice of settings on
validation data."""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
from sklearn.ensemble import IsolationForest
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import SGDOneClassSVM
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline

from ...toolkit import loop, schedules, train
from .common import features, prf

METHODS = ["autoencoder", "isolation_forest", "ocsvm"]  # each chooses its settings on validation
# Protocol A's sanity baselines: the autoencoder's shape with its random initial weights, and
# IsolationForest() as scikit-learn ships it; both on the autoencoder's input, choosing nothing.
BASELINES = ["untrained_autoencoder", "isolation_forest_default"]
KNN = "knn"  # protocol B: distance to the nearest normal training rows


class KNNDistance:
    """Anomaly score: mean Euclidean distance to the k nearest of (up to) `reference` distinct
    training rows, drawn at random. Distinct, because normal traffic repeats the same records
    thousands of times: with duplicates, a row's k nearest would often be k copies of one record."""

    def __init__(self, k: int, reference: int, seed: int):
        self.k, self.reference, self.seed = k, reference, seed

    def fit(self, x: np.ndarray):
        ref = np.unique(x, axis=0)
        if len(ref) > self.reference:
            ref = ref[np.random.default_rng(self.seed).choice(len(ref), self.reference, replace=False)]
        self.nn_ = NearestNeighbors(n_neighbors=min(self.k, len(ref))).fit(ref)
        return self

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        # each distinct row once: the test file repeats a few flood records ~100,000 times
        rows, inverse = np.unique(x, axis=0, return_inverse=True)
        return -self.nn_.kneighbors(rows)[0].mean(1)[inverse.ravel()]  # scikit-learn's sign: higher = more normal


class AutoEncoder(nn.Module):
    def __init__(self, d: int, hidden: list[int]):
        super().__init__()
        enc, prev = [], d
        for h in hidden:
            enc += [nn.Linear(prev, h), nn.Tanh()]
            prev = h
        dec = []
        for h in hidden[-2::-1]:
            dec += [nn.Linear(prev, h), nn.Tanh()]
            prev = h
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec, nn.Linear(prev, d))

    def forward(self, x):
        return self.decoder(self.encoder(x))


def ae_score(model, x: torch.Tensor) -> np.ndarray:
    """Anomaly score: mean squared reconstruction error per row."""
    return ((train.predict(model, x, 8192) - x.cpu()) ** 2).mean(1).numpy()


def fit_score(cfg, run, x_fit, x_val, x_eval: dict, seed: int, tag: str, methods=METHODS,
              epochs: int | None = None, fitted: dict | None = None) -> tuple[dict, dict, object]:
    """Train the detectors on x_fit; return ({method: {split: scores}}, {method: seconds}, ae).
    `fitted`, if given, receives the fitted scikit-learn-style detectors by method, to score more
    rows later."""
    scores, secs, ae = {m: {} for m in methods}, {}, None
    for m in [m for m in methods if m in ("autoencoder", "untrained_autoencoder")]:
        if m == "autoencoder":
            net = ae = _fit_autoencoder(cfg, run, x_fit, x_val, seed, tag, epochs or cfg.epochs)
        else:
            train.seed_everything(seed)
            net = AutoEncoder(x_fit.shape[1], cfg.hidden).to(train.pick_device(cfg.device))
            net.seconds = 0.0
        t0 = time.time()
        for split, x in x_eval.items():
            scores[m][split] = ae_score(net, torch.from_numpy(x))
        secs[m] = time.time() - t0 + net.seconds
    others = {"isolation_forest": lambda: IsolationForest(n_estimators=cfg.if_trees, random_state=seed),
              "ocsvm": lambda: make_pipeline(Nystroem(gamma=cfg.ocsvm_gamma or None, n_components=cfg.ocsvm_components,
                                                      random_state=seed),
                                             SGDOneClassSVM(nu=cfg.ocsvm_nu, random_state=seed)),
              "isolation_forest_default": lambda: IsolationForest(random_state=seed),
              KNN: lambda: KNNDistance(cfg.knn_k, cfg.knn_reference, seed)}
    for m in [m for m in methods if m in others]:
        t0 = time.time()
        est = others[m]().fit(x_fit)
        if fitted is not None:
            fitted[m] = est
        for split, x in x_eval.items():
            scores[m][split] = -est.score_samples(x)  # higher = more anomalous
        secs[m] = time.time() - t0
    return scores, secs, ae


def _fit_autoencoder(cfg, run, x_fit, x_val, seed: int, tag: str, epochs: int) -> AutoEncoder:
    device = train.pick_device(cfg.device)
    t0 = time.time()
    g = train.seed_everything(seed)
    ae = AutoEncoder(x_fit.shape[1], cfg.hidden).to(device)
    loss_fn, opt, _ = train.compile(ae, cfg.loss, cfg.optimizer, cfg.lr, cfg.metrics, cfg.weight_decay)
    tx, tv = torch.from_numpy(x_fit).to(device), torch.from_numpy(x_val).to(device)
    steps = schedules.steps(len(tx), cfg.batch_size, epochs, drop_last=False)
    sched = schedules.lambda_lr(opt, schedules.one_cycle(steps, 0.1, shift=1))
    loop.fit(ae, tx, tx, loss_fn, [opt], [sched], epochs=epochs, batch_size=cfg.batch_size, metrics=cfg.metrics,
             validate=loop.validation(tv, tv, loss_fn, cfg.metrics), generator=g, drop_last=False,
             max_steps=1 if cfg.dry_run else None,
             log=lambda row: run.log_epoch({"protocol": tag, "seed": seed, **row}), run=run, checkpoint=f"checkpoint-{tag}-seed{seed}.safetensors", desc=f"kddcup {tag}")
    ae.seconds = time.time() - t0
    return ae


def choose_a(cfg, run, prep_for, take, fit_idx, val_idx, x_vnor_for, seed: int) -> tuple[dict, list[dict]]:
    """Protocol A's settings per method, by F1 on its validation set: held-out training attacks
    (the inliers) plus normal rows of `corrected` (the anomalies; that file is not A's test split).
    Returns ({method: (scaler, epochs)}, the table of candidates)."""
    table = []
    for kind in cfg.scalers_a:
        prep = prep_for(kind)
        x_fit, x_val, x_vnor = features(prep, *take(fit_idx)), features(prep, *take(val_idx)), x_vnor_for(prep)
        y = np.r_[np.zeros(len(x_val), bool), np.ones(len(x_vnor), bool)]
        for i, ep in enumerate(cfg.epochs_a):
            methods = METHODS if i == 0 else ["autoencoder"]  # only the autoencoder has epochs
            scores, _, _ = fit_score(cfg, run, x_fit, x_val, {"val": x_val, "vnor": x_vnor}, seed, f"A-val-{kind}-{ep}",
                                     methods, ep)
            for m in methods:
                sc = np.r_[scores[m]["val"], scores[m]["vnor"]]
                f1 = prf(y, sc > np.percentile(sc, 100 * (1 - y.mean())))["f1"]
                table.append({"method": m, "scaler": kind, "epochs": ep if m == "autoencoder" else "", "val_f1": f1})
    best = {}
    for row in table:
        if row["method"] not in best or row["val_f1"] > best[row["method"]]["val_f1"]:
            best[row["method"]] = row
    return {m: (r["scaler"], r["epochs"] or None) for m, r in best.items()}, table


def choose_b(fits: dict, fpr_target: float, methods=METHODS) -> tuple[dict, list[dict]]:
    """Protocol B's scaler per method, by F1 on its validation set: held-out normal training rows
    (scores "val", which also set the threshold) plus attack rows of the 10% file ("vatt").
    `fits[scaler] = (scores, seconds, ...)` as fit_score returns them; the first scaler wins ties.
    The table also gives each candidate's recall on the r2l rows of the 10% file ("vr2l", when
    scored), the validation view of the category the detectors find hardest.
    Returns ({method: scaler}, the table of candidates)."""
    best, table = {}, []
    for kind, (scores, secs, *_) in fits.items():
        for m in methods:
            thr = np.quantile(scores[m]["val"], 1 - fpr_target)
            yv = np.r_[np.zeros(len(scores[m]["val"]), bool), np.ones(len(scores[m]["vatt"]), bool)]
            f1 = prf(yv, np.r_[scores[m]["val"], scores[m]["vatt"]] > thr)["f1"]
            r2l = {"val_r2l_recall": float((scores[m]["vr2l"] > thr).mean())} if len(scores[m].get("vr2l", [])) else {}
            table.append({"method": m, "scaler": kind, "val_f1": f1, **r2l, "seconds": secs[m]})
            if m not in best or f1 > best[m][0]:
                best[m] = (f1, kind)
    return {m: kind for m, (_, kind) in best.items()}, table
