"""Feature whitening and target scaling for the iterative solvers, and the way back.

The iterative solvers train on whitened features z = ((x - mean) / unit) T, where T is
the inverse transpose of the Cholesky factor of the features' covariance (in the
moments' power-of-two units) plus the ridge term, and on standardized targets. In those
coordinates the objective, ridge included, has the identity as its Hessian: correlated
features and scales from 1e-3 to 1e3 no longer slow gradient descent down, and one
learning rate suits every table. The scaling comes from the one pass's moments and is
folded back into the final weights, so the saved model takes raw features.

Features whose weight is not unique (constant, or collinear) get the same error as from
the exact solver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from toolkit.training import exact
from toolkit.training.model import ModelSpec


class Standardizer:
    """Whitening of the features and scaling of the targets, from the moments, and its inverse."""

    def __init__(
        self,
        moments: exact.Moments,
        spec: ModelSpec,
        l2: float = 0.0,
        feature_names: Sequence[str] = (),
    ) -> None:
        # Weighted rows: the covariance is the weighted one; each row's weight enters the
        # loss relative to the mean weight (`relative`), so losses keep their scale.
        d, n = spec.n_features, moments.weight_sum
        self.relative = moments.n / n if moments.weights is not None and n > 0 else None
        names = list(feature_names) or list(spec.feature_names)
        exact.check_unique(moments, d, names, spec.intercept, l2)
        mean = moments.mean
        unit = moments.unit
        scatter = moments.scatter
        if spec.intercept:
            self.x_mean, self.y_mean = mean[:d], mean[d:]
            second = scatter
        else:  # no centring: a centred model would need the intercept it does not have
            self.x_mean, self.y_mean = np.zeros(d), np.zeros(len(mean) - d)
            second = scatter + n * np.outer(mean / unit, mean / unit)
        covariance = second / n  # in units
        y_scale = np.sqrt(np.maximum(np.diagonal(covariance)[d:], 0.0)) * unit[d:]
        self.y_scale = np.where(y_scale > 0, y_scale, 1.0)
        self.x_unit = unit[:d]
        gram = covariance[:d, :d] + np.diag(l2 / n / self.x_unit**2)
        factor = _cholesky(gram, moments, names, spec.intercept, l2)
        self.transform = np.linalg.inv(factor).T  # z = x_units @ transform
        # Raw weights are y_scale * (transform @ c) / x_unit: the ridge penalises these.
        self.penalty_matrix = self.transform / self.x_unit[:, None]
        self._d = d

    def tensors(self, block: np.ndarray, dtype: Any, device: Any) -> tuple[Any, ...]:
        """A block of raw [features | targets] rows as whitened features and scaled targets;
        weighted rows ([features | targets | weight]) add their weights over the mean weight."""
        import torch

        d = self._d
        z = ((block[:, :d] - self.x_mean) / self.x_unit) @ self.transform
        targets = block[:, d:-1] if self.relative is not None else block[:, d:]
        y = (targets - self.y_mean) / self.y_scale
        parts = [z, y] + ([block[:, -1:] * self.relative] if self.relative is not None else [])
        return tuple(torch.as_tensor(part, dtype=dtype, device=device) for part in parts)

    def unscale(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        """Raw-unit weights and biases: w = sy * (T c) / unit, b = my + sy * b_z - w . mx."""
        coefficients = model.weight.detach().cpu().double().numpy()  # (t, d)
        weight = self.y_scale[:, None] * (coefficients @ self.penalty_matrix.T)
        if model.bias is None:
            return weight, np.zeros(weight.shape[0])
        b_std = model.bias.detach().cpu().double().numpy()
        return weight, self.y_mean + self.y_scale * b_std - weight @ self.x_mean


def _cholesky(
    gram: np.ndarray, moments: exact.Moments, names: list[str], intercept: bool, l2: float
) -> np.ndarray:
    """The lower Cholesky factor of the features' covariance; collinear features are an error."""
    # Factor the correlation form (unit diagonal), as the exact solver does, then undo it.
    scale = np.sqrt(np.diagonal(gram))
    try:
        factor = np.linalg.cholesky(gram / np.outer(scale, scale))
    except np.linalg.LinAlgError:
        factor = None
    # Exactly collinear columns leave a last pivot of rounding noise, of either sign
    # depending on the order the sums were added in: a pivot within that noise
    # (d sqrt(n) eps of the unit diagonal) is collinearity too.
    noise = len(names) * np.sqrt(max(moments.n, 1)) * np.finfo(np.float64).eps
    if factor is None or np.diagonal(factor).min() ** 2 <= noise:
        exact.raise_collinear(moments, len(names), names, intercept, l2)
        raise AssertionError("raise_collinear always raises")
    return factor * scale[:, None]
