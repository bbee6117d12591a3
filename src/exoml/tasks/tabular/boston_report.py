"""Boston Housing's figures and report text: the data (feature histograms, correlations, the
target censored at 50.0), the verification of the test predictions (predicted vs actual,
residuals), the OLS coefficients, `exoml predict`'s view of its rows (each a matplotlib Figure
for run.save_figure), and `write_up`, the report's sections, the ethics note on column B among them."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score

from ...toolkit import plots, report

plt = plots.plt
img, md_table = report.img, report.md_table


def features(frame: pd.DataFrame, columns: list[str]):
    """A histogram per column; B, the ethically problematic one, in red."""
    fig, axes = plt.subplots(4, 4, figsize=(13, 10))
    for ax, c in zip(axes.flat, columns):
        ax.hist(frame[c], bins=30, color="tab:red" if c == "B" else "tab:blue")
        ax.set_title(c + (" (ethically problematic)" if c == "B" else ""), fontsize=9)
    for ax in axes.flat[len(columns):]:
        ax.axis("off")
    fig.subplots_adjust(hspace=0.45, wspace=0.3)  # (tight_layout on 16 panels costs seconds)
    return fig


def correlation(corr: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(corr)), corr.columns, rotation=90)
    ax.set_yticks(range(len(corr)), corr.columns)
    for i in range(len(corr)):
        for j in range(len(corr)):
            ax.text(j, i, f"{corr.iloc[i, j]:.1f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, fraction=0.046)
    ax.set_title("Pearson correlation")
    return fig


def target(y: np.ndarray, n_cens: int):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(y, bins=45)
    ax.axvline(50, color="tab:red", ls="--", label=f"censored at 50.0 ({n_cens} tracts)")
    ax.set(xlabel="MEDV ($1000s)", ylabel="tracts", title="target distribution")
    ax.legend()
    return fig


def verification(kind: str, y_te: np.ndarray, preds: dict[str, np.ndarray]):
    """kind 'pred_vs_actual' or 'residuals': one panel per model, rows censored at 50 as red crosses."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, (label, p) in zip(axes, preds.items()):
        cens = y_te >= 50
        yy = y_te if kind == "pred_vs_actual" else y_te - p
        ax.scatter(p[~cens], yy[~cens], s=14, alpha=0.7)
        ax.scatter(p[cens], yy[cens], s=30, marker="x", color="tab:red", label="MEDV censored at 50")
        if kind == "pred_vs_actual":
            ax.axline((20, 20), slope=1, color="k", lw=1)
        else:
            ax.axhline(0, color="k", lw=1)
        ax.set(xlabel="predicted MEDV", ylabel="actual MEDV" if kind == "pred_vs_actual" else "actual - predicted",
               title=f"{label}: test R² {r2_score(y_te, p):.3f}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _bars(ax, names: list[str], values: np.ndarray) -> np.ndarray:
    """Horizontal bars sorted by size, negative ones red; returns the order used."""
    order = np.argsort(np.abs(values))
    ax.barh(np.array(names)[order], values[order], color=["tab:red" if v < 0 else "tab:blue" for v in values[order]])
    return order


def coefficients(feats: list[str], coef_std: np.ndarray, coef_gd: np.ndarray):
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    order = _bars(ax, feats, coef_std)
    ax.scatter(coef_gd[order], range(len(feats)), color="k", marker="|", s=120, label="gradient descent")
    ax.set(xlabel="MEDV ($1000s) per standard deviation of the feature", title="OLS standardised coefficients")
    ax.legend(fontsize=8)
    return fig


def prediction(feats: list[str], contrib: np.ndarray, p_eng: np.ndarray, p_ols: np.ndarray):
    """Row 1's OLS contributions per feature, and every row's two predictions."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.3, 1]})
    _bars(a1, feats, contrib)
    a1.set(xlabel="contribution to MEDV vs the training mean ($1000s)", title=f"row 1, OLS: {p_ols[0]:.1f}")
    idx = np.arange(len(p_eng))
    a2.bar(idx - 0.2, p_eng, 0.4, label="engineered ridge")
    a2.bar(idx + 0.2, p_ols, 0.4, label="OLS")
    a2.set(xlabel="row", ylabel="predicted MEDV ($1000s)", xticks=idx, xticklabels=idx + 1)
    a2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_up(cfg, metrics: dict, scores: dict[str, dict], cv: dict, trials: list[dict], log_cols: list[str],
             n_rows: int, epochs: int) -> str:
    """report.md: test scores per model, the repeated CV of OLS over all n_rows, gradient descent vs
    the closed form, the engineered model's CV trials, and the data's ethics and censoring notes."""
    table = [{"model": n, **s} for n, s in scores.items()]
    cvt = [{k: v for k, v in t.items() if k != "est"} for t in trials]
    intro = (f"Linear regression of MEDV on the 13 Boston Housing features; the standard 80/20 split "
             f"(`random_state={cfg.split_seed}`): {metrics['n_train']} training and {metrics['n_test']} test tracts.")
    sections = [
        ("Data and ethics", f"{img('features.png')}\n\n{img('correlation.png')}\n\n{img('medv.png')}\n\n"
         "**Column B is ethically problematic.** B = 1000(Bk - 0.63)², where Bk is the proportion of Black "
         "residents of the town. Harrison & Rubinfeld (1978) put this parabola into their hedonic price model on "
         "the assumption that racial self-segregation affects house prices; the column bakes that assumption into "
         "every model fitted on it, and its transformation is not even invertible to the proportion it encodes. "
         "scikit-learn deprecated `load_boston` in 1.0 and removed it in 1.2 for this reason. B is used here only to "
         "reproduce the textbook results; these models must not be used to value real homes.\n\n"
         f"**MEDV is censored at 50.0** ({metrics['n_censored_at_50']} tracts, $50,000 and above, are recorded as "
         "exactly 50): the true values are unknown, so every model underestimates the top of the market and the "
         "residual plot shows a line of points at 50 (red crosses)."),
        ("Test results", md_table(table) + f"\n\nRepeated shuffled {cfg.cv_folds}-fold CV of OLS over all "
         f"{n_rows} rows ({len(cv['r2'])} fits): R² {cv['r2'].mean():.4f} ± {cv['r2'].std():.4f}, RMSE "
         f"{cv['rmse'].mean():.3f} ± {cv['rmse'].std():.3f}, MAE {cv['mae'].mean():.3f} ± {cv['mae'].std():.3f} "
         "(mean ± std); an estimate over every row, test rows included, that chooses nothing."),
        ("Gradient descent = closed form", f"`compile(loss={cfg.loss!r}, optimizer={cfg.optimizer!r}, lr={cfg.lr})` "
         f"and `fit` for {epochs} epochs of batch {cfg.batch_size}: test predictions differ from the closed form "
         f"by at most {metrics['gd_vs_ols_max_abs_diff']:.2e} ($1000s), coefficients by at most "
         f"{metrics['gd_vs_ols_max_coef_diff']:.2e}.\n\n{img('history.png')}\n\n{img('coefficients.png')}"),
        ("Engineered model (choices by CV on the training part)", f"log1p applied to {', '.join(log_cols) or 'none'} "
         f"(right-skewed on the training part: skewness > {cfg.skew}); ridge penalty by RidgeCV over {cfg.n_alphas} "
         f"values. Chosen: degree {metrics['engineered_degree']}, log features {metrics['engineered_log_features']}, "
         f"log target {metrics['engineered_log_target']}, alpha {metrics['engineered_alpha']:.4g}.\n\n{md_table(cvt)}"),
        ("Verification", f"{img('pred_vs_actual.png')}\n\n{img('residuals.png')}"),
    ]
    return report.render("Boston Housing: linear regression", intro, cfg, metrics, sections)
