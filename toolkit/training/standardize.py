"""Feature and target scaling for the iterative solvers, and its inverse.

The iterative solvers train on standardized features and targets, so that one learning
rate suits data of any scale, and fold the scaling back into the final weights, so that
the saved model takes raw features. The scaling comes from the one pass's moments.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.training import exact
from toolkit.training.model import ModelSpec


class Standardizer:
    """Feature and target scaling for the iterative solvers (from the moments), and its inverse."""

    def __init__(self, moments: exact.Moments, spec: ModelSpec) -> None:
        d = spec.n_features
        mean = moments.mean.cpu().numpy()
        unit = moments.unit.cpu().numpy()  # the scatter is in powers of two of the data's units
        variance = np.diagonal(moments.scatter.cpu().numpy()) / moments.n * unit**2
        if spec.intercept:
            self.x_mean, self.y_mean = mean[:d], mean[d:]
            scale = np.sqrt(np.maximum(variance, 0.0))
        else:  # no centring: a centred model would need the intercept it does not have
            self.x_mean, self.y_mean = np.zeros(d), np.zeros(len(mean) - d)
            scale = np.sqrt(np.maximum(variance, 0.0) + mean**2)
        scale = np.where(scale > 0, scale, 1.0)
        self.x_scale, self.y_scale = scale[:d], scale[d:]
        self._shift, self._scale = np.concatenate([self.x_mean, self.y_mean]), scale
        self._d = d

    def tensors(self, block: np.ndarray, dtype: Any, device: Any) -> tuple[Any, Any]:
        import torch

        scaled = torch.as_tensor((block - self._shift) / self._scale, dtype=dtype, device=device)
        return scaled[:, : self._d], scaled[:, self._d :]

    def unscale(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        """Fold the scaling into raw-unit weights: w = w_s * sy / sx, b = my + sy * b_s - w . mx."""
        w_std = model.weight.detach().cpu().double().numpy()
        weight = w_std * self.y_scale[:, None] / self.x_scale[None, :]
        if model.bias is None:
            return weight, np.zeros(weight.shape[0])
        b_std = model.bias.detach().cpu().double().numpy()
        return weight, self.y_mean + self.y_scale * b_std - weight @ self.x_mean
