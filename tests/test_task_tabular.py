"""The tabular tasks (boston, iris, kddcup) end to end on tiny files in the official formats, their
`exoml predict` happy and error paths, and the published reproductions on the real data
(Boston OLS test R² 0.6688 when ../shared/data is present; Iris K-means ARI 0.730 always, the
data is bundled with scikit-learn)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from exoml import data
from exoml.cli import main

from conftest import shared
from fixtures.boston import COLUMNS, write_housing
from fixtures.kddcup import row as kdd_row, write_kddcup

FAST = ["--threads", "1"]  # one BLAS/torch thread: much faster on a busy shared 2-core machine


def _complete(out, task):
    (path,) = (out / task).iterdir()
    assert json.loads((path / "status.json").read_text())["status"] == "complete"
    return path, json.loads((path / "metrics.json").read_text())


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert err.startswith("exoml: error:") and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


# ---------------------------------------------------------------- boston -------------

def synthetic_housing(n=80, seed=0):
    """Rows with the real columns' ranges and a MEDV that depends on them (plus noise), capped at 50."""
    rng = np.random.default_rng(seed)
    X = {"CRIM": rng.lognormal(-1, 1.5, n), "ZN": rng.choice([0, 0, 12.5, 25, 80], n), "INDUS": rng.uniform(1, 27, n),
         "CHAS": rng.integers(0, 2, n), "NOX": rng.uniform(0.38, 0.87, n), "RM": rng.normal(6.3, 0.7, n),
         "AGE": rng.uniform(3, 100, n), "DIS": rng.uniform(1.1, 12, n), "RAD": rng.choice([1, 4, 5, 24], n),
         "TAX": rng.uniform(190, 710, n), "PTRATIO": rng.uniform(12.6, 22, n), "B": rng.uniform(100, 396.9, n),
         "LSTAT": rng.uniform(2, 37, n)}
    medv = 22 + 6 * (X["RM"] - 6.3) - 0.5 * X["LSTAT"] + 3 * np.log(X["DIS"]) - 0.1 * X["CRIM"] + rng.normal(0, 1.5, n)
    X["MEDV"] = np.clip(medv, 5, 50)
    return [[round(float(X[c][i]), 4) for c in COLUMNS] for i in range(n)]


