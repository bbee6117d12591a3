"""The tabular tasks' pages in `exoml serve`: iris (four measurements -> cluster, on the PCA plot),
boston (a house's features -> price and each feature's contribution), kddcup (connection records ->
anomaly scores and verdicts). Each answers with its task module's own load and infer functions,
the ones `exoml predict` uses (imported when a page is used: the task modules import this one)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...serve.page import BadInput, Bars, Field, Note, Page, Picture, Table, Verdict, number_fields, png_of_figure

# the Iris measurements (cm) the page accepts: every flower of the data set is far inside
IRIS_RANGE = (0.1, 15.0)
# Boston Housing: each column's accepted range, the data set's own range widened a little
BOSTON_RANGES = {"CRIM": (0, 100), "ZN": (0, 100), "INDUS": (0, 30), "CHAS": (0, 1), "NOX": (0.3, 0.9),
                 "RM": (3, 9), "AGE": (0, 100), "DIS": (1, 13), "RAD": (1, 24), "TAX": (180, 720),
                 "PTRATIO": (12, 23), "B": (0, 400), "LSTAT": (1, 40)}
MAX_RECORDS = 1000  # kddcup: connection records in one form


def iris_page() -> Page:
    from . import iris

    def load(run_dir, _info):
        return iris.load_clusters(run_dir)

    def fields(state):
        m = state[0]
        example = dict(zip(m["features"], (5.9, 3.0, 5.1, 1.8)))
        return number_fields(m["features"], {c: IRIS_RANGE for c in m["features"]}, example,
                             help=f"cm, {IRIS_RANGE[0]:g} to {IRIS_RANGE[1]:g}")

    def answer(state, inputs):
        m, P, lab = state
        X = np.array([[inputs[c] for c in m["features"]]])
        clusters, dist = iris.assign(m, X)
        c = int(clusters[0])
        species = m["classes"][m["species_of_cluster"][str(c)]]
        fig = iris.pca_figure(m, P, lab, X, clusters)
        return [Verdict(f"cluster {c}: {species}"),
                Table("distance to each cluster's centroid (cm)",
                      [{"cluster": j, "species": m["classes"][m["species_of_cluster"][str(j)]],
                        "distance (cm)": float(dist[0, j])} for j in range(dist.shape[1])]),
                Picture("the flower among the 150 clustered ones (PCA plane)", png_of_figure(fig))]

    return Page(about="Enter a flower's four measurements: the run's K-means puts it in the cluster of the "
                      "nearest centroid, shown among the 150 Iris flowers in the plane of their first two "
                      "principal components.", load=load, fields=fields, answer=answer, submit="Cluster it")


def boston_page() -> Page:
    from . import boston, boston_report

    def load(run_dir, _info):
        return boston.load_models(run_dir)

    def fields(m):
        means = dict(zip(m["features"], m["ols"]["mean"]))
        means["CHAS"] = 0.0
        return number_fields(m["features"], BOSTON_RANGES, means,
                             help="filled in with the training average")

    def answer(m, inputs):
        X = pd.DataFrame([{c: inputs[c] for c in m["features"]}], dtype=np.float64)
        p_eng, p_ols, contrib = boston.price(m, X)
        order = np.argsort(-np.abs(contrib))
        fig = boston_report.prediction(m["features"], contrib, p_eng, p_ols)
        out = [Verdict(f"${p_eng[0] * 1000:,.0f} (engineered ridge); ${p_ols[0] * 1000:,.0f} (linear model, OLS)"),
               Bars("each feature's contribution to the linear model's price (vs the average house)",
                    [(m["features"][i], float(contrib[i])) for i in order], signed=True, unit=" k$"),
               Picture("the same, as `exoml predict boston` draws it", png_of_figure(fig))]
        if p_eng[0] >= 50:
            out.insert(1, Note("The data is censored at $50,000: the true value may be higher."))
        return out

    return Page(about="Enter a house's features (median value of owner-occupied homes, 1970s Boston, in $): "
                      "the price from the run's engineered ridge model and its plain linear model, and how much "
                      "each feature moves the linear model's price away from the average house.",
                load=load, fields=fields, answer=answer, submit="Price it")


def kddcup_page() -> Page:
    from . import kddcup, kddcup_report

    def load(run_dir, info):
        m, ae = kddcup.load_detector(run_dir, info)
        with np.load(run_dir / "predictions.npz", allow_pickle=False) as p:
            ref = p["b_val_autoencoder"], p["b_autoencoder"], p["b_y"]
        return m, ae, ref

    def fields(_state):
        return [Field("records", "Connection records", "textarea", required=False,
                      help="one raw record a line: the 41 comma-separated fields of the KDD Cup 99 files "
                           "(a 42nd field, the label, is shown but not used)"),
                Field("csv", "or a file of records", "file", accept=(".csv", ".txt", ".data"), required=False)]

    def answer(state, inputs):
        m, ae, (val, test, y) = state
        text, upload = inputs["records"].strip(), inputs["csv"]
        if bool(text) == bool(upload):
            raise BadInput("paste records or choose a file (one of the two)")
        name = "line"
        if upload:
            try:
                text = upload.data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise BadInput(f"{upload.filename} is not UTF-8 text", 415) from None
            name = f"{upload.filename} line"
        lines = [(f"{name} {i}", ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
        if not lines:
            raise BadInput("no records")
        if len(lines) > MAX_RECORDS:
            raise BadInput(f"{len(lines):,} records: at most {MAX_RECORDS:,} at a time", 413)
        df, score, others = kddcup.score_records(m, ae, lines)
        thr = m["threshold"]
        cats = m["prep"]["categories"]
        rows = []
        for i, ((where, ln), s) in enumerate(zip(lines, score)):
            fields = ln.strip().split(",")
            unseen = [f"{c}={df[c].iloc[i]}" for c in ("protocol_type", "service", "flag")
                      if df[c].iloc[i] not in cats[c]]
            rows.append({"record": where, "service": df["service"].iloc[i], "anomaly score": float(s),
                         "autoencoder": "ATTACK" if s > thr else "normal",
                         **{name.replace("_", " "): "ATTACK" if o[i] > t else "normal"
                            for name, (o, t) in others.items()},
                         "given label": fields[-1].strip() if len(fields) == len(m["features"]) + 1 else "",
                         "unseen in training": ", ".join(unseen)})
        flagged = int((score > thr).sum())
        fig = kddcup_report.score_figure(val, test, y, thr, score)
        return [Verdict(f"{flagged} of {len(lines)} record{'s' * (len(lines) != 1)} flagged as attacks"),
                Table(f"verdicts (threshold {thr:.5g}: {m['fpr_target']:.0%} false alarms on held-out normal "
                      f"training traffic)", rows),
                Picture("the records' autoencoder scores against the test traffic", png_of_figure(fig)),
                Note("Each detector was trained on normal traffic only (protocol B) and flags a record whose "
                     "score is above its threshold: the 1 - fpr_target quantile of its scores on held-out normal "
                     "traffic." + ("" if others else " This run saved only the autoencoder."))]

    return Page(about="Paste or upload raw network connection records (as in the KDD Cup 99 files): each gets the "
                      "run's autoencoder anomaly score (its reconstruction error) and the verdict of each of the "
                      "run's detectors (autoencoder, Isolation Forest, one-class SVM).",
                load=load, fields=fields, answer=answer, submit="Score the records")
