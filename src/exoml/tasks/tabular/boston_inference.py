"""The OLS fit as a statistician reads it: each coefficient with its standard error, t statistic,
two-sided p-value and confidence interval (the table statsmodels' `OLS(...).fit().summary()` and
R's `summary(lm(...))` print), plus R², adjusted R², the residual standard error and the F test.

Classical assumptions: independent errors of constant variance; the p-values and intervals use
the t distribution with n - p degrees of freedom (exact for normal errors). Computed from a QR
decomposition of the design matrix [1, X]: cov(beta) = s² (X'X)^-1 = s² R^-1 R^-T, with
s² = RSS / (n - p).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import linalg, stats

from ...errors import ExomlError

COLUMNS = ["coef", "std_err", "t", "p_value", "ci_low", "ci_high"]


def ols_table(X: pd.DataFrame, y, level: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """(table indexed by 'const' then X's columns, with COLUMNS; fit summary dict)."""
    y = np.asarray(y, dtype=np.float64)
    names = ["const", *map(str, X.columns)]
    A = np.column_stack([np.ones(len(X)), X.to_numpy(dtype=np.float64)])
    n, p = A.shape
    if n <= p or np.linalg.matrix_rank(A) < p:
        raise ExomlError(f"the OLS coefficient table needs {p} linearly independent columns and more than {p} rows; "
                         f"the training part has {n} rows of rank {np.linalg.matrix_rank(A)}")
    Q, R = np.linalg.qr(A)
    beta = linalg.solve_triangular(R, Q.T @ y)
    resid = y - A @ beta
    df = n - p
    s2 = resid @ resid / df
    R_inv = linalg.solve_triangular(R, np.eye(p))
    se = np.sqrt(s2 * (R_inv ** 2).sum(1))  # diag(R^-1 R^-T)
    t = beta / se
    q = stats.t.ppf(0.5 + level / 2, df)
    table = pd.DataFrame({"coef": beta, "std_err": se, "t": t, "p_value": 2 * stats.t.sf(np.abs(t), df),
                          "ci_low": beta - q * se, "ci_high": beta + q * se}, index=names)
    tss = ((y - y.mean()) ** 2).sum()
    rss = resid @ resid
    f = ((tss - rss) / (p - 1)) / s2
    summary = {"n": n, "df_resid": df, "level": level, "r2": 1 - rss / tss, "r2_adj": 1 - (rss / df) / (tss / (n - 1)),
               "residual_se": float(np.sqrt(s2)), "f_statistic": float(f), "f_p_value": float(stats.f.sf(f, p - 1, df))}
    return table, summary


def as_markdown(table: pd.DataFrame, level: float = 0.95) -> list[dict]:
    """Rows for report.md_table, in the notation of statsmodels' summary (P>|t| escaped: a bare |
    would split the markdown cell)."""
    lo, hi = f"[{(1 - level) / 2:g}", f"{(1 + level) / 2:g}]"
    return [{"": name, "coef": f"{r.coef:.4g}", "std err": f"{r.std_err:.3g}", "t": f"{r.t:.3f}",
             "P>\\|t\\|": f"{r.p_value:.3g}", lo: f"{r.ci_low:.4g}", hi: f"{r.ci_high:.4g}"}
            for name, r in table.iterrows()]
