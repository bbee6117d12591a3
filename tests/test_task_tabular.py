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
                 "correlation.png", "medv.png", "pred_vs_actual.png", "residuals.png", "coefficients.png",
                 "residuals_qq.png", "cv_r2.png"):
        assert (path / name).stat().st_size > 0, name
    # the engineered model's repeated CV: the same 2 x 5 folds as OLS (QUICK), nested
    assert m["cv_folds_total"] == 10
    assert 0 < m["engineered_cv_r2_std"] < 1 and m["engineered_cv_r2_mean"] > 0.5 and m["ols_cv_r2_mean"] > 0.5
    assert [r["term"] for r in m["ols_coefficients"]] == ["const", *COLUMNS[:-1]]
    assert all(r["ci_low"] < r["coef"] < r["ci_high"] and 0 <= r["p_value"] <= 1 for r in m["ols_coefficients"])
    text = (path / "report.md").read_text()
    assert "ethically problematic" in text and "engineered ridge, nested: R²" in text
    assert "| const |" in text and "P>\\|t\\|" in text  # the coefficient table, its | escaped
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
    assert m["engineered_cv_r2_mean"] >= 0.80 > m["ols_cv_r2_mean"]  # nested CV, 5 folds, degree 2
    assert m["n_censored_at_50"] == 16


def _housing_frame(n=80, seed=0):
    rows = synthetic_housing(n, seed)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame[COLUMNS[:-1]], frame["MEDV"].to_numpy()


def test_boston_engineered_cv_is_nested(monkeypatch):
    """Each outer fold's model is fitted on that fold's training rows only (spy), and changing a
    fold's held-out rows changes none of that fold's choices (by construction)."""
    from sklearn.model_selection import RepeatedKFold
    from exoml.tasks.tabular.boston import repeated_cv
    from exoml.tasks.tabular.boston_engineered import EngineeredRidge
    X, y = _housing_frame()
    cv = RepeatedKFold(n_splits=4, n_repeats=2, random_state=3)
    splits = list(cv.split(X))
    seen, fit = [], EngineeredRidge.fit

    def spy(self, X_fit, y_fit):
        seen.append(set(X_fit.index))
        return fit(self, X_fit, y_fit)
    monkeypatch.setattr(EngineeredRidge, "fit", spy)
    model = EngineeredRidge(degrees=(1, 2), skew=0.5, alphas=np.logspace(-3, 3, 7), folds=3)
    scores, fitted = repeated_cv(model, X, y, cv)
    assert len(seen) == len(splits) == len(scores["r2"]) == 8
    for rows, (tr, te) in zip(seen, splits):
        assert rows == set(X.index[tr]) and not rows & set(X.index[te])

    # wreck the held-out rows of the first fold: its choices and coefficients must not move
    tr0, te0 = splits[0]
    X2, y2 = X.copy(), y.copy()
    X2.iloc[te0] = X2.iloc[te0] * 7 + 3
    y2[te0] = 50 - y2[te0]
    scores2, fitted2 = repeated_cv(model, X2, y2, cv)
    a, b = fitted[0], fitted2[0]
    assert (a.log_columns_, a.best_, a.alpha_, a.trials_) == (b.log_columns_, b.best_, b.alpha_, b.trials_)
    assert np.array_equal(a.export(list(X.columns), "boston")["coef"], b.export(list(X.columns), "boston")["coef"])
    assert scores2["r2"][0] != scores["r2"][0]  # the held-out rows are what the fold is scored on
    # while a fold that trained on those rows sees them
    later = next(i for i, (tr, _) in enumerate(splits) if set(te0) <= set(tr))
    assert fitted[later].trials_ != fitted2[later].trials_


def test_boston_ols_table_matches_reference_computations():
    """Each t² equals the F statistic of dropping that column (computed from two least-squares
    fits, no (X'X)^-1), its p-value the F test's, and each interval end is where the t test of
    H0: beta = end gives p = 0.05."""
    from scipy import stats
    from exoml.tasks.tabular.boston_inference import ols_table
    X, y = _housing_frame(120, seed=1)
    table, fit = ols_table(X, y)
    A = np.column_stack([np.ones(len(X)), X.to_numpy()])
    n, p = A.shape
    rss = lambda M, t: float(((t - M @ np.linalg.lstsq(M, t, rcond=None)[0]) ** 2).sum())  # noqa: E731
    full = rss(A, y)
    s2 = full / (n - p)
    assert fit["df_resid"] == n - p and fit["residual_se"] == pytest.approx(np.sqrt(s2))
    assert table.coef.to_numpy() == pytest.approx(np.linalg.lstsq(A, y, rcond=None)[0], rel=1e-8)
    for j, name in enumerate(table.index):
        reduced = np.delete(A, j, axis=1)
        f = (rss(reduced, y) - full) / s2
        assert table.t[name] ** 2 == pytest.approx(f, rel=1e-6)
        assert table.p_value[name] == pytest.approx(stats.f.sf(f, 1, n - p), rel=1e-6, abs=1e-300)
        for end in (table.ci_low[name], table.ci_high[name]):
            shifted = y - end * A[:, j]  # H0: beta_j = end  <=>  beta_j = 0 for the shifted target
            f_end = (rss(reduced, shifted) - rss(A, shifted)) / s2
            assert stats.f.sf(f_end, 1, n - p) == pytest.approx(0.05, abs=1e-6)
    tss = ((y - y.mean()) ** 2).sum()
    assert fit["r2"] == pytest.approx(1 - full / tss)
    assert fit["f_statistic"] == pytest.approx(((tss - full) / (p - 1)) / s2)


