"""Models that explain and bound each prediction (`toolkit export --explain`), at run time.

An explain model's graph has, after `prediction`, the outputs

    contributions  [batch, targets, features]  w * (x - mean of the training rows)
    stderr         [batch, targets]            sqrt(sigma2 * (1 + h(x))), h the leverage
    lower, upper   [batch, targets]            prediction -/+ t * stderr

(the last three only for least-squares models with inference). For each row,
`contributions.sum(features) + baseline == prediction` up to rounding, where `baseline`
(the prediction at the training mean) is in the model card's `explain` entry.

The Predictor runs `predict` on a copy of the graph pruned to `prediction` (onnxruntime
runs every node of a graph, whatever outputs are asked for, so the explain outputs,
n x features x features multiply-adds for the leverage, would otherwise slow every
prediction down) and `explain` on the whole graph. Pruning edits the protobuf that
onnxfile parsed; the fields it does not declare survive as unknown fields.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import card
from toolkit.errors import ModelLoadError, ModelRunError, PredictorError
from toolkit.runtime import onnxfile
from toolkit.runtime.binding import compiled_session, row_binding
from toolkit.runtime.inputs import all_finite

CONTRIBUTIONS = "contributions"
STDERR = "stderr"
LOWER = "lower"
UPPER = "upper"
OUTPUTS = (CONTRIBUTIONS, STDERR, LOWER, UPPER)
# What an explain model may carry after `prediction`: contributions, alone or with the rest.
LAYOUTS = ((CONTRIBUTIONS,), OUTPUTS)
_SHAPE = attrgetter("shape")
NO_EXPLAIN = (
    "model {path!r} has no explain outputs (only {output!r}); export it with "
    "`toolkit export --explain` to get contributions, and for a least-squares model with "
    "inference, standard errors and prediction intervals"
)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~2 us a call
class Explanation:
    """What `Predictor.explain` returns, one entry per input row.

    prediction (n, targets); contributions (n, targets, features): w * (x - training
    mean), so that contributions.sum(axis=2) + baseline == prediction up to rounding;
    baseline (targets,): the prediction at the training mean (None when the model card
    lacks it); stderr, lower, upper (n, targets): the standard error of a new observation
    and the prediction interval at `level`, or None for models without inference.
    """

    prediction: np.ndarray
    contributions: np.ndarray
    baseline: np.ndarray | None
    stderr: np.ndarray | None
    lower: np.ndarray | None
    upper: np.ndarray | None
    level: float | None
    feature_names: list[str]
    target_names: list[str]

    def columns(self) -> dict[str, np.ndarray]:
        """Flat named columns, per target: `y`, `y_lower`, `y_upper`, `y_stderr` (when
        present), then one `y:feature` contribution per feature."""
        bounds = self.stderr is not None
        return {
            name: self.contributions[:, t, j] if j >= 0 else getattr(self, part)[:, t]
            for name, part, t, j in _layout(self.target_names, self.feature_names, bounds)
        }


def column_names(predictor: Any) -> list[str]:
    """The names of `Explanation.columns` for a Predictor's explanations."""
    bounds = STDERR in predictor.explain_outputs
    layout = _layout(predictor.target_names, predictor.feature_names, bounds)
    return [name for name, *_ in layout]


def _layout(
    targets: Sequence[str], features: Sequence[str], bounds: bool
) -> Iterator[tuple[str, str, int, int]]:
    """(column name, Explanation field, target index, feature index or -1), in order."""
    for t, target in enumerate(targets):
        yield target, "prediction", t, -1
        if bounds:
            for part in (LOWER, UPPER, STDERR):
                yield f"{target}_{part}", part, t, -1
        for j, feature in enumerate(features):
            yield f"{target}:{feature}", CONTRIBUTIONS, t, j


