"""`toolkit export --explain`: outputs that explain and bound each prediction.

Added to the graph after `prediction` (names: toolkit.runtime.explain), in the model's
dtype, from the checkpoint's "inference" statistics (toolkit.training.inference):

    contributions [batch, targets, features] = w * (x - m)      m: the training rows' mean
    stderr        [batch, targets] = sqrt(sigma2 * (1 + h(x)))  of a new observation
    lower, upper  [batch, targets] = prediction -/+ t * stderr  t: Student's t quantile

For each row, contributions summed over the features plus the prediction at the mean
(`baseline`, in the model card) is the prediction. The leverage is
h(x) = c + (x - center)' M (x - center), with M the inverse of the centred scatter matrix
(with an intercept) or of X'X (without). The graph computes sqrt(1 + h(x)) as the norm of
[(x - center) L, sqrt(1 + c)] with M = L L' (Cholesky): a sum of squares cannot cancel to
a negative variance, as the quadratic form can in float32 when features are correlated.
stderr, lower and upper exist only for least-squares fits (l2 == 0) whose residual
variance is defined (df_resid > 0); a ridge model gets contributions alone. The
interval's level is fixed at export (`--interval-level`, default 1 - alpha of the
inference), t = scipy.stats.t.ppf(1 - (1 - level) / 2, df_resid), and the card records
level, df and t.

Operators: Sub, Unsqueeze, Mul, Gemm, ReduceL2 (all on the runtime's allow-list).
`reference` computes the same formulas in float64 with numpy for the parity gate, with
each output's allowance `atol + rtol * scale`, scale the magnitude of the terms behind it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.errors import CheckpointError, ExportError, UsageError
from toolkit.runtime.explain import CONTRIBUTIONS, LOWER, STDERR, UPPER

if TYPE_CHECKING:
    import onnx

# Each output's parity scale, in words (written into the parity record).
SCALES = {
    CONTRIBUTIONS: "|w| (|x| + |m|)",
    STDERR: "sigma2 (1 + c + ||(|x| + |center|) |L|||^2) / (2 stderr): the variance's terms, "
    "through the square root",
    LOWER: "|x| |W|' + |b| + t * the scale of stderr",
    UPPER: "|x| |W|' + |b| + t * the scale of stderr",
}


@dataclass
class Interval:
    """What the standard error and the interval need, in float64."""

    level: float
    alpha: float
    df: int
    t_quantile: float
    sigma2: np.ndarray  # (targets,)
    constant: float  # 1/n with an intercept, 0 without
    center: np.ndarray  # (features,)
    factor: np.ndarray  # (features, features): M = factor @ factor.T


@dataclass
class ExplainPlan:
    """Everything the explain outputs are built from, in float64."""

    weight: np.ndarray  # (targets, features), the checkpoint's weights
    bias: np.ndarray  # (targets,), zeros without an intercept
    mean: np.ndarray  # (features,), the training rows' mean
    interval: Interval | None
    notes: list[str] = field(default_factory=list)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (CONTRIBUTIONS,) if self.interval is None else (CONTRIBUTIONS, STDERR, LOWER, UPPER)

    @property
    def baseline(self) -> np.ndarray:
        """The prediction at the training mean: w . m + b."""
        return self.weight @ self.mean + self.bias

    def card(self) -> dict[str, Any]:
        """The model card's `explain` entry."""
        interval = None
        if self.interval is not None:
            i = self.interval
            interval = {"level": i.level, "alpha": i.alpha, "df": i.df, "t_quantile": i.t_quantile}
        return {
            "outputs": list(self.outputs),
            "feature_mean": self.mean.tolist(),
            "baseline": self.baseline.tolist(),
            "interval": interval,
            "notes": self.notes,
        }

    def reference(self, rows: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The parity gate's float64 reference of each output (module function `reference`)."""
        return reference(self, rows)

    @property
    def scales(self) -> dict[str, str]:
        """Each output's parity scale, in words (the parity record's `scales`)."""
        return {name: SCALES[name] for name in self.outputs}

    def check_outputs(self, values: list[Any], elem: int) -> None:
        """ExportError unless `values` (the graph's outputs after the prediction, shapes
        inferred) are this plan's, in the model's type, [batch, targets(, features)]."""
        targets, features = self.weight.shape
        found = [(v.name, v.type.tensor_type) for v in values]
        for (name, tensor), wanted in zip(found, self.outputs, strict=False):
            dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
            width = [targets, features] if name == CONTRIBUTIONS else [targets]
            if name != wanted or tensor.elem_type != elem or dims[1:] != width:
                raise ExportError(
                    f"explain output {name!r} has type {tensor.elem_type} and shape {dims}; "
                    f"expected {wanted!r} of type {elem} and shape ['batch', *{width}]"
                )
        if len(found) != len(self.outputs):
            raise ExportError(
                f"expected explain outputs {list(self.outputs)}, got {[n for n, _ in found]}"
            )

    def describe(self) -> str:
        """For the status line: what was added."""
        text = f"explain outputs {', '.join(self.outputs)}"
        if self.interval is not None:
            i = self.interval
            text += f" ({i.level:.4g} prediction interval, t = {i.t_quantile:.6g} on {i.df} df)"
        return text


def plan(payload: dict[str, Any], level: float | None) -> ExplainPlan:
    """The plan for `payload` (a loaded checkpoint); `level` None: 1 - the inference's alpha."""
    if level is not None and not 0 < level < 1:
        raise UsageError(f"--interval-level {level!r} must be between 0 and 1, e.g. 0.95.")
    spec, state = payload["spec"], payload["state_dict"]
    weight = state["weight"].double().numpy()
    targets, features = weight.shape
    bias = state["bias"].double().numpy() if "bias" in state else np.zeros(targets)
    inference = payload.get("inference")
    if not isinstance(inference, dict):
        raise CheckpointError(
            "--explain needs the training rows' statistics that `toolkit train` stores under "
            "'inference' in the checkpoint, and this checkpoint has none (it was written by an "
            "older toolkit, or without them); retrain it with `toolkit train`, then export."
        )
    mean = _vector(inference, "feature_mean", features)
    result = ExplainPlan(weight, bias, mean, None)
    why_not = _no_interval(inference, targets)
    if why_not:
        if level is not None:
            raise UsageError(f"--interval-level {level!r} cannot be used: {why_not}.")
        result.notes.append(f"no stderr, lower or upper: {why_not}")
        return result
    result.interval = _interval(inference, level, spec, features)
    return result


def _no_interval(inference: dict[str, Any], targets: int) -> str:
    """Why the model gets no interval, or "" when it does."""
    l2 = inference.get("l2", 0.0)
    if isinstance(l2, int | float) and l2 > 0:
        return (
            f"the model is a ridge fit (l2 = {l2:g}), whose standard errors and intervals have "
            "no standard meaning; train without --l2 for them"
        )
    df = inference.get("df_resid")
    sigmas = [t.get("sigma2") if isinstance(t, dict) else None for t in _targets(inference)]
    if inference.get("leverage") is None or None in sigmas or not isinstance(df, int) or df <= 0:
        return (
            "the inference holds no residual variance or leverage (as many parameters as "
            "training rows?)"
        )
    if len(sigmas) != targets:
        _malformed("inference.targets", f"{targets} entries", f"{len(sigmas)}")
    return ""


def _interval(
    inference: dict[str, Any], level: float | None, spec: dict[str, Any], features: int
) -> Interval:
    from toolkit.training.inference import t_quantile  # scipy.stats.t.ppf

    alpha = _number(inference, "alpha")
    level = 1 - alpha if level is None else level
    df = int(inference["df_resid"])
    leverage = inference["leverage"]
    if not isinstance(leverage, dict):
        _malformed("inference.leverage", "a dictionary", type(leverage).__name__)
    inverse = np.array(leverage.get("inverse"), dtype=np.float64)
    if inverse.shape != (features, features) or not np.isfinite(inverse).all():
        _malformed("inference.leverage.inverse", f"a finite {features} x {features} matrix", "")
    sigma2 = np.array([t["sigma2"] for t in _targets(inference)], dtype=np.float64)
    return Interval(
        level=float(level),
        alpha=float(alpha),
        df=df,
        t_quantile=t_quantile(1 - level, df),  # scipy's t.ppf(1 - (1 - level) / 2, df)
        sigma2=sigma2,
        constant=_number(leverage, "constant"),
        center=_vector(leverage, "center", features),
        factor=_factor((inverse + inverse.T) / 2),
    )


def _factor(inverse: np.ndarray) -> np.ndarray:
    """L with L L' = `inverse`: Cholesky, or for a matrix that rounding left semi-definite,
    the symmetric square root with negative eigenvalues (rounding noise) set to zero."""
    try:
        return np.linalg.cholesky(inverse)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(inverse)
        return vectors * np.sqrt(np.clip(values, 0.0, None))


def _targets(inference: dict[str, Any]) -> list[Any]:
    targets = inference.get("targets")
    if not isinstance(targets, list):
        _malformed("inference.targets", "a list", type(targets).__name__)
    return targets  # type: ignore[return-value]


def _number(values: dict[str, Any], key: str) -> float:
    value = values.get(key)
    if not isinstance(value, int | float) or not math.isfinite(value):
        _malformed(key, "a finite number", repr(value))
    return float(value)  # type: ignore[arg-type]


def _vector(values: dict[str, Any], key: str, size: int) -> np.ndarray:
    try:
        vector = np.array(values.get(key), dtype=np.float64)
    except (TypeError, ValueError):
        vector = np.array([])
    if vector.shape != (size,) or not np.isfinite(vector).all():
        _malformed(key, f"{size} finite numbers", repr(values.get(key))[:60])
    return vector


def _malformed(key: str, expected: str, got: str) -> None:
    raise CheckpointError(
        f"the checkpoint's inference statistics are malformed: {key} should be {expected}"
        f"{', got ' + got if got else ''}. Retrain the model with toolkit train."
    )


def add_outputs(graph: onnx.GraphProto, plan: ExplainPlan, input_name: str, output: str) -> None:
    """Append the explain nodes, weights and outputs to `graph` (one Gemm to `output`,
    whose weights are the initializer "weight"), in the dtype of that weight."""
    from onnx import TensorProto, helper, numpy_helper

    weight = next(i for i in graph.initializer if i.name == "weight")
    elem = weight.data_type
    dtype = np.float64 if elem == TensorProto.DOUBLE else np.float32
    targets, features = plan.weight.shape

    def constant(name: str, value: Any, kind: Any = dtype) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=kind), name))
        return name

    def node(op: str, inputs: list[str], name: str) -> str:
        graph.node.append(helper.make_node(op, inputs, [name]))
        return name

    centered = node("Sub", [input_name, constant("explain_mean", plan.mean)], "explain_centered")
    axis = constant("explain_axis", [1], np.int64)
    wide = node("Unsqueeze", [centered, axis], "explain_centered_rows")
    node("Mul", [wide, "weight"], CONTRIBUTIONS)
    shapes = {CONTRIBUTIONS: ["batch", targets, features]}
    if plan.interval is not None:
        _add_interval(plan.interval, input_name, centered, plan.mean, output, node, constant)
        shapes.update({name: ["batch", targets] for name in (STDERR, LOWER, UPPER)})
    for name, shape in shapes.items():
        graph.output.append(helper.make_tensor_value_info(name, elem, shape))


