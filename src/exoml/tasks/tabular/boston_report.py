"""Boston Housing's figures and report text: the data (feature histograms, correlations, the
target censored at 50.0), the verification of the test predictions (predicted vs actual,
residuals vs fitted, their distribution against a normal), the repeated CV per fold, the OLS
coefficients, `exoml predict`'s view of its rows (each a matplotlib Figure
for run.save_figure), and `write_up`, the report's sections, the ethics note on column B among them."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
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


def residual_distribution(y_te: np.ndarray, preds: dict[str, np.ndarray]):
    """Per model, the test residuals' normal QQ plot and histogram: the t-based standard errors
    and intervals of the OLS table assume roughly normal errors of constant variance."""
    fig, axes = plt.subplots(2, len(preds), figsize=(5 * len(preds), 7.5), squeeze=False)
    for (qq, hist), (label, p) in zip(axes.T, preds.items()):
        res = y_te - p
        (osm, osr), (slope, icpt, _) = stats.probplot(res, dist="norm")
        qq.scatter(osm, osr, s=14, alpha=0.7)
        qq.axline((0, icpt), slope=slope, color="k", lw=1)
        qq.set(xlabel="normal quantiles", ylabel="ordered residuals ($1000s)",
               title=f"{label}: normal QQ plot of test residuals")
        hist.hist(res, bins=25, density=True, alpha=0.7)
        grid = np.linspace(res.min(), res.max(), 200)
        hist.plot(grid, stats.norm.pdf(grid, res.mean(), res.std(ddof=1)), color="k", lw=1, label="normal fit")
        hist.set(xlabel="actual - predicted ($1000s)", ylabel="density",
                 title=f"skewness {stats.skew(res):.2f}, excess kurtosis {stats.kurtosis(res):.2f}")
        hist.legend(fontsize=8)
    fig.tight_layout()
    return fig


def cv_folds(r2_ols: np.ndarray, r2_eng: np.ndarray):
    """R² of each outer fold of the repeated k-fold CV, OLS against the engineered model (same folds)."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.boxplot([r2_ols, r2_eng], tick_labels=["OLS", "engineered ridge\n(nested)"])
    a1.set(ylabel="held-out R²", title=f"repeated k-fold CV ({len(r2_ols)} folds)")
    a2.scatter(r2_ols, r2_eng, s=14)
    lo, hi = min(r2_ols.min(), r2_eng.min()), max(r2_ols.max(), r2_eng.max())
    a2.plot([lo, hi], [lo, hi], color="k", lw=1)
    a2.set(xlabel="OLS R² of the fold", ylabel="engineered R² of the fold",
           title=f"engineered better on {(r2_eng > r2_ols).sum()} of {len(r2_ols)} folds")
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


def _cv_text(cv: dict) -> str:
    return (f"R² {cv['r2'].mean():.4f} ± {cv['r2'].std():.4f}, RMSE {cv['rmse'].mean():.3f} ± {cv['rmse'].std():.3f}, "
            f"MAE {cv['mae'].mean():.3f} ± {cv['mae'].std():.3f}")


def write_up(cfg, metrics: dict, scores: dict[str, dict], cv: dict, trials: list[dict], log_cols: list[str],
             n_rows: int, epochs: int, cv_eng: dict, fold_choices: list[dict], table: pd.DataFrame,
             ols_fit: dict) -> str:
    """report.md: test scores per model, the repeated CV of OLS and the nested CV of the engineered
    model over all n_rows, the OLS coefficient table, gradient descent vs the closed form, the
    engineered model's CV trials, and the data's ethics and censoring notes."""
    from .boston_inference import as_markdown
    table_md = [{"model": n, **s} for n, s in scores.items()]
    cvt = [{k: v for k, v in t.items() if k != "est"} for t in trials]
    folds = pd.DataFrame(fold_choices)
    chosen = (folds.groupby(["degree", "log_features", "log_target"]).size().rename("folds").reset_index()
              .sort_values("folds", ascending=False).to_dict("records"))
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
        ("Test results", md_table(table_md) + f"\n\nOne fixed split of {metrics['n_test']} test tracts is a noisy "
         "estimate; the repeated CV below uses every row."),
        ("Repeated k-fold cross-validation (OLS and the nested engineered model)",
         f"Repeated shuffled {cfg.cv_folds}-fold CV over all {n_rows} rows, the same {len(cv['r2'])} outer folds "
         f"for both models (mean ± std over the folds):\n\n"
         f"- OLS: {_cv_text(cv)}\n- engineered ridge, nested: {_cv_text(cv_eng)}\n\n"
         "Nested: in every outer fold the engineered model makes all its choices again on that fold's training "
         "rows only (the skewed columns that get log1p, degree and log target by an inner "
         f"{cfg.cv_folds}-fold CV, the ridge penalty by RidgeCV), then predicts the fold's held-out rows once. "
         "The held-out rows never reach a choice, so the mean is an honest estimate of the whole procedure, "
         "not of one tuned model. OLS chooses nothing. The variants the outer folds chose:\n\n"
         f"{md_table(chosen)}\n\n{img('cv_r2.png')}"),
        ("OLS coefficients (training part)",
         f"Ordinary least squares on the {ols_fit['n']} training tracts, in MEDV ($1000s) per unit of each "
         f"feature; standard errors from s²(X'X)⁻¹, t tests and {ols_fit['level']:.0%} intervals on "
         f"{ols_fit['df_resid']} degrees of freedom (the table of statsmodels' `OLS.fit().summary()`). R² "
         f"{ols_fit['r2']:.4f} (adjusted {ols_fit['r2_adj']:.4f}), residual standard error {ols_fit['residual_se']:.3f}, "
         f"F {ols_fit['f_statistic']:.1f} (p {ols_fit['f_p_value']:.3g}).\n\n{md_table(as_markdown(table, ols_fit['level']))}"
         "\n\nRead with care: the p-values assume independent, normal errors of constant variance; the target is "
         "censored at 50 (see the residual plots below) and neighbouring tracts are not independent. "
         "Correlated features (TAX and RAD, NOX and DIS) share their effect, which widens their intervals. A "
         "coefficient is an association given the other twelve features, not a causal effect."),
        ("Gradient descent = closed form", f"`compile(loss={cfg.loss!r}, optimizer={cfg.optimizer!r}, lr={cfg.lr})` "
         f"and `fit` for {epochs} epochs of batch {cfg.batch_size}: test predictions differ from the closed form "
         f"by at most {metrics['gd_vs_ols_max_abs_diff']:.2e} ($1000s), coefficients by at most "
         f"{metrics['gd_vs_ols_max_coef_diff']:.2e}.\n\n{img('history.png')}\n\n{img('coefficients.png')}"),
        ("Engineered model (choices by CV on the training part)", f"log1p applied to {', '.join(log_cols) or 'none'} "
         f"(right-skewed on the training part: skewness > {cfg.skew}); ridge penalty by RidgeCV over {cfg.n_alphas} "
         f"values. Chosen: degree {metrics['engineered_degree']}, log features {metrics['engineered_log_features']}, "
         f"log target {metrics['engineered_log_target']}, alpha {metrics['engineered_alpha']:.4g}.\n\n{md_table(cvt)}"),
        ("Verification (test split)", f"{img('pred_vs_actual.png')}\n\nResiduals against fitted values "
         f"(a funnel or a curve means the linear model misses structure):\n\n{img('residuals.png')}\n\n"
         f"Their distribution against a normal:\n\n{img('residuals_qq.png')}"),
    ]
    return report.render("Boston Housing: linear regression", intro, cfg, metrics, sections)