def extra_outputs(info: onnxfile.ModelFile) -> tuple[str, ...]:
    """The explain outputs after the first (a table model's: after `unknown_levels`), or ()
    for a plain model; a model with other extra outputs is left to the signature check."""
    first = 2 if list(info.outputs[1:2]) == [card.UNKNOWN_LEVELS_OUTPUT] else 1
    extra = tuple(info.outputs[first:])
    return extra if extra in LAYOUTS else ()


def prediction_only(data: bytes, keep: int = 1) -> bytes:
    """The model with its first `keep` outputs only (a table model's prediction and
    `unknown_levels`), and only the nodes and weights behind them."""
    model = onnxfile.parse_proto(data)
    graph = model.graph
    producers = {onnxfile.text(o): node for node in graph.node for o in node.output}
    needed: set[str] = set()
    stack = [onnxfile.text(output.name) for output in graph.output[:keep]]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        node = producers.get(name)
        if node is not None:
            stack.extend(onnxfile.text(value) for value in node.input if value)
    kept_nodes = [n for n in graph.node if any(onnxfile.text(o) in needed for o in n.output)]
    kept_weights = [t for t in graph.initializer if onnxfile.text(t.name) in needed]
    del graph.output[keep:]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept_weights)
    return model.SerializeToString()


class Explainer:
    """The whole graph's session and what `Predictor.explain` needs to read its outputs."""

    def __init__(self, session: Any, names: tuple[str, ...], predictor: Any) -> None:
        self.session, self.names, self.path = session, names, predictor.path
        self.outputs = [predictor.output_name, *names]
        # A table model's whole graph also answers unknown_levels (table_model.explain).
        self.table_outputs = [predictor.output_name, card.UNKNOWN_LEVELS_OUTPUT, *names]
        self.input_name, self.dtype = predictor.input_name, predictor.dtype
        targets, features = predictor.n_targets, predictor.n_features
        self.width = features
        self.shapes = [(targets,), (targets, features)] + [(targets,)] * (len(names) - 1)
        self.one_row = [(1, *shape) for shape in self.shapes]
        self.one_row_shapes = _shapes_check(self.one_row)
        _check_signature(predictor.path, session, self.outputs, self.shapes)
        entry = card.decode(predictor.metadata).get(card.EXPLAIN)
        entry = entry if isinstance(entry, dict) else {}
        self.baseline = _floats(entry.get("baseline"), targets)
        interval = entry.get("interval")
        level = interval.get("level") if isinstance(interval, dict) else None
        self.level = float(level) if isinstance(level, int | float) else None
        self.feature_names, self.target_names = predictor.feature_names, predictor.target_names
        self._local = threading.local()

    def explanation(self, results: list[np.ndarray]) -> Explanation:
        """The Explanation of a run's outputs, in `self.outputs` order (after a table
        model's `unknown_levels`, which is not among them)."""
        bounded = len(results) > 2  # stderr, lower and upper after the contributions
        return Explanation(
            results[0],
            results[1],
            self.baseline,
            results[2] if bounded else None,
            results[3] if bounded else None,
            results[4] if bounded else None,
            self.level if bounded else None,
            self.feature_names,
            self.target_names,
        )

    def run(self, rows: np.ndarray, run_error: Any) -> list[np.ndarray]:
        """Every output for `rows` (guarded and converted), in `self.outputs` order;
        `run_error(error, rows)` words onnxruntime's failures."""
        n = len(rows)
        if n == 1:  # the common call (see _new_binding), in line: a call costs ~0.3 us here
            try:
                feed, run, copy = self._local.binding
            except AttributeError:
                feed, run, copy = self._local.binding = self._new_binding()
            try:
                feed(rows)
                run()
            except Exception as error:  # onnxruntime's Fail/InvalidArgument/... types
                raise run_error(error, 1) from error
            results = copy()
            if self.one_row_shapes(results):
                return results
        elif n == 0:
            return [np.empty((0, *shape), dtype=self.dtype) for shape in self.shapes]
        else:
            try:
                results = self.session.run(self.outputs, {self.input_name: rows})
            except Exception as error:  # onnxruntime's Fail/InvalidArgument/... types
                raise run_error(error, n) from error
        for name, shape, result in zip(self.outputs, self.shapes, results, strict=True):
            if result.shape != (n, *shape):
                raise ModelRunError(
                    f"model {str(self.path)!r} returned {name!r} of shape {result.shape} for "
                    f"{n} input rows; expected {(n, *shape)}. The model file is broken: "
                    "re-export it."
                )
        return results

    def _new_binding(self) -> tuple[Any, Any, Any]:
        """(feed a row, run, copy the outputs) for this thread's single-row IOBinding.

        As Predictor's, one IOBinding per thread, its input row bound once
        (toolkit.runtime.binding), but onnxruntime allocates the outputs and
        copy_outputs_to_cpu hands them over in one call: measured 4 us cheaper than five
        long-lived buffers, each copied out with ndarray.copy(), and 2.6-4.7 us cheaper
        than one buffer bound as all five outputs and copied once.
        """
        compiled = compiled_session(self.session)
        feed, run, binding, bound = row_binding(
            self.session, compiled, self.input_name, self.dtype, self.width
        )
        for name in self.outputs:
            binding.bind_output(name, "cpu")
        return feed, run, bound.copy_outputs_to_cpu


