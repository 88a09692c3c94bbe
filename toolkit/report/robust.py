"""The residual diagnostics, from the sums of one pass (`residuals.ResidualPass`).

    Durbin-Watson     sum (e_i - e_{i-1})^2 / sum e_i^2 over the rows in file order: about 2
                      without autocorrelation, towards 0 (positive) or 4 (negative) with it
    Jarque-Bera       n/6 * (S^2 + (K - 3)^2 / 4), chi-squared with 2 degrees of freedom
                      under normal errors; S the skewness, K the kurtosis (3 when normal)
    HC0, HC1, HC3     heteroskedasticity-robust standard errors: the sandwich
                      (X'X)^-1 [sum w_i e_i^2 x_i x_i'] (X'X)^-1 with w_i = 1 (HC0),
                      HC0 * n / df_resid (HC1), w_i = 1 / (1 - h_i)^2 (HC3)

These are the definitions of statsmodels (`durbin_watson`, `jarque_bera`,
`OLS.fit(cov_type="HC0" | "HC1" | "HC3")`), which the tests hold them to (rtol 1e-8).
The sandwich is formed in the centred coordinates z = [1, x - mean] of the contract's
"leverage", where (Z'Z)^-1 is block-diagonal (1/n and the centred inverse), then mapped
back to the coefficients of the raw features: offsets of 1e6 cost no digits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from toolkit.report.residuals import ResidualPass

# Rows whose features' mean is this close (relative to their spread) to the fit's
# feature_mean, with the same count, are taken to be the rows the model was fit on.
SAME_ROWS_RTOL = 1e-8


def durbin_watson(sums: ResidualPass) -> list[float | None]:
    """Per target; None where every residual is 0."""
    return [
        float(steps / ssr) if ssr > 0 else None
        for steps, ssr in zip(sums.squared_steps, sums.ssr, strict=True)
    ]


def jarque_bera(sums: ResidualPass) -> list[dict[str, float | None]]:
    """Per target: statistic, p-value, skewness and (Pearson's, not excess) kurtosis."""
    from scipy import stats

    moments, n = sums.moments, sums.moments.n
    out = []
    for m2, m3, m4 in zip(moments.m2, moments.m3, moments.m4, strict=True):
        if n < 2 or m2 <= 0:
            out.append({"statistic": None, "pvalue": None, "skew": None, "kurtosis": None})
            continue
        skew = math.sqrt(n) * m3 / m2**1.5
        kurtosis = n * m4 / (m2 * m2)
        statistic = n / 6.0 * (skew**2 + (kurtosis - 3.0) ** 2 / 4.0)
        out.append(
            {
                "statistic": float(statistic),
                "pvalue": float(stats.chi2.sf(statistic, 2)),
                "skew": float(skew),
                "kurtosis": float(kurtosis),
            }
        )
    return out


def same_rows(sums: ResidualPass, n_fit: int, feature_mean: list[float] | None) -> bool:
    """Whether the pass saw the rows the model was fit on: their count and features' mean."""
    if sums.n != n_fit or n_fit == 0:
        return False
    if feature_mean is None:
        return True
    offset = sums.shifted_sum / sums.n  # mean(x) - center
    fit_offset = np.asarray(feature_mean, np.float64) - sums.center
    spread = np.sqrt(np.maximum(sums.shifted_squares / sums.n - offset**2, 0.0))
    scale = np.abs(np.asarray(feature_mean, np.float64)) + spread
    return bool(np.all(np.abs(offset - fit_offset) <= SAME_ROWS_RTOL * np.maximum(scale, 1e-300)))


def robust_errors(sums: ResidualPass, df_resid: int) -> list[dict[str, list[float]]]:
    """Per target: {"HC0": [...], "HC1": [...], "HC3": [...]}, one per coefficient,
    "(intercept)" first when there is one (the order of the inference table)."""
    assert sums.inverse is not None
    d = len(sums.center)
    bread = sums.inverse
    back = np.eye(d)  # from centred to raw coefficients
    if sums.intercept:
        bread = np.zeros((d + 1, d + 1))
        bread[0, 0] = sums.constant  # 1/n
        bread[1:, 1:] = sums.inverse
        back = np.eye(d + 1)
        back[0, 1:] = -sums.center  # intercept = a - center . slopes
    out = []
    for meat0, meat3 in zip(sums.meat0, sums.meat3, strict=True):
        hc0 = _stderr(back, bread, meat0)
        hc3 = _stderr(back, bread, meat3)
        scale = math.sqrt(sums.n / df_resid) if df_resid > 0 else math.nan
        out.append({"HC0": hc0, "HC1": [v * scale for v in hc0], "HC3": hc3})
    return out


def _stderr(back: np.ndarray, bread: np.ndarray, meat: np.ndarray) -> list[float]:
    covariance = back @ bread @ meat @ bread @ back.T
    return [float(v) for v in np.sqrt(np.maximum(np.diagonal(covariance), 0.0))]


def summary(sums: ResidualPass, fit: dict[str, Any] | None, n_fit: int) -> dict[str, Any]:
    """Everything the pass found, as plain data: per-target statistics, rows, notes."""
    notes: list[str] = []
    matched = same_rows(sums, n_fit, fit.get("feature_mean") if fit else None)
    robust = None
    if sums.inverse is None:
        if fit is not None:  # without any table make_report says so
            notes.append(_no_leverage_reason(fit))
    elif not matched:
        notes.append(
            f"no robust standard errors: they need the rows the model was fit on, and these "
            f"{sums.n:,} rows are not them (the model was fit on {n_fit:,} rows"
            f"{' with other feature means' if sums.n == n_fit else ''}). Pass the training "
            "data as --data."
        )
    else:  # a leverage comes with the inference table
        assert fit is not None
        robust = robust_errors(sums, int(fit["df_resid"]))
    per_target = []
    for j, (dw, jb) in enumerate(zip(durbin_watson(sums), jarque_bera(sums), strict=True)):
        sd = math.sqrt(sums.moments.m2[j] / sums.n) if sums.n else None
        per_target.append(
            {
                "durbin_watson": dw,
                "jarque_bera": jb,
                "residual_mean": float(sums.moments.mean[j]) if sums.n else None,
                "residual_std": sd,
                "ssr": float(sums.ssr[j]),
                "robust_stderr": None if robust is None else robust[j],
            }
        )
    return {"rows": sums.n, "training_rows": matched, "targets": per_target, "notes": notes}


def _no_leverage_reason(fit: dict[str, Any]) -> str:
    if fit.get("l2"):
        return (
            f"no robust standard errors: a ridge fit (--l2 {fit['l2']:g}) has no standard "
            "sandwich estimator."
        )
    return "no robust standard errors: the checkpoint's inference table has no leverage."
