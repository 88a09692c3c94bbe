"""The report's figures, drawn with matplotlib's Agg renderer into inline PNG data URIs.

No pyplot (no global figure state, no GUI backend): each plot is a `Figure`, saved to
bytes and closed. The residual plots are drawn from the pass's uniform row sample, so
their cost does not grow with the data.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 96
POINT_COLOR = "#1f77b4"
LINE_COLOR = "#d62728"
# Sampled points are drawn this transparent, so that dense regions show as darker.
ALPHA = 0.35


@dataclass(frozen=True)
class Plot:
    """One figure of the report: an id for anchors, a title, a caption and the image."""

    key: str
    title: str
    caption: str
    uri: str  # data:image/png;base64,...


def _figure(width: float, height: float, columns: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, list(axes)


def _uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# Slopes whose magnitudes differ by more than this share no axis in their own units: most
# would be dots. They are shown on the t scale (estimate / std err) instead.
SHARED_AXIS_RANGE = 20.0


def coefficients(rows: list[dict[str, Any]], level: float | None, target: str) -> str:
    """Each slope with its confidence interval, and zero (dashed): an interval that covers
    zero is not significant at that level. In the features' units when the slopes are of
    similar size; else divided by their standard errors (t +- the t quantile), where the
    intervals compare although the units differ. One axis either way, however many."""
    slopes = [row for row in rows if row["term"] != "(intercept)"]
    estimates = np.array([float(row["estimate"]) for row in slopes])
    has_ci = all(row.get("lower") is not None and row.get("stderr") for row in slopes)
    low = np.array([float(r["lower"]) for r in slopes]) if has_ci else estimates
    high = np.array([float(r["upper"]) for r in slopes]) if has_ci else estimates
    sizes = np.maximum(np.abs(low), np.abs(high))
    shared = sizes.min() > 0 and sizes.max() <= SHARED_AXIS_RANGE * sizes.min()
    scale = "in the features' units"
    if has_ci and not shared:
        stderr = np.array([float(row["stderr"]) for row in slopes])
        estimates, low, high = estimates / stderr, low / stderr, high / stderr
        scale = "divided by its standard error (t)"
    figure, (axes,) = _figure(6.4, 0.7 + (0.3 if len(slopes) <= 30 else 0.2) * len(slopes))
    y = np.arange(len(slopes))[::-1]
    if has_ci:
        axes.hlines(y, low, high, color=POINT_COLOR, lw=2.2)
    axes.plot(estimates, y, "o", color=POINT_COLOR, ms=4.5)
    axes.axvline(0.0, color="grey", lw=0.8, ls="--")
    axes.set_yticks(y, [row["term"] for row in slopes], fontsize=8 if len(slopes) > 30 else 10)
    axes.set_ylim(-0.7, len(slopes) - 0.3)
    what = f"estimate and {level:.0%} confidence interval" if has_ci and level else "estimate"
    axes.set_xlabel(f"{target}: {what}, {scale}")
    return _uri(figure)


def fitted_vs_actual(fitted: np.ndarray, actual: np.ndarray, target: str) -> str:
    """Predicted against actual values, with the diagonal a perfect model would sit on."""
    figure, (axes,) = _figure(4.8, 4.2)
    axes.scatter(actual, fitted, s=6, alpha=ALPHA, color=POINT_COLOR, linewidths=0)
    both = np.concatenate([fitted, actual])
    low, high = float(both.min()), float(both.max())
    axes.plot([low, high], [low, high], color=LINE_COLOR, lw=1)
    axes.set_xlabel(f"actual {target}")
    axes.set_ylabel(f"predicted {target}")
    return _uri(figure)


def residuals_vs_fitted(fitted: np.ndarray, residuals: np.ndarray, target: str) -> str:
    """Residuals against fitted values: a funnel is heteroskedasticity, a curve a missed term."""
    figure, (axes,) = _figure(4.8, 4.2)
    axes.scatter(fitted, residuals, s=6, alpha=ALPHA, color=POINT_COLOR, linewidths=0)
    axes.axhline(0.0, color=LINE_COLOR, lw=1)
    axes.set_xlabel(f"fitted {target}")
    axes.set_ylabel("residual")
    return _uri(figure)


def residual_distribution(residuals: np.ndarray, target: str) -> str:
    """A histogram with the normal density of the same mean and spread, and a normal Q-Q plot."""
    from scipy import stats

    figure, (hist, qq) = _figure(9.6, 3.8, columns=2)
    mean, sd = float(residuals.mean()), float(residuals.std())
    hist.hist(
        residuals,
        bins="auto" if len(residuals) < 5000 else 60,
        density=True,
        color=POINT_COLOR,
        alpha=0.7,
    )
    if sd > 0:
        grid = np.linspace(residuals.min(), residuals.max(), 200)
        hist.plot(grid, stats.norm.pdf(grid, mean, sd), color=LINE_COLOR, lw=1.2)
    hist.set_xlabel(f"residual ({target})")
    hist.set_ylabel("density")
    scaled = (residuals - mean) / sd if sd > 0 else residuals - mean
    (theoretical, ordered), _ = stats.probplot(scaled, dist="norm")
    qq.scatter(theoretical, ordered, s=6, alpha=ALPHA, color=POINT_COLOR, linewidths=0)
    qq.plot(theoretical, theoretical, color=LINE_COLOR, lw=1)
    qq.set_xlabel("normal quantile")
    qq.set_ylabel("standardized residual quantile")
    return _uri(figure)


def residuals_in_order(rows: np.ndarray, residuals: np.ndarray, target: str) -> str:
    """Residuals against their row number: runs of one sign are autocorrelation (see DW)."""
    figure, (axes,) = _figure(9.6, 2.8)
    axes.plot(rows, residuals, ".", ms=2.5, alpha=ALPHA, color=POINT_COLOR)
    axes.axhline(0.0, color=LINE_COLOR, lw=1)
    axes.set_xlabel("row (training rows, in file order)")
    axes.set_ylabel(f"residual ({target})")
    return _uri(figure)


def loss_curves(history: dict[str, list[float]], solver: str) -> str:
    """The training objective and validation MSE per epoch, on standardized targets."""
    figure, (axes,) = _figure(6.4, 3.6)
    labels = {"train": "training objective", "val": "validation MSE"}
    for key, values in history.items():
        if values:
            epochs = np.arange(len(values))  # 0: the initial weights
            axes.plot(epochs, values, label=labels.get(key, key), lw=1.4)
    every = [v for values in history.values() for v in values]
    if every and min(every) > 0 and max(every) > 4 * min(every):  # a log axis when it helps
        axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss (standardized targets)")
    axes.set_title(f"--solver {solver}", fontsize=10)
    axes.legend()
    return _uri(figure)