def explain_rows(
    predictor: Any, explainer: Explainer | None, data: Any, first_row: int
) -> Explanation:
    """`Predictor.explain`: the same guard as `predict`, then every output of the graph."""
    if explainer is None:
        raise PredictorError(
            NO_EXPLAIN.format(path=str(predictor.path), output=predictor.output_name)
        )
    # predict()'s guard, and its finiteness rule: when NaN or infinity in any input cell
    # makes the prediction's row non-finite (the Predictor knows), the input is scanned
    # only to word the error.
    original, rows = predictor._guard(data, first_row)
    deferred = predictor._finite_via_output and not predictor.allow_non_finite
    if not deferred:
        predictor.prepare(original, first_row)  # raises for a bad cell
    results = explainer.run(rows, predictor._run_error)
    if deferred and not all_finite(results[0]):
        predictor.prepare(original, first_row)
    return explainer.explanation(results)


def _shapes_check(expected: list[tuple[int, ...]]) -> Callable[[list[np.ndarray]], bool]:
    """Whether a one-row run's outputs have the `expected` shapes. For the five outputs of
    a model with inference the comparisons are chained (0.6 us against 1.3-1.5 us for one
    list of shapes compared, measured on fresh outputs)."""
    if len(expected) != 5:
        return lambda results: list(map(_SHAPE, results)) == expected
    s0, s1, s2, s3, s4 = expected

    def five(r: list[np.ndarray]) -> bool:
        return (
            len(r) == 5
            and r[0].shape == s0
            and r[1].shape == s1
            and r[2].shape == s2
            and r[3].shape == s3
            and r[4].shape == s4
        )

    return five


def _check_signature(
    path: Path, session: Any, outputs: Sequence[str], shapes: Sequence[tuple[int, ...]]
) -> None:
    """Each explain output: the model's float type and [batch, targets(, features)]."""
    found = {v.name: (v.type, list(v.shape)) for v in session.get_outputs()}
    kind = found.get(outputs[0], ("none", []))[
        0
    ]  # the prediction's: a table model's first input may be text
    for name, width in zip(outputs[1:], shapes[1:], strict=True):
        got_kind, shape = found.get(name, ("none", []))
        if got_kind != kind or len(shape) != 1 + len(width) or tuple(shape[1:]) != width:
            raise ModelLoadError(
                f"{str(path)!r} has explain output {name!r} of type {got_kind} and shape "
                f"{shape}; expected {kind} of shape ['batch', {', '.join(map(str, width))}]. "
                "Re-export it with `toolkit export --explain`."
            )


def _floats(value: Any, count: int) -> np.ndarray | None:
    ok = (
        isinstance(value, list)
        and len(value) == count
        and all(isinstance(v, int | float) for v in value)
    )
    return np.array(value, dtype=np.float64) if ok else None