def test_boston_ols_table_refuses_collinear_columns():
    from exoml.errors import ExomlError
    from exoml.tasks.tabular.boston_inference import ols_table
    X, y = _housing_frame()
    with pytest.raises(ExomlError, match="linearly independent"):
        ols_table(X.assign(RM2=2 * X.RM), y)


@pytest.mark.realdata
def test_boston_ols_table_matches_r_on_all_rows():
    """summary(lm(medv ~ ., data = MASS::Boston)) as R prints it (e.g. ISLR's lab, 3.6.3)."""
    from exoml.tasks.tabular.boston_inference import ols_table
    data.import_("boston", [shared("boston")])
    ds = data.load("boston")
    table, fit = ols_table(ds.frame[list(ds.feature_names)], ds.frame[ds.target])
    r = {"const": (36.46, 5.103, 7.144), "CRIM": (-0.1080, 0.03286, -3.287), "RM": (3.810, 0.4179, 9.116),
         "NOX": (-17.77, 3.820, -4.651), "DIS": (-1.476, 0.1995, -7.398), "LSTAT": (-0.5248, 0.05072, -10.347),
         "AGE": (6.922e-4, 0.01321, 0.052)}
    for name, (coef, se, t) in r.items():
        assert table.coef[name] == pytest.approx(coef, rel=2e-3)
        assert table.std_err[name] == pytest.approx(se, rel=2e-3)
        assert table.t[name] == pytest.approx(t, rel=2e-3, abs=1e-3)
    assert table.p_value["CRIM"] == pytest.approx(0.001087, rel=1e-3)
    assert (fit["df_resid"], round(fit["residual_se"], 3), round(fit["r2"], 4)) == (492, 4.745, 0.7406)


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
    # the fixture's rows, plus r2l rows in training (protocol B's validation r2l recall) and a test
    # attack with the features of a normal training row (row 0)
    train = [kdd_row(i, ("normal", "smurf", "neptune", "back", "ipsweep", "rootkit", "guess_passwd")[i % 7])
             for i in range(240)]
    test = [kdd_row(i, ("normal", "smurf", "mailbomb", "snmpgetattack")[i % 4], "ftp" if i % 2 else "private")
            for i in range(120)] + [kdd_row(0, "snmpgetattack")]
    data.import_("kddcup", write_kddcup(tmp_path / "raw", lines={"train": train, "test": test}), subset=True)
    out = tmp_path / "runs"
    assert main(["run", "kddcup", "--quick", *FAST, "--out", str(out)]) == 0
    path, m = _complete(out, "kddcup")
    assert m["A_seeds"] == 2
    for key in ("A_autoencoder_f1_mean", "A_isolation_forest_f1_mean", "A_ocsvm_f1_mean", "B_autoencoder_f1",
                "B_autoencoder_roc_auc", "B_ocsvm_recall_dos", "B_isolation_forest_pr_auc",
                # protocol A's sanity baselines, scored like the detectors; protocol B's nearest-neighbour detector
                *(f"A_{b}_{k}_{s}" for b in ("untrained_autoencoder", "isolation_forest_default")
                  for k in ("f1", "roc_auc", "pr_auc") for s in ("mean", "std")),
                "B_knn_f1", "B_knn_recall_r2l", "B_knn_false_alarm_rate", "B_r2l_same_as_normal_share"):
        assert 0 <= m[key] <= 1, key
    assert m["A_untrained_autoencoder_scaler"] == m["A_isolation_forest_default_scaler"] == m["A_autoencoder_scaler"]
    assert m["B_r2l_same_as_normal_share"] == pytest.approx(1 / 31)  # the twin of normal row 0
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
    assert all(f"| {b} |" in report for b in ("untrained_autoencoder", "isolation_forest_default", "knn"))
    assert "val_r2l_recall" in report and "same features as a normal row" in report
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
    assert main(["run", "kddcup", "--quick", "--knn-k", "0", "--out", str(out)]) == 2
    _one_line_error(capsys, "--knn-k", "at least 1")


def test_kdd_twins_of_normal_rows_and_knn_distance():
    """A test row with a normal row's exact features is found; the kNN detector measures against
    distinct training rows."""
    from exoml.tasks.tabular.kddcup import ONE_HOT, _row_keys, encode
    from exoml.tasks.tabular.kddcup_detectors import KNNDistance
    from fixtures.kddcup import FEATURES
    df = pd.DataFrame([kdd_row(i, "x").rstrip(".\n").split(",")[:41] for i in (0, 1, 0, 2)], columns=FEATURES)
    num, sym = encode(df, [c for c in FEATURES if c not in ONE_HOT])
    keys = _row_keys(num, sym)
    assert keys[0] == keys[2] and len(set(keys)) == 3
    x = np.array([[0.0, 0], [0, 0], [0, 0], [1, 0], [0, 1]], dtype=np.float32)
    knn = KNNDistance(k=2, reference=10, seed=0).fit(x)
    assert len(knn.nn_._fit_X) == 3  # the copies of (0, 0) count once
    assert -knn.score_samples(np.array([[0.0, 0]])) == pytest.approx([0.5])  # mean of distances 0 and 1
    assert len(KNNDistance(k=2, reference=2, seed=0).fit(x).nn_._fit_X) == 2


def test_kddcup_predict_needs_protocol_b(tmp_path, capsys):
    data.import_("kddcup", write_kddcup(tmp_path / "raw", n_train=120, n_test=60), subset=True)
    out = tmp_path / "runs"
    assert main(["run", "kddcup", "--quick", *FAST, "--protocols", "A", "--seeds", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["predict", "kddcup", "--out", str(out), "--row", kdd_row(1, "normal").strip()]) == 2
    _one_line_error(capsys, "protocol B")