def test_boston_refuses_a_subset_too_small_to_split(tmp_path, capsys):
    data.import_("boston", [write_housing(tmp_path / "raw", synthetic_housing()[:3])], subset=True)
    assert main(["run", "boston", "--quick", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "exoml: error: boston needs at least 50 rows; the imported data has 3"


def test_boston_end_to_end_and_predict(tmp_path, capsys):
    rows = synthetic_housing()
    data.import_("boston", [write_housing(tmp_path / "raw", rows)], subset=True)
    out = tmp_path / "runs"
    assert main(["run", "boston", "--quick", *FAST, "--out", str(out)]) == 0
    path, m = _complete(out, "boston")
    assert m["n_train"] == 64 and m["n_test"] == 16
    assert m["ols_test_r2"] > 0.8  # the synthetic target is nearly linear
    # gradient descent lands on the closed form
    assert m["gd_vs_ols_max_abs_diff"] < 0.05 and abs(m["gd_test_r2"] - m["ols_test_r2"]) < 1e-3
    assert m["engineered_degree"] in (1, 2) and m["engineered_alpha"] > 0
    for name in ("model.safetensors", "models.json", "predictions.npz", "history.csv", "report.md", "features.png",
                 "correlation.png", "medv.png", "pred_vs_actual.png", "residuals.png", "coefficients.png"):
        assert (path / name).stat().st_size > 0, name
    assert "ethically problematic" in (path / "report.md").read_text()
    assert len((path / "history.csv").read_text().splitlines()) == 1 + 100  # one row per epoch (QUICK)
    with np.load(path / "predictions.npz", allow_pickle=False) as p:  # the metric can be recomputed
        from sklearn.metrics import r2_score
        assert r2_score(p["y_test"], p["ols"]) == pytest.approx(m["ols_test_r2"], abs=1e-9)
        ols_test = p["ols"]
        test_index = p["test_index"]

    # predict a test row: the CLI gives the OLS prediction the run saved
    capsys.readouterr()
    first = dict(zip(COLUMNS, rows[int(test_index[0])]))
    assert main(["predict", "boston", "--out", str(out), "--row", json.dumps(first)]) == 0
    text = capsys.readouterr().out
    assert f"{ols_test[0]:.2f} (OLS)" in text and "plot:" in text
    assert list((path / "predictions").glob("row*.png"))
    csv = tmp_path / "houses.csv"
    pd.DataFrame(rows[:3], columns=COLUMNS).to_csv(csv, index=False)
    assert main(["predict", "boston", "--out", str(out), "--csv", str(csv)]) == 0
    assert capsys.readouterr().out.count("predicted MEDV") == 3 and (path / "predictions" / "houses.png").exists()

    # bad input: one line, exit 2
    no_lstat = {k: v for k, v in first.items() if k not in ("LSTAT", "MEDV")}
    assert main(["predict", "boston", "--out", str(out), "--row", json.dumps(no_lstat)]) == 2
    _one_line_error(capsys, "missing column", "LSTAT")
    assert main(["predict", "boston", "--out", str(out), "--row", json.dumps({**first, "RM": "six"})]) == 2
    _one_line_error(capsys, "RM", "not a number")
    assert main(["predict", "boston", "--out", str(out), "--row", json.dumps({**first, "RM": None})]) == 2
    _one_line_error(capsys, "RM")
    assert main(["predict", "boston", "--out", str(out), "--row", "{CRIM: 1"]) == 2
    _one_line_error(capsys, "not valid JSON")
    assert main(["predict", "boston", "--out", str(out), "--row", json.dumps({**first, "ROOMS": 3})]) == 2
    _one_line_error(capsys, "unknown column", "ROOMS")
    assert main(["predict", "boston", "--out", str(out)]) == 2
    _one_line_error(capsys, "--row", "--csv")
    assert main(["predict", "boston", "--out", str(out), "--csv", str(tmp_path / "nope.csv")]) == 2
    _one_line_error(capsys, "no such file")
    assert main(["predict", "boston", "--out", str(tmp_path / "empty"), "--row", json.dumps(first)]) == 2
    _one_line_error(capsys, "no complete run")


@pytest.mark.realdata
def test_boston_reproduces_published_r2(tmp_path):
    data.import_("boston", [shared("boston")])
    out = tmp_path / "runs"
    assert main(["run", "boston", "--quick", *FAST, "--degrees", "2", "--cv-repeats", "1", "--out", str(out)]) == 0
    _, m = _complete(out, "boston")
    assert m["ols_test_r2"] == pytest.approx(0.6688, abs=5e-5)  # LinearRegression, 13 features, split seed 42
    assert m["gd_test_r2"] == pytest.approx(m["ols_test_r2"], abs=1e-4)
    assert m["engineered_test_r2"] >= 0.80
    assert m["n_censored_at_50"] == 16


# ---------------------------------------------------------------- iris ---------------

def test_iris_reproduces_kmeans_and_predicts(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", "iris", "--quick", *FAST, "--out", str(out)]) == 0
    path, m = _complete(out, "iris")
    assert m["kmeans_raw_ari"] == pytest.approx(0.730, abs=5e-4)        # published figures, raw features, k=3
    assert m["kmeans_raw_accuracy"] == pytest.approx(134 / 150, abs=1e-9)  # 0.893
    assert m["gmm_raw_ari"] > 0.85 > m["kmeans_raw_ari"] > m["kmeans_std_ari"]
    for name in ("model.json", "predictions.npz", "history.csv", "report.md", "choose_k.png", "pca_clusters.png",
                 "pairplot.png", "confusion.png"):
        assert (path / name).stat().st_size > 0, name
    assert len((path / "history.csv").read_text().splitlines()) == 1 + 6  # k = 1..6 (QUICK)
    table = (path / "report.md").read_text()
    assert all(f"| {meth} |" in table for meth in ("kmeans_raw", "kmeans_std", "gmm_raw"))

    capsys.readouterr()
    assert main(["predict", "iris", "--out", str(out), "--row", "[5.1, 3.5, 1.4, 0.2]",
                 "--row", '{"sepal_length": 6.9, "Sepal Width": 3.1, "petal length (cm)": 5.7, "petal width": 2.2}']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "setosa" in lines[0] and "virginica" in lines[1] and lines[2].startswith("plot:")
    assert main(["predict", "iris", "--out", str(out), "--row", "[5.1, 3.5, 1.4]"]) == 2
    _one_line_error(capsys, "4 values")
    assert main(["predict", "iris", "--out", str(out), "--row", '{"sepal length": 5, "sepal width": 3}']) == 2
    _one_line_error(capsys, "missing column", "petal length")
    assert main(["predict", "iris", "--out", str(out), "--row", "[5.1, 3.5, 1.4, \"wide\"]"]) == 2
    _one_line_error(capsys, "petal width", "not a number")


def test_iris_matching_handles_more_clusters_than_species():
    from exoml.tasks.tabular.iris import matching
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    lab = np.array([3, 3, 0, 0, 1, 2, 2])  # 4 clusters
    one_to_one = matching(y, lab)
    assert one_to_one == {3: 0, 0: 1, 2: 2}
    assert matching(y, lab, complete=True) == {3: 0, 0: 1, 2: 2, 1: 2}


# ---------------------------------------------------------------- kddcup -------------

def test_kdd_preprocessing_uses_training_statistics_only():
    from exoml.tasks.tabular.kddcup import ONE_HOT, encode, features, fit_prep
    from fixtures.kddcup import FEATURES
    lines = [kdd_row(i, "normal").rstrip(".\n").split(",")[:41] for i in range(6)]
    df = pd.DataFrame(lines, columns=FEATURES)
    numeric = [c for c in FEATURES if c not in ONE_HOT]
    num, sym = encode(df, numeric)
    assert num[:, numeric.index("src_bytes")] == pytest.approx(np.log1p(100 + np.arange(6)))  # log1p of counts
    prep = fit_prep(num[:3], {c: v[:3] for c, v in sym.items()}, numeric, "minmax")
    x = features(prep, num, sym)
    assert x.shape == (6, len(numeric) + 3 + 1 + 1)  # protocols tcp/udp/icmp, service http, flag SF
    assert x[:3, :len(numeric)].min() >= 0 and x[:3, :len(numeric)].max() <= 1
    assert x[3:, numeric.index("src_bytes")].min() > 1  # test rows beyond the training range are not clipped
    first3 = {c: v[:3] for c, v in sym.items()}
    z = features(fit_prep(num[:3], first3, numeric, "standard"), num[:3], first3)[:, :len(numeric)]
    assert np.allclose(z.mean(0), 0, atol=1e-6) and set(np.round(z.std(0), 6)) <= {0.0, 1.0}
    sym["service"][5] = "gopher"  # unseen in training: all zeros in the one-hot block
    assert x.shape == features(prep, num, sym).shape and features(prep, num, sym)[5, len(numeric) + 3] == 0


def test_kddcup_end_to_end_and_predict(tmp_path, capsys):
    data.import_("kddcup", write_kddcup(tmp_path / "raw", n_train=240, n_test=120), subset=True)
    out = tmp_path / "runs"
    assert main(["run", "kddcup", "--quick", *FAST, "--out", str(out)]) == 0
    path, m = _complete(out, "kddcup")
    assert m["A_seeds"] == 2
    for key in ("A_autoencoder_f1_mean", "A_isolation_forest_f1_mean", "A_ocsvm_f1_mean", "B_autoencoder_f1",
                "B_autoencoder_roc_auc", "B_ocsvm_recall_dos", "B_isolation_forest_pr_auc"):
        assert 0 <= m[key] <= 1, key
    for name in ("model.safetensors", "model.json", "predictions.npz", "history.csv", "report.md", "data.png",
                 "curves.png", "scores.png", "history.png", "confusion_A.png", "confusion_B.png"):
        assert (path / name).stat().st_size > 0, name
    history = pd.read_csv(path / "history.csv")
    # A's choice once per candidate scaler, 2 seeds of A, and B once per candidate scaler; 3 epochs each
    assert set(history.protocol) == {"A-val-standard-3", "A-val-minmax-3", "A", "B-standard", "B-minmax"}
    assert len(history) == 6 * 3
    assert m["B_autoencoder_scaler"] in ("standard", "minmax") and m["A_ocsvm_scaler"] in ("standard", "minmax")
    report = (path / "report.md").read_text()
    assert "normal rows of `corrected` (anomalies)" in report and "val_f1" in report
    with np.load(path / "predictions.npz", allow_pickle=False) as p:  # protocol B's F1 from the saved scores
        from sklearn.metrics import f1_score
        f1 = f1_score(p["b_y"], p["b_autoencoder"] > m["B_autoencoder_threshold"])
        assert f1 == pytest.approx(m["B_autoencoder_f1"], abs=1e-9)
        assert p["b_label_names"][p["b_label"]].tolist().count("normal") == 30

    capsys.readouterr()
    rec = kdd_row(7, "smurf").strip()
    assert main(["predict", "kddcup", "--out", str(out), "--row", rec, "--row", rec.rsplit(",", 1)[0]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("row 1: anomaly score") and "given label: smurf." in lines[0]
    assert "row 2: anomaly score" in lines[1] and ("ATTACK" in lines[1] or "normal" in lines[1])
    records = tmp_path / "conn.txt"
    records.write_text("".join(kdd_row(i, "normal") for i in range(3)))
    assert main(["predict", "kddcup", "--out", str(out), "--csv", str(records)]) == 0
    assert capsys.readouterr().out.count("anomaly score") == 3 and (path / "predictions" / "conn.png").exists()
    fields = rec.split(",")
    assert main(["predict", "kddcup", "--out", str(out), "--row", ",".join(fields[:40])]) == 2
    _one_line_error(capsys, "40 fields", "41")
    bad = fields.copy()
    bad[4] = "lots"
    assert main(["predict", "kddcup", "--out", str(out), "--row", ",".join(bad)]) == 2
    _one_line_error(capsys, "src_bytes", "not a number")
    assert main(["run", "kddcup", "--quick", "--protocols", "C", "--out", str(out)]) == 2
    _one_line_error(capsys, "--protocols")


def test_kddcup_predict_needs_protocol_b(tmp_path, capsys):
    data.import_("kddcup", write_kddcup(tmp_path / "raw", n_train=120, n_test=60), subset=True)
    out = tmp_path / "runs"
    assert main(["run", "kddcup", "--quick", *FAST, "--protocols", "A", "--seeds", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["predict", "kddcup", "--out", str(out), "--row", kdd_row(1, "normal").strip()]) == 2
    _one_line_error(capsys, "protocol B")
