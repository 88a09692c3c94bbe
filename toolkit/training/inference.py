"""Statistical inference of a least-squares fit, from the one pass's sufficient statistics.

What statsmodels' `OLS(y, X).fit()` reports, for data that never sits in memory: per
coefficient (intercept included) the estimate, standard error, t, p-value and confidence
interval; per target the residual standard error, R^2 and adjusted R^2, the F test, the
log-likelihood, AIC and BIC; for the design its condition number, the variance inflation
factors, and what a prediction's interval needs (`leverage`). From three inputs:

1. the training rows' moments (n, mean, centred scatter in power-of-two units), merged
   over chunks, shards and processes in rank order, so every process computes the same;
2. each target's residual sum of squares at the fitted weights, from the float64 metric
   pass over the training rows that training makes anyway: real residuals, so an
   iterative fit is judged at its own weights, and no pass over the data is added;
3. the design's (X'X)^-1, from the exact solve's triangular factor when it has one
   (`toolkit.training.design`, which keeps every quantity in units until the end).

The definitions are statsmodels' (`RegressionResults`), including its conventions
without an intercept: uncentred R^2 and an F test against y = 0.
"""

from __future__ import annotations

import importlib
import math
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.training.design import Design, design
from toolkit.training.exact import COND_SWITCH
from toolkit.training.plain_gram import one_blas_thread

if TYPE_CHECKING:
    from toolkit.training.config import TrainConfig
    from toolkit.training.exact import ExactFit
    from toolkit.training.metrics import MetricSums
    from toolkit.training.model import ModelSpec
    from toolkit.training.moments import Moments

INTERCEPT_TERM = "(intercept)"
# The distributions come from scipy.special: stdtr, stdtrit and fdtrc are exactly what
# scipy.stats.t.sf, t.ppf and f.sf call, and importing scipy.stats takes 0.9 s here
# against 0.2 s for scipy.special (toolkit train pays it on every run).


# What the solve (triangular solves) and the inference (t and F quantiles) import.
PREFETCHED = ("scipy.linalg", "scipy.special")


def prefetch() -> None:
    """Import scipy's linalg and special in a background thread, so that their 0.2-0.4 s
    each overlap the data pass instead of following it (on small data the imports are
    most of a fit)."""
    missing = [name for name in PREFETCHED if name not in sys.modules]
    if missing:
        threading.Thread(target=_import_all, args=(missing,), daemon=True).start()


def _import_all(names: list[str]) -> None:
    for name in names:
        importlib.import_module(name)


def t_quantile(alpha: float, df: int) -> float:
    """t_{1 - alpha/2, df}: a 1 - alpha interval's half-width in standard errors
    (scipy.stats.t.ppf(1 - alpha / 2, df))."""
    from scipy import special

    return float(special.stdtrit(df, 1.0 - alpha / 2.0))