def _add_interval(
    interval: Interval,
    input_name: str,
    centered: str,
    mean: np.ndarray,
    output: str,
    node: Any,
    constant: Any,
) -> None:
    """stderr = ||[(x - center) L, sqrt(1 + c)]|| sqrt(sigma2); lower, upper = output -/+
    t stderr."""
    if np.array_equal(interval.center, mean):  # with an intercept: reuse x - m
        shifted = centered
    elif not interval.center.any():  # without: the leverage of x itself
        shifted = input_name
    else:
        shifted = node(
            "Sub", [input_name, constant("explain_center", interval.center)], "explain_shifted"
        )
    # One Gemm gives each row z = [(x - center) L, sqrt(1 + c)] (the last entry from the
    # bias) and one ReduceL2 its norm, sqrt(1 + h(x)): every node costs onnxruntime about
    # half a microsecond on one row, and a product, a sum and a square root took three.
    # With one target, sqrt(sigma2) is folded into the Gemm's weights.
    features = len(mean)
    single = len(interval.sigma2) == 1
    scale = math.sqrt(float(interval.sigma2[0])) if single else 1.0
    factor = np.zeros((features, features + 1))
    factor[:, :features] = interval.factor * scale
    root = np.zeros(features + 1)
    root[features] = math.sqrt(1.0 + interval.constant) * scale
    z = node(
        "Gemm",
        [shifted, constant("explain_factor", factor), constant("explain_root", root)],
        "explain_z",
    )
    axes = constant("explain_axes", [1], np.int64)
    if single:
        stderr = node("ReduceL2", [z, axes], STDERR)
    else:
        norm = node("ReduceL2", [z, axes], "explain_norm")
        sigma = constant("explain_sigma", np.sqrt(interval.sigma2)[None, :])
        stderr = node("Mul", [norm, sigma], STDERR)
    # lower, upper = output -/+ t stderr: each one Gemm, stderr (-/+ t I) + output, where
    # a product and a sum took two nodes and a buffer between them.
    eye = np.eye(len(interval.sigma2))
    t = interval.t_quantile
    node("Gemm", [stderr, constant("explain_minus_t", -t * eye), output], LOWER)
    node("Gemm", [stderr, constant("explain_plus_t", t * eye), output], UPPER)


