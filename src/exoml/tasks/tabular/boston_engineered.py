"""Boston Housing's engineered model: a ridge regression still linear in its parameters (log1p of
the skewed features, polynomial terms, optionally a log target), as a scikit-learn estimator
whose every choice is made inside `fit`, from the rows `fit` is given and nothing else: which
columns get log1p (their skewness), the degree and the log target (k-fold CV), the ridge penalty
(RidgeCV). Cross-validating it (`cross_validate(EngineeredRidge(...), X, y)`) is therefore a nested
cross-validation: each outer fold's held-out rows never reach a choice.

`export` turns a fitted model into plain arrays (models.json) and `engineered_predict` predicts
from them without scikit-learn's fitted objects.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures, StandardScaler


def _log1p_columns(X, columns=()):
    X = X.copy()
    X[list(columns)] = np.log1p(X[list(columns)])
    return X


def skewed_columns(X: pd.DataFrame, threshold: float) -> list[str]:
    """Non-negative, non-binary columns whose skewness on these rows exceeds the threshold."""
    skew = X.skew()
    return [c for c in X.columns if skew[c] > threshold and X[c].min() >= 0 and X[c].nunique() > 2]


class EngineeredRidge(RegressorMixin, BaseEstimator):
    """log1p of the skewed columns (or none) -> polynomial terms of a degree -> standardise ->
    RidgeCV over `alphas`, optionally on log(y); the variant with the best mean R² over `folds`
    shuffled folds of the training rows wins and is refitted on all of them.

    Fitted attributes: log_columns_ (the skewed columns of the training rows), trials_ (one dict
    per variant: log_features, degree, log_target, cv_r2_mean, cv_r2_std), best_ (the winning
    trial), estimator_ (the refitted pipeline or TransformedTargetRegressor), n_fit_rows_."""

    def __init__(self, degrees=(1, 2, 3), skew=0.75, alphas=None, folds=5, seed=0):
        self.degrees = degrees
        self.skew = skew
        self.alphas = alphas
        self.folds = folds
        self.seed = seed

    def _variant(self, log_x: bool, degree: int, log_y: bool):
        alphas = np.logspace(-3, 3, 41) if self.alphas is None else self.alphas
        log1p = FunctionTransformer(_log1p_columns, kw_args={"columns": self.log_columns_ if log_x else []})
        pipe = make_pipeline(log1p, PolynomialFeatures(degree, include_bias=False), StandardScaler(),
                             RidgeCV(alphas=alphas))
        return (TransformedTargetRegressor(pipe, func=np.log, inverse_func=np.exp, check_inverse=False)
                if log_y else pipe)

    def fit(self, X: pd.DataFrame, y):
        y = np.asarray(y, dtype=np.float64)
        self.log_columns_ = skewed_columns(X, self.skew)
        folds = KFold(self.folds, shuffle=True, random_state=self.seed)
        self.trials_ = []
        for log_x in (False, True):
            for degree in self.degrees:
                for log_y in (False, True):
                    r2 = cross_val_score(self._variant(log_x, degree, log_y), X, y, cv=folds, scoring="r2")
                    self.trials_.append({"log_features": log_x, "degree": degree, "log_target": log_y,
                                         "cv_r2_mean": float(r2.mean()), "cv_r2_std": float(r2.std())})
        self.best_ = max(self.trials_, key=lambda t: t["cv_r2_mean"])
        self.estimator_ = self._variant(self.best_["log_features"], self.best_["degree"],
                                        self.best_["log_target"]).fit(X, y)
        self.n_fit_rows_ = len(y)
        return self

    def predict(self, X):
        return self.estimator_.predict(X)

    @property
    def alpha_(self) -> float:
        pipe = self.estimator_.regressor_ if self.best_["log_target"] else self.estimator_
        return float(pipe[-1].alpha_)

    def export(self, features: list[str], task: str) -> dict:
        """The fitted model as plain arrays, for models.json and engineered_predict."""
        pipe = self.estimator_.regressor_ if self.best_["log_target"] else self.estimator_
        return {"task": task, "features": features,
                "log_columns": self.log_columns_ if self.best_["log_features"] else [],
                "degree": self.best_["degree"], "log_target": self.best_["log_target"], "alpha": self.alpha_,
                "mean": pipe[2].mean_, "scale": pipe[2].scale_, "coef": pipe[-1].coef_,
                "intercept": float(pipe[-1].intercept_)}


def engineered_predict(m: dict, X: pd.DataFrame) -> np.ndarray:
    """The engineered ridge model from its exported arrays (models.json), without scikit-learn's
    fitted objects: log1p -> polynomial terms -> standardise -> linear -> exp if log target."""
    Z = _log1p_columns(X[m["features"]], m["log_columns"]).to_numpy()
    Z = PolynomialFeatures(m["degree"], include_bias=False).fit_transform(Z)  # no fitted state but the width
    y = (Z - np.array(m["mean"])) / np.array(m["scale"]) @ np.array(m["coef"]) + m["intercept"]
    return np.exp(y) if m["log_target"] else y