def infer(
    moments: Moments,
    spec: ModelSpec,
    weight: np.ndarray,
    bias: np.ndarray,
    sums: MetricSums,
    *,
    alpha: float,
    l2: float = 0.0,
    solver: str = "exact",
    fit: ExactFit | None = None,
    gap: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The inference of the model `X @ weight.T + bias` (float64) on the training rows.

    `sums` are its residual sums over exactly the rows of `moments`; `fit` is the exact
    solve whose factor is reused (least squares only: a ridge factor holds the penalty).
    Plain data (the checkpoint's "inference"); None marks what is not defined.

    d x d linear algebra, with BLAS on one thread: each product takes a millisecond, and
    on a busy machine a thread pool's hand-offs made them take up to 0.3 s (measured).
    """
    with one_blas_thread():  # once: each threadpoolctl limit costs 1.4 ms here
        d, ridge = spec.n_features, l2 > 0
        reuse = fit if fit is not None and not ridge else None
        factor, scale = (reuse.factor, reuse.scale) if reuse is not None else (None, None)
        shared = design(moments, d, spec.intercept, factor, scale)
        unit = moments.unit[d:]
        totals = np.diagonal(moments.scatter[d:, d:]).copy()
        if not spec.intercept:  # uncentred total sum of squares, in units
            totals += moments.weight_sum * (moments.mean[d:] / unit) ** 2
        terms = ([INTERCEPT_TERM] if spec.intercept else []) + list(spec.feature_names)
        targets = []
        for j, name in enumerate(spec.target_names):
            estimates = ([float(bias[j])] if spec.intercept else []) + [float(w) for w in weight[j]]
            figures = Residuals(float(sums.sse[j]), float(totals[j]), float(unit[j]))
            targets.append(_target(shared, name, terms, estimates, figures, alpha, ridge))
            if moments.weights is not None:  # WLS's log-likelihood adds 0.5 log det W
                _add_log_weights(targets[-1], moments.log_weights, shared)
        return {
            "alpha": float(alpha),
            "n": int(shared.n),
            "df_model": d,
            "df_resid": int(shared.df_resid),
            "l2": float(l2),
            "solver": solver,
            "optimality_gap": gap,
            "condition_number": shared.condition_number,
            "feature_mean": shared.mean.tolist(),
            "leverage": _leverage(shared, ridge),
            "notes": _notes(spec, solver, ridge, shared, targets) + _weighted_note(moments),
            "targets": targets,
        }


def _add_log_weights(target: dict[str, Any], log_weights: float, shared: Design) -> None:
    """statsmodels' WLS llf: the OLS one of the weighted rows plus 0.5 sum(log w), which is
    -inf when a weight is 0 (those rows still count in n, as in statsmodels)."""
    k = shared.d + int(shared.intercept)
    loglik = target["loglik"] + 0.5 * log_weights
    target.update(
        loglik=loglik,
        aic=-2.0 * loglik + 2.0 * k,
        bic=-2.0 * loglik + math.log(shared.n) * k,
    )


def _weighted_note(moments: Moments) -> list[str]:
    if moments.weights is None:
        return []
    return [
        "weighted least squares (--weight): every figure is statsmodels' WLS one: R^2 and "
        "sums of squares weighted, n and degrees of freedom count every row (weight-0 rows "
        "included), the log-likelihood includes 0.5 sum(log w) (-inf if any weight is 0)."
    ]


def _leverage(shared: Design, ridge: bool) -> dict[str, Any] | None:
    """h(x) = constant + (x - center)' inverse (x - center): a new row's leverage."""
    if ridge or shared.r_inverse is None or shared.df_resid <= 0:
        return None
    intercept = shared.intercept
    return {
        "constant": 1.0 / shared.mass if intercept else 0.0,
        "center": shared.mean.tolist() if intercept else [0.0] * shared.d,
        "inverse": shared.raw_inverse().tolist(),
    }


@dataclass
class Residuals:
    """One target's sums, in its unit: residual and total sums of squares."""

    sse: float  # sum of squared residuals / unit^2
    total: float  # centred (uncentred without an intercept) sum of squares / unit^2
    unit: float


def _target(
    shared: Design,
    name: str,
    terms: list[str],
    estimates: list[float],
    sums: Residuals,
    alpha: float,
    ridge: bool,
) -> dict[str, Any]:
    """statsmodels' per-model figures for one target (one OLS fit on the same design)."""
    from scipy import special

    n, df, d = shared.n, shared.df_resid, shared.d
    k = d + int(shared.intercept)  # statsmodels' df_model + k_constant
    sse, total, u = sums.sse, sums.total, sums.unit
    sigma2_u = sse / df if df > 0 else None  # in units^2
    r2 = 1.0 - sse / total if total > 0 else None
    r2_adj = None
    if r2 is not None and df > 0:
        r2_adj = 1.0 - (n - int(shared.intercept)) / df * (1.0 - r2)
    f = f_pvalue = None
    if not ridge and sigma2_u is not None and total > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            f = float(np.float64(total - sse) / d / np.float64(sigma2_u))
        f_pvalue = float(special.fdtrc(d, df, f)) if not math.isnan(f) else None  # f.sf
    # statsmodels' profile log-likelihood, with log(ssr / n) taken in units.
    log_mse = math.log(sse / n) + 2.0 * math.log(u) if sse > 0 else -math.inf
    loglik = -n / 2.0 * (math.log(2.0 * math.pi) + log_mse + 1.0)
    with np.errstate(over="ignore"):
        ssr = float(np.float64(sse) * u * u)
        sigma2 = None if sigma2_u is None else float(np.float64(sigma2_u) * u * u)
    return {
        "name": name,
        "ssr": ssr,
        "sigma2": sigma2,
        "rse": None if sigma2 is None else math.sqrt(sigma2),
        "r2": r2,
        "r2_adj": r2_adj,
        "f": f,
        "f_pvalue": f_pvalue,
        "loglik": loglik,
        "aic": -2.0 * loglik + 2.0 * k,
        "bic": -2.0 * loglik + math.log(n) * k,
        "coefficients": _coefficients(shared, terms, estimates, sigma2_u, u, alpha, ridge),
    }


def _coefficients(
    shared: Design,
    terms: list[str],
    estimates: list[float],
    sigma2_u: float | None,
    u: float,
    alpha: float,
    ridge: bool,
) -> list[dict[str, Any]]:
    """Estimate, standard error, t, p, interval and VIF of each coefficient."""
    from scipy import special

    vif: list[float | None] = [None] * len(terms)
    if shared.vif is not None:
        vif[int(shared.intercept) :] = shared.vif.tolist()
    missing = {key: None for key in ("stderr", "t", "p", "lower", "upper")}
    rows = [
        {"term": term, "estimate": value, **missing, "vif": v}
        for term, value, v in zip(terms, estimates, vif, strict=True)
    ]
    if ridge or sigma2_u is None or shared.r_inverse is None:
        return rows
    # Standard errors in units first, then the units' ratio: neither side overflows.
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        slopes = np.sqrt(sigma2_u * shared.inverse_diagonal()) / shared.scale * (u / shared.unit)
        stderr = slopes.tolist()
        if shared.intercept:
            stderr.insert(0, math.sqrt(sigma2_u * shared.intercept_factor()) * u)
        se, value = np.array(stderr), np.array(estimates)
        t = value / se
        p = 2.0 * special.stdtr(shared.df_resid, -np.abs(t))  # 2 t.sf(|t|)
        half = t_quantile(alpha, shared.df_resid) * se
    for i, row in enumerate(rows):
        row.update(
            stderr=stderr[i],
            t=float(t[i]),
            p=None if math.isnan(p[i]) else float(p[i]),
            lower=float(value[i] - half[i]),
            upper=float(value[i] + half[i]),
        )
    return rows


def _notes(
    spec: ModelSpec,
    solver: str,
    ridge: bool,
    shared: Design,
    targets: list[dict[str, Any]],
) -> list[str]:
    """What a reader of the numbers must know: what is left out, and why."""
    notes = []
    if ridge:
        notes.append(
            "--l2 > 0 (ridge): standard errors, t, p-values, confidence intervals, the F test "
            "and leverage are left out: the penalised estimates are biased, and these have no "
            "standard meaning for them. R^2, AIC and BIC describe the penalised fit and count "
            "every coefficient as a parameter."
        )
    if solver != "exact":
        notes.append(
            f"--solver {solver}: evaluated at the saved weights (their own residuals), not at "
            "the exact least-squares solution; the optimality gap says how far apart they are."
        )
    if spec.dtype != "float64":
        notes.append(
            f"estimates and residuals are the float64 solution's; the {spec.dtype} model "
            f"holds the estimates rounded to {spec.dtype}."
        )
    if not spec.intercept:
        notes.append(
            "no intercept: R^2 and the F test are uncentred (against the model y = 0), as "
            "statsmodels and R's lm report them."
        )
    if shared.df_resid <= 0:
        notes.append(
            "as many rows as parameters: no residual degrees of freedom, so no standard "
            "errors, adjusted R^2 or F test."
        )
    elif shared.r_inverse is None:
        notes.append("the features are numerically collinear: no standard errors or VIFs.")
    elif solver != "exact" and not ridge and (condition := shared.gram_condition()) > COND_SWITCH:
        notes.append(
            f"the features' scaled Gram matrix has condition number {condition:.3g}: "
            f"standard errors from its Cholesky factor keep about "
            f"{max(0, 16 - round(math.log10(condition)))} digits (--solver exact keeps more)."
        )
    if all(target["ssr"] == 0.0 for target in targets) and shared.df_resid > 0 and not ridge:
        notes.append(
            "the fit is exact (every residual is zero): standard errors are 0 and t infinite."
        )
    return notes


def of_run(
    config: TrainConfig,
    spec: ModelSpec,
    moments: Moments,
    solved: tuple[np.ndarray, np.ndarray],
    sums: MetricSums,
    gap: dict[str, Any] | None,
    fit: ExactFit | None,
) -> dict[str, Any]:
    """A training run's inference: of its float64 solution, on its training rows."""
    return infer(
        moments,
        spec,
        *solved,
        sums,
        alpha=config.alpha,
        l2=config.l2,
        solver=config.solver,
        fit=fit,
        gap=gap,
    )
