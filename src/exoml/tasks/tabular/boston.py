"""Boston Housing: the median home value MEDV ($1000s) of 506 census tracts from 13 features, by
linear regression.

Data: Harrison & Rubinfeld (1978), 506 rows. Split: the standard train_test_split(test_size=0.2,
random_state=42) of all 13 features (404 train / 102 test). Every choice is made on the training
part (cross-validation); the test part is used once, for the figures below.
Models:
  1. ordinary least squares (closed form), which reproduces the published test R² 0.6688, with
     its coefficient table (standard errors, t, p, 95% intervals) on the training part, plus
     repeated shuffled k-fold CV of the same model over all 506 rows;
  2. the same linear model trained by gradient descent in PyTorch (compile/fit, MSE loss),
     which must land on the closed-form solution;
  3. a model still linear in its parameters: log1p of the skewed features, polynomial terms
     (interactions), optionally a log target, ridge penalty; these choices by k-fold CV on the
     training part only; and the same repeated k-fold CV as OLS, nested: every outer fold makes
     all of these choices again on its own training rows.
Measured results: BENCHMARKS.md (OLS reproduces the published test R² 0.6688).

Ethics: column B = 1000(Bk - 0.63)^2, Bk the proportion of Black residents, encodes the authors'
assumption of racial self-segregation; scikit-learn removed `load_boston` (1.2) for this reason.
This task keeps it only to reproduce the textbook figures, and its report says so.

    exoml run boston
    exoml predict boston --row '{"CRIM": 0.1, "ZN": 0, ..., "LSTAT": 5}'     (or --csv FILE)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.model_selection import RepeatedKFold, cross_validate, train_test_split
from sklearn.preprocessing import StandardScaler

from ... import data
from ...toolkit import loop, plots, schedules, train
from ...toolkit.config import Common
from .pages import boston_page
from ..contract import Headline, Profile, Reference, Task
from ...errors import ExomlError
from . import boston_report
from . import common as tabular
from .boston_engineered import EngineeredRidge, engineered_predict
from .boston_inference import ols_table

NAME = "boston"
MIN_ROWS = 50  # a test split and 5-fold cross-validation on the rest need this many


@dataclass
class Config(Common):
    test_size: float = 0.2            # fraction of the 506 rows held out (the standard 80/20 split)
    split_seed: int = 42              # random_state of the split: 42 gives the published R² 0.6688
    cv_folds: int = 5                 # k of every k-fold CV (model choice, and the repeated CV of OLS)
    cv_repeats: int = 10              # shuffles of the repeated k-fold CV (OLS, and the nested CV of the engineered model)
    degrees: list[int] = field(default_factory=lambda: [1, 2, 3],
                               metadata={"help": "polynomial degrees tried for the engineered model"})
    skew: float = 0.75                # skewness (training part) above which a non-negative feature gets log1p
    n_alphas: int = 41                # ridge penalties tried by RidgeCV, log-spaced over 1e-3..1e3
    loss: str = "mse"                 # gradient-descent model: loss on the standardised target
    optimizer: str = "sgd"            # the gradient-descent model's parameters: adam | adamw | sgd | rmsprop (sgd: Nesterov momentum 0.9)
    lr: float = 0.1                   # peak learning rate (one-cycle: 10% warm-up, linear decay to 0)
    weight_decay: float = 0.0         # 0: plain least squares, to match the closed form
    batch_size: int = 512             # rows per step (>= 404: full-batch gradient descent)
    epochs: int = 300                 # full passes = optimizer steps when full-batch
    threads: int = 0                  # CPU threads for numpy/scikit-learn/torch (0: library defaults)


PROFILES = {
    "full": Profile({}, "the full study (repeated CV, degrees 1-3, 41 ridge penalties, 300 epochs)"),
    "cpu": Profile({}, "the full study: about a minute on a CPU"),
    "quick": Profile(dict(cv_repeats=2, degrees=[1, 2], n_alphas=13, epochs=100),
                     "seconds: a smoke test of the pipeline"),
}


class LinearModel(nn.Module):
    """y = w·(x - mean)/std + b in standardised target units; the train statistics are buffers,
    saved with the weights, so the model takes raw features."""

    def __init__(self, n: int):
        super().__init__()
        self.fc = nn.Linear(n, 1)
        for name, size in (("x_mean", n), ("x_std", n), ("y_mean", 1), ("y_std", 1)):
            self.register_buffer(name, torch.zeros(size))

    def forward(self, x):
        return self.fc((x - self.x_mean) / self.x_std).squeeze(-1)

    def medv(self, x):
        return self(x) * self.y_std + self.y_mean


def scores(y, p) -> dict:
    return {"r2": r2_score(y, p), "rmse": root_mean_squared_error(y, p), "mae": mean_absolute_error(y, p)}


CV_SCORING = {"r2": "r2", "rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error"}


def engineered_model(cfg: Config) -> EngineeredRidge:
    return EngineeredRidge(degrees=tuple(cfg.degrees[:1] if cfg.dry_run else cfg.degrees), skew=cfg.skew,
                           alphas=np.logspace(-3, 3, cfg.n_alphas), folds=cfg.cv_folds, seed=cfg.seed)


def repeated_cv(estimator, X: pd.DataFrame, y: np.ndarray, cv) -> tuple[dict, list]:
    """({r2, rmse, mae: one value per outer fold}, the fitted estimator of each fold). cross_validate
    gives each fold's estimator a clone fitted on that fold's training rows only; an estimator
    that makes its choices in fit (EngineeredRidge) is thus cross-validated nested."""
    res = cross_validate(estimator, X, y, cv=cv, scoring=CV_SCORING, return_estimator=True)
    return {k: np.abs(res[f"test_{k}"]) for k in CV_SCORING}, res["estimator"]


def run(cfg: Config, run) -> tuple[dict, str]:
    with tabular.threads(cfg.threads):
        return _run(cfg, run)


def _run(cfg: Config, run) -> tuple[dict, str]:
    train.seed_everything(cfg.seed)
    device = train.pick_device(cfg.device)
    ds = data.load(NAME)
    feats, frame = list(ds.feature_names), ds.frame
    if len(frame) < MIN_ROWS:  # an imported --subset too small for a test split and 5-fold CV
        raise ExomlError(f"boston needs at least {MIN_ROWS} rows; the imported data has {len(frame)}")
    X, y = frame[feats], frame[ds.target].to_numpy()

    # explore: distributions, correlations, and the target's censoring at 50.0
    run.save_figure(boston_report.features(frame, feats + [ds.target]), "features.png")
    run.save_figure(boston_report.correlation(frame.corr()), "correlation.png")
    n_cens = int((y >= 50.0).sum())
    run.save_figure(boston_report.target(y, n_cens), "medv.png")

    # the standard split; every statistic below comes from the training part
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=cfg.test_size, random_state=cfg.split_seed)

    # 1. OLS, closed form, on the raw features (what the published 0.6688 is)
    ols = LinearRegression().fit(X_tr, y_tr)
    p_ols = ols.predict(X_te)
    scaler = StandardScaler().fit(X_tr)
    coef_std = LinearRegression().fit(scaler.transform(X_tr), y_tr).coef_  # MEDV per standard deviation
    table, ols_fit = ols_table(X_tr, y_tr)
    # the same folds for both models, so their per-fold scores pair up
    repeated = RepeatedKFold(n_splits=cfg.cv_folds, n_repeats=1 if cfg.dry_run else cfg.cv_repeats,
                             random_state=cfg.seed)
    cv, _ = repeated_cv(LinearRegression(), X, y, repeated)

    # 2. the same model by gradient descent: full-batch MSE on standardised x and y
    model = LinearModel(len(feats))
    for name, v in (("x_mean", scaler.mean_), ("x_std", scaler.scale_),
                    ("y_mean", [y_tr.mean()]), ("y_std", [y_tr.std()])):
        getattr(model, name).copy_(torch.as_tensor(np.asarray(v), dtype=torch.float32))
    model = model.to(device)
    loss_fn, opt, _ = train.compile(model, cfg.loss, cfg.optimizer, cfg.lr, weight_decay=cfg.weight_decay)
    tx = torch.as_tensor(X_tr.to_numpy(copy=True), dtype=torch.float32, device=device)
    ty = torch.as_tensor((y_tr - y_tr.mean()) / y_tr.std(), dtype=torch.float32, device=device)
    epochs = 1 if cfg.dry_run else cfg.epochs
    steps = schedules.steps(len(tx), cfg.batch_size, epochs, drop_last=False)
    sched = schedules.lambda_lr(opt, schedules.one_cycle(steps, warmup=0.1, shift=1))
    history = loop.fit(model, tx, ty, loss_fn, [opt], [sched], epochs=epochs, batch_size=cfg.batch_size, metrics=(),
                       generator=torch.Generator().manual_seed(cfg.seed), drop_last=False, log=run.log_epoch,
                       run=run, desc=NAME)
    with torch.no_grad():
        p_gd = model.medv(torch.as_tensor(X_te.to_numpy(copy=True), dtype=torch.float32, device=device)).cpu().numpy()
    coef_gd = model.fc.weight.detach().cpu().numpy()[0] * y_tr.std()  # back to MEDV per standard deviation
    run.save_weights(train.state_dict_for_save(model), meta={"task": NAME, "features": ",".join(feats)})
    run.save_figure(plots.history_curves(history, title="gradient-descent linear model (standardised MSE)"),
                    "history.png")

    # 3. engineered, still linear in the parameters; choices by k-fold CV on the training part
    est = engineered_model(cfg).fit(X_tr, y_tr)
    best, trials, log_cols = est.best_, est.trials_, est.log_columns_
    eng = est.export(feats, NAME)
    p_eng = engineered_predict(eng, X_te)
    if not np.allclose(p_eng, est.predict(X_te), rtol=1e-6, atol=1e-6):
        raise ExomlError("internal error: the exported engineered model does not reproduce scikit-learn's predictions")
    # the same repeated k-fold CV as OLS, every choice above made again inside each outer fold
    cv_eng, fold_models = repeated_cv(engineered_model(cfg), X, y, repeated)
    fold_choices = [{"fold": i, "rows_fit": m.n_fit_rows_, "degree": m.best_["degree"],
                     "log_features": m.best_["log_features"], "log_target": m.best_["log_target"],
                     "alpha": m.alpha_, "log_columns": m.log_columns_, "r2": float(cv_eng["r2"][i])}
                    for i, m in enumerate(fold_models)]
    tabular.save_model(run, "models.json", {"task": NAME, "features": feats, "target": ds.target, "engineered": eng,
                                      "ols": {"coef": ols.coef_, "intercept": float(ols.intercept_),
                                              "mean": scaler.mean_, "scale": scaler.scale_, "coef_std": coef_std,
                                              "table": table.reset_index(names="term").to_dict("records"),
                                              "fit": ols_fit}})
    run.save_arrays("predictions.npz", test_index=X_te.index.to_numpy(), y_test=y_te, ols=p_ols, gradient_descent=p_gd,
                    engineered=p_eng)

    # verification plots
    for kind in ("pred_vs_actual", "residuals"):
        run.save_figure(boston_report.verification(kind, y_te, {"OLS": p_ols, "engineered ridge": p_eng}), f"{kind}.png")
    run.save_figure(boston_report.residual_distribution(y_te, {"OLS": p_ols, "engineered ridge": p_eng}),
                    "residuals_qq.png")
    run.save_figure(boston_report.cv_folds(cv["r2"], cv_eng["r2"]), "cv_r2.png")
    run.save_figure(boston_report.coefficients(feats, coef_std, coef_gd), "coefficients.png")

    # metrics and report
    s_ols, s_gd, s_eng = scores(y_te, p_ols), scores(y_te, p_gd), scores(y_te, p_eng)
    metrics = {"ols_test_r2": s_ols["r2"], "engineered_test_r2": s_eng["r2"], "gd_test_r2": s_gd["r2"],
               "ols_test_rmse": s_ols["rmse"], "ols_test_mae": s_ols["mae"],
               "engineered_test_rmse": s_eng["rmse"], "engineered_test_mae": s_eng["mae"],
               "gd_test_rmse": s_gd["rmse"], "gd_vs_ols_max_abs_diff": float(np.abs(p_gd - p_ols).max()),
               "gd_vs_ols_max_coef_diff": float(np.abs(coef_gd - coef_std).max()),
               **{f"ols_cv_{k}_{s}": float(getattr(v, s)()) for k, v in cv.items() for s in ("mean", "std")},
               **{f"engineered_cv_{k}_{s}": float(getattr(v, s)()) for k, v in cv_eng.items() for s in ("mean", "std")},
               "cv_folds_total": len(cv["r2"]),
               "ols_train_r2_adj": ols_fit["r2_adj"], "ols_residual_se": ols_fit["residual_se"],
               "ols_f_statistic": ols_fit["f_statistic"],
               "ols_coefficients": table.reset_index(names="term").to_dict("records"),
               "engineered_degree": best["degree"], "engineered_log_features": best["log_features"],
               "engineered_log_target": best["log_target"], "engineered_alpha": eng["alpha"],
               "n_train": len(y_tr), "n_test": len(y_te), "n_censored_at_50": n_cens}
    scores_te = {"OLS (closed form)": s_ols, "OLS by gradient descent": s_gd, "engineered ridge": s_eng}
    return metrics, boston_report.write_up(cfg, metrics, scores_te, cv, trials, log_cols, len(y), epochs,
                                           cv_eng=cv_eng, fold_choices=fold_choices, table=table, ols_fit=ols_fit)


def add_predict_args(parser) -> None:
    tabular.add_row_args(parser, '\'{"CRIM": 0.1, "ZN": 0, ..., "LSTAT": 5.0}\'')


def load_models(run_dir) -> dict:
    return tabular.load_model(run_dir, "models.json", NAME)


def price(m: dict, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(engineered ridge price, OLS price, each feature's contribution to the first row's OLS price
    in $1000s: its standardised value times the standardised coefficient) of rows X."""
    bad = [c for c in m["engineered"]["log_columns"] if (X[c] < 0).any()]
    if bad:
        raise ExomlError(f"column(s) {', '.join(bad)} must not be negative")
    ols = m["ols"]
    p_ols = X.to_numpy() @ np.array(ols["coef"]) + ols["intercept"]
    contrib = (X.iloc[0].to_numpy() - np.array(ols["mean"])) / np.array(ols["scale"]) * np.array(ols["coef_std"])
    return engineered_predict(m["engineered"], X), p_ols, contrib


