"""Classification metrics shared by the classifier tasks (scikit-learn does the counting)."""
from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def classification_metrics(y_true, y_pred, classes: list[str]) -> tuple[dict, list[dict], np.ndarray]:
    """(headline metrics, one row per class, confusion matrix)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.arange(len(classes))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = [{"class": c, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                 for i, c in enumerate(classes)]
    head = {"accuracy": float(skm.accuracy_score(y_true, y_pred)),
            "macro_precision": float(p.mean()), "macro_recall": float(r.mean()), "macro_f1": float(f.mean()),
            "n_test": int(len(y_true))}
    return head, per_class, skm.confusion_matrix(y_true, y_pred, labels=labels)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
