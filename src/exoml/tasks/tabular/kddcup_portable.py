"""KDD Cup's Isolation Forest and one-class SVM (Nystroem features + SGDOneClassSVM) as plain arrays
in model.json (no pickle), and their anomaly scores computed from those arrays: what `exoml predict`
and `exoml serve` use to give each detector's verdict on new records. `export` checks that the arrays
reproduce scikit-learn's scores before they are saved."""
from __future__ import annotations

import numpy as np

from ...errors import ExomlError


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """Expected depth of an unsuccessful search in a binary search tree of n points (Liu et al. 2008)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _forest(est) -> dict:
    trees = []
    for tree, feats in zip(est.estimators_, est.estimators_features_):
        t = tree.tree_
        trees.append({"left": t.children_left.tolist(), "right": t.children_right.tolist(),
                      "feature": [int(feats[f]) if f >= 0 else -1 for f in t.feature],
                      "threshold": t.threshold.tolist(), "n": t.n_node_samples.tolist()})
    return {"kind": "isolation_forest", "max_samples": int(est.max_samples_), "trees": trees}


def _ocsvm(pipe) -> dict:
    nys, svm = pipe[0], pipe[-1]
    gamma = nys.gamma if nys.gamma is not None else 1.0 / nys.components_.shape[1]
    return {"kind": "ocsvm", "gamma": float(gamma), "dtype": str(nys.components_.dtype),
            "components": nys.components_.tolist(), "normalization": nys.normalization_.tolist(),
            "coef": np.ravel(svm.coef_).tolist()}


def score(model: dict, x: np.ndarray) -> np.ndarray:
    """Anomaly scores (higher = more anomalous: minus scikit-learn's score_samples) of feature rows x."""
    x = np.asarray(x, dtype=np.float32)  # trees compare float32 inputs, as scikit-learn's do
    if model["kind"] == "isolation_forest":
        depths = np.zeros(len(x))
        for t in model["trees"]:
            left, right, feat = np.array(t["left"]), np.array(t["right"]), np.array(t["feature"])
            thr, n = np.array(t["threshold"]), np.array(t["n"])
            node, depth = np.zeros(len(x), dtype=np.int64), np.zeros(len(x))
            while True:
                inner = left[node] >= 0
                if not inner.any():
                    break
                rows = np.flatnonzero(inner)
                go_left = x[rows, feat[node[rows]]] <= thr[node[rows]]
                node[rows] = np.where(go_left, left[node[rows]], right[node[rows]])
                depth[rows] += 1
            depths += depth + _average_path_length(n[node])
        denominator = len(model["trees"]) * _average_path_length(np.array([model["max_samples"]]))[0]
        return 2.0 ** (-depths / denominator) if denominator else np.ones(len(x))
    if model["kind"] == "ocsvm":
        # scikit-learn's own kernel function in the fitted arrays' precision: the same rounding as
        # the pipeline's score_samples
        from sklearn.metrics.pairwise import rbf_kernel
        dtype = np.dtype(model.get("dtype", "float64"))
        kernel = rbf_kernel(x.astype(dtype), np.array(model["components"], dtype=dtype), gamma=model["gamma"])
        return -(kernel @ np.array(model["normalization"], dtype=dtype).T @ np.array(model["coef"]))
    raise ExomlError(f"unknown detector kind {model.get('kind')!r} in model.json")


def export(method: str, est, x_check: np.ndarray) -> dict:
    """The fitted detector as arrays, refused unless they reproduce its scores on x_check."""
    model = _forest(est) if method == "isolation_forest" else _ocsvm(est)
    if not np.allclose(score(model, x_check), -est.score_samples(x_check), rtol=1e-5, atol=1e-6):
        raise ExomlError(f"internal error: the exported {method} does not reproduce scikit-learn's scores")
    return model