def predict(args) -> int:
    from ...toolkit.runs import Run
    from ...toolkit.weights import open_run
    run_dir, _ = open_run(NAME, args.run, args.out)
    m = load_models(run_dir)
    X, stem = tabular.rows_from_args(args.row, args.csv, m["features"], ignore=(m["target"],))
    p_eng, p_ols, contrib = price(m, X)
    for i, (a, b) in enumerate(zip(p_eng, p_ols), 1):
        note = "  (the data is censored at 50: the true value may be higher)" if a >= 50 else ""
        print(f"row {i}: predicted MEDV {a:.2f} ($1000s; engineered ridge), {b:.2f} (OLS){note}")
    fig = boston_report.prediction(m["features"], contrib, p_eng, p_ols)
    path = Run(run_dir).save_figure(fig, tabular.prediction_figure_path(run_dir, stem))
    print(f"plot: {path}")
    return 0


TASK = Task(
    name=NAME, exercise="Boston Housing price regression", dataset="boston",
    model="linear regression: OLS, ridge on engineered features (log, polynomial), and the same linear model by gradient descent",
    headline=Headline("engineered_test_r2", "test R² (engineered ridge)"),
    reference=Reference("OLS test R² 0.6688 (80/20 split, random_state=42)", 0.6688,
                        "the common scikit-learn tutorial split"),
    config=Config, profiles=PROFILES, run=run, predict=predict, add_predict_args=add_predict_args,
    page=boston_page(),
    tune_note="its choices are made by cross-validation inside the run; no per-epoch validation metric")