def reference(plan: ExplainPlan, rows: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each explain output for `rows` (in the model's dtype) in float64, with its scale: the
    magnitude of the terms behind it, which its rounding error is proportional to."""
    x = rows.astype(np.float64)
    size = np.abs(x)
    found = {
        CONTRIBUTIONS: (
            (x - plan.mean)[:, None, :] * plan.weight,
            (size + np.abs(plan.mean))[:, None, :] * np.abs(plan.weight),
        )
    }
    interval = plan.interval
    if interval is None:
        return found
    z = (x - interval.center) @ interval.factor
    z_size = (size + np.abs(interval.center)) @ np.abs(interval.factor)
    one = 1.0 + interval.constant
    stderr = np.sqrt(interval.sigma2 * (one + (z * z).sum(axis=1, keepdims=True)))
    variance_scale = interval.sigma2 * (one + (z_size * z_size).sum(axis=1, keepdims=True))
    # First-order through the square root; a zero stderr (sigma2 = 0, an exact fit) is
    # computed exactly (0 times anything), and its scale is 0, not 0 / 0.
    stderr_scale = np.zeros_like(stderr)
    np.divide(variance_scale, 2 * stderr, out=stderr_scale, where=stderr > 0)
    prediction = x @ plan.weight.T + plan.bias
    margin = interval.t_quantile * stderr
    interval_scale = size @ np.abs(plan.weight).T + np.abs(plan.bias)
    interval_scale = interval_scale + interval.t_quantile * stderr_scale
    found[STDERR] = (stderr, stderr_scale)
    found[LOWER] = (prediction - margin, interval_scale)
    found[UPPER] = (prediction + margin, interval_scale)
    return found
