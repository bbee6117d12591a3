"""The scikit-learn references and sanity baselines of benchmarks/bench_peers.py.

Same contract as peers_keras.py ({"value", "seconds", "settings", ...}). These are the plain library
calls a reader would write first; where exoml fits the same model on the same data, its number must
be this one (bench_peers checks it and says so in the row).
"""
from __future__ import annotations

import time

import numpy as np


def iris_kmeans(seed: int, small: bool) -> dict:
    """scikit-learn's KMeans with its defaults, k = 3, on the four raw measurements, scored by the
    adjusted Rand index against the species (https://scikit-learn.org/stable/modules/generated/sklearn.cluster.KMeans.html)."""
    from exoml import data
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    t0 = time.perf_counter()
    d = data.load("iris")
    X, y = d.frame[list(d.feature_names)].to_numpy(), np.asarray(d.target)
    labels = KMeans(n_clusters=3, random_state=seed).fit_predict(X)
    seconds = time.perf_counter() - t0
    # exoml's K-means keeps the best of 10 restarts (n_init=10); the same call with that one setting
    # is the model whose score exoml's must equal
    same = KMeans(n_clusters=3, n_init=10, random_state=seed).fit_predict(X)
    return {"value": float(adjusted_rand_score(y, labels)), "seconds": seconds, "epoch_s": [],
            "same_model_value": float(adjusted_rand_score(y, same)), "same_model": "KMeans(n_clusters=3, n_init=10)",
            "settings": "KMeans(n_clusters=3) defaults (n_init='auto': one k-means++ start)"}


def boston_ols(seed: int, small: bool) -> dict:
    """scikit-learn's LinearRegression on the usual split, train_test_split(test_size=0.2,
    random_state=42) of all 13 features, scored by test R²."""
    from exoml import data
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split
    t0 = time.perf_counter()
    d = data.load("boston")
    X, y = d.frame[list(d.feature_names)], d.frame[d.target].to_numpy()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=42)
    r2 = LinearRegression().fit(X_tr, y_tr).score(X_te, y_te)
    return {"value": float(r2), "seconds": time.perf_counter() - t0, "epoch_s": [],
            "same_model_value": float(r2), "same_model": "this LinearRegression",
            "settings": "LinearRegression(), 80/20 split, random_state=42"}


KDD_SMALL = 20000  # --smallest: rows of the 10% file


def _kdd_protocol_a(seed: int, small: bool, splits: int | None, score) -> dict:
    """The DAGMM protocol (Zong et al. 2018) on the KDD Cup 99 10% file: `normal` (about 20%) is the
    anomaly class; a random half of the attack rows trains, the other half plus every normal row
    tests; the rows scored above the (100 - anomaly share) percentile are flagged; F1 of the flags.
    Preprocessing as DAGMM's: one-hot of the 3 symbolic columns, min-max scaling (fit on the training
    half). `score(x_train, x_test, seed) -> scores` (higher = more anomalous). Mean over `splits`
    random splits, seeds seed, seed + 1, ... (exoml's protocol A uses the same seeds)."""
    import pandas as pd
    from exoml import data
    from sklearn.metrics import precision_recall_fscore_support
    if splits is None:  # as many as exoml's protocol A makes
        from exoml.tasks.tabular.kddcup import Config
        splits = Config().seeds
    t0 = time.perf_counter()
    d = data.load("kddcup")
    frame = d.train
    if small:
        frame = frame.iloc[np.sort(np.random.default_rng(seed).choice(len(frame), KDD_SMALL, replace=False))]
    labels = frame["label"].astype(str).to_numpy()
    X = pd.get_dummies(frame.drop(columns="label"), columns=["protocol_type", "service", "flag"]).to_numpy(float)
    f1s = []
    for s in range(seed, seed + splits):
        r = np.random.default_rng(s)
        att, nor = r.permutation(np.flatnonzero(labels != "normal")), np.flatnonzero(labels == "normal")
        tr, te = att[:len(att) // 2], np.concatenate([att[len(att) // 2:], nor])
        lo, span = X[tr].min(0), X[tr].max(0) - X[tr].min(0)
        span = np.where(span > 0, span, 1.0)
        scores = score(((X[tr] - lo) / span).astype(np.float32), ((X[te] - lo) / span).astype(np.float32), s)
        y = labels[te] == "normal"
        flagged = scores > np.percentile(scores, 100 * (1 - y.mean()))
        f1s.append(precision_recall_fscore_support(y, flagged, average="binary", zero_division=0)[2])
    return {"value": float(np.mean(f1s)), "seconds": time.perf_counter() - t0, "epoch_s": [], "f1_per_split": f1s}


def kdd_isolation_forest(seed: int, small: bool, splits: int | None = None) -> dict:
    """scikit-learn's IsolationForest with its defaults (100 trees of 256 rows), -score_samples as the
    anomaly score, under the DAGMM protocol: a sanity baseline."""
    from sklearn.ensemble import IsolationForest
    out = _kdd_protocol_a(seed, small, 1 if small else splits,
                          lambda tr, te, s: -IsolationForest(random_state=s).fit(tr).score_samples(te))
    return out | {"settings": f"IsolationForest() defaults, {len(out['f1_per_split'])} splits"}


def kdd_untrained_autoencoder(seed: int, small: bool, splits: int | None = None) -> dict:
    """exoml's autoencoder architecture (64-32-8 tanh encoder, mirrored decoder) with its random
    initial weights, never trained, scored by reconstruction MSE under the DAGMM protocol: the floor
    a trained autoencoder must clear."""
    import torch
    from exoml.tasks.tabular.kddcup_detectors import AutoEncoder

    def score(tr, te, s):
        torch.manual_seed(s)
        model = AutoEncoder(tr.shape[1], [64, 32, 8]).eval()
        with torch.no_grad():
            x = torch.from_numpy(te)
            return ((model(x) - x) ** 2).mean(1).numpy()
    out = _kdd_protocol_a(seed, small, 1 if small else splits, score)
    return out | {"settings": f"untrained 64-32-8 autoencoder, {len(out['f1_per_split'])} splits"}


RECIPES = {"iris_kmeans": iris_kmeans, "boston_ols": boston_ols, "kdd_isolation_forest": kdd_isolation_forest,
           "kdd_untrained_autoencoder": kdd_untrained_autoencoder}
