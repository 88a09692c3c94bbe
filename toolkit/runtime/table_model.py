"""Running a table model: its plan from the card, its signature checked, and `predict`.

A model is a table model when its card has the `table` key (card.TABLE): the plan is
read with `TablePlan.from_dict` (a malformed one is a ModelLoadError), and the graph must
take exactly one 1-D input per raw column, named as the column (tensor(string) for a
categorical one, the model's float type for a numeric one), and return the prediction
(batch, targets) then `unknown_levels` (int64, batch). Conversion and checks of what an
app passes are in table.py; this module runs the graph and acts on `unknown_levels`.
A table model exported with --explain has its explain outputs after `unknown_levels`
(`TableModel.explain`; `predict` runs the graph pruned to the first two outputs).
One row of known levels takes table_fast.py's path (the same answers, no text tensors);
`_general` is every other call's.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import card
from toolkit.columns import CATEGORICAL, TablePlan
from toolkit.errors import (
    InputError,
    ModelLoadError,
    ModelRunError,
    PredictorError,
    UnknownLevelWarning,
)
from toolkit.runtime import table_fast
from toolkit.runtime.explain import NO_EXPLAIN, Explainer, Explanation
from toolkit.runtime.session import FLOAT_TYPES, brief
from toolkit.runtime.table import TableInputs

STRING = "tensor(string)"
INT64 = "tensor(int64)"


def plan_of(path: Path, metadata: Mapping[str, str]) -> TablePlan | None:
    """The card's table plan; None for a model without one (a numeric model)."""
    if card.TABLE not in metadata:
        return None
    try:
        value = card.decode({card.TABLE: metadata[card.TABLE]})[card.TABLE]
        plan = TablePlan.from_dict(value)
    except ValueError as error:
        raise ModelLoadError(
            f"{str(path)!r} has a model card whose table plan is malformed ({error}); "
            "re-export the model."
        ) from error
    if plan.unknown_level is None:  # a card written before the policy was recorded
        plan = plan.with_unknown_level("error")
    return plan


def signature(path: Path, session: Any, plan: TablePlan) -> tuple[str, np.dtype, int]:
    """(prediction output name, dtype, n_targets) of a table model, or ModelLoadError."""
    inputs = {v.name: (v.type, list(v.shape)) for v in session.get_inputs()}
    outputs = [(v.name, v.type, list(v.shape)) for v in session.get_outputs()]

    def refuse(problem: str) -> ModelLoadError:
        return ModelLoadError(
            f"{str(path)!r} has a table plan in its model card but {problem}; a table model "
            "takes one 1-D input per raw column (text for a categorical one) and returns its "
            f"prediction and {card.UNKNOWN_LEVELS_OUTPUT!r}. Re-export the model."
        )

    if len(outputs) != 2 or outputs[1][0] != card.UNKNOWN_LEVELS_OUTPUT:
        raise refuse(f"outputs {', '.join(o[0] for o in outputs) or 'none'}")
    (name, kind, shape), (_, count_kind, count_shape) = outputs
    if kind not in FLOAT_TYPES or len(shape) != 2 or not isinstance(shape[1], int):
        raise refuse(f"output {name!r} of type {kind} and shape {shape}")
    if count_kind != INT64 or len(count_shape) != 1:
        raise refuse(f"output {card.UNKNOWN_LEVELS_OUTPUT!r} of {count_kind} {count_shape}")
    if set(inputs) != set(plan.raw_names):
        raise refuse(
            f"inputs {', '.join(sorted(inputs))} where the plan has columns "
            f"{', '.join(plan.raw_names)}"
        )
    for column in plan.columns:
        expected = STRING if column.kind == CATEGORICAL else kind
        got, got_shape = inputs[column.name]
        if got != expected or len(got_shape) != 1:
            raise refuse(f"input {column.name!r} of {got} {got_shape} (expected {expected})")
    return name, FLOAT_TYPES[kind], int(shape[1])


class TableModel:
    """The Predictor's work for a table model: feeds, the run, the unknown levels."""

    def __init__(self, predictor: Any, plan: TablePlan, run: Any) -> None:
        self.predictor, self.plan, self._run = predictor, plan, run
        self.inputs = TableInputs(plan, predictor.dtype)
        self._outputs = [predictor.output_name, card.UNKNOWN_LEVELS_OUTPUT]
        self.error_policy = plan.unknown_level != "reference"
        self._lock = threading.Lock()
        self.one_row = self._one_row_runner()  # None: every call takes the general path

    def _one_row_runner(self) -> table_fast.OneRow | None:
        """table_fast's runner for one row, when the graph has its form, the session runs
        on the CPU and probe rows get the same answers, bit for bit, both ways."""
        predictor = self.predictor
        if predictor.provider != "CPUExecutionProvider":
            return None
        try:
            runner = table_fast.load(
                predictor.path, predictor.session, self.inputs, self._outputs, predictor.n_targets
            )
            if runner is None:
                return None
            finite = not predictor.allow_non_finite
            for row in _probes(self.plan):
                fast = runner.predict(row, 1, finite)
                if fast is None or not np.array_equal(fast, self._general(row, 1)[0]):
                    return None
        except Exception:  # a file that changed since, any surprise: the general path
            return None
        return runner

    def counted(self, data: Any, first_row: int) -> tuple[np.ndarray, np.ndarray, Any]:
        """(predictions, unknown levels per row, the feeds: None from the one-row path); an
        unknown level is an InputError under the "error" policy."""
        if self.one_row is not None:
            result = self.one_row.predict(data, first_row, not self.predictor.allow_non_finite)
            if result is not None:
                return result, np.zeros(1, np.int64), None
        return self._general(data, first_row)

    def _general(self, data: Any, first_row: int) -> tuple[np.ndarray, np.ndarray, Any]:
        predictor = self.predictor
        feeds, rows = self.inputs.feeds(data, first_row, not predictor.allow_non_finite)
        if rows == 0:
            empty = np.empty((0, predictor.n_targets), dtype=predictor.dtype)
            return empty, np.zeros(0, dtype=np.int64), feeds
        try:
            result, unknown = self._run(self._outputs, feeds, None)
        except Exception as error:  # onnxruntime's Fail/InvalidArgument/... types
            raise ModelRunError(
                f"onnxruntime failed to run model {str(predictor.path)!r} on {rows} "
                f"row{'s' if rows > 1 else ''}: {brief(error)}. The file loads but cannot "
                f"compute; check it with `toolkit info {predictor.path}` or re-export it."
            ) from error
        if result.shape != (rows, predictor.n_targets) or unknown.shape != (rows,):
            raise ModelRunError(
                f"model {str(predictor.path)!r} returned arrays of shapes {result.shape} and "
                f"{unknown.shape} for {rows} input rows; a table model returns one row of "
                f"{predictor.n_targets} and one count per input row. Re-export it."
            )
        # One row: indexing is cheaper than count_nonzero's call.
        if (unknown[0] if rows == 1 else np.count_nonzero(unknown)) and self.error_policy:
            row = int(np.flatnonzero(unknown)[0])
            raise InputError(self.inputs.unknown_message(feeds, row, first_row))
        return result, unknown, feeds

    def explain(
        self, explainer: Explainer | None, data: Any, first_row: int
    ) -> tuple[Explanation, np.ndarray]:
        """`Predictor.explain` of a table model: the same raw inputs and unknown-level
        policy as `counted` (an unknown level is an InputError under "error"), every output
        of the whole graph; (the explanation, unknown levels per row)."""
        predictor = self.predictor
        if explainer is None:
            raise PredictorError(
                NO_EXPLAIN.format(path=str(predictor.path), output=predictor.output_name)
            )
        feeds, rows = self.inputs.feeds(data, first_row, not predictor.allow_non_finite)
        names = explainer.table_outputs
        shapes = [explainer.shapes[0], (), *explainer.shapes[1:]]
        if rows == 0:
            found = [np.empty((0, *shape), dtype=predictor.dtype) for shape in shapes]
            found[1] = np.zeros(0, dtype=np.int64)
        else:
            try:
                found = explainer.session.run(names, feeds)
            except Exception as error:  # onnxruntime's Fail/InvalidArgument/... types
                raise predictor._run_error(error, rows) from error
            for name, shape, result in zip(names, shapes, found, strict=True):
                if result.shape != (rows, *shape):
                    raise ModelRunError(
                        f"model {str(predictor.path)!r} returned {name!r} of shape "
                        f"{result.shape} for {rows} input rows; expected {(rows, *shape)}. "
                        "The model file is broken: re-export it."
                    )
        unknown = found.pop(1)
        if np.count_nonzero(unknown) and self.error_policy:
            row = int(np.flatnonzero(unknown)[0])
            raise InputError(self.inputs.unknown_message(feeds, row, first_row))
        return explainer.explanation(found), unknown

    def predict(
        self, data: Any, first_row: int, by_name: bool = False
    ) -> np.ndarray | dict[str, np.ndarray]:
        """Predictions (by target name with `by_name`); unknown levels under "reference"
        warn (UnknownLevelWarning)."""
        one_row, finite = self.one_row, not self.predictor.allow_non_finite
        result = None if one_row is None else one_row.predict(data, first_row, finite)
        if result is None:
            result, unknown, _ = self._general(data, first_row)
            if not self.error_policy and np.count_nonzero(unknown):
                self.warn(unknown)
        if by_name:
            return {name: result[:, t] for t, name in enumerate(self.predictor.target_names)}
        return result

    def warn(self, unknown: np.ndarray, stacklevel: int = 4) -> None:
        cells, rows = int(unknown.sum()), int(np.count_nonzero(unknown))
        with self._lock:
            self.predictor.unknown_levels_seen += cells
        warnings.warn(
            f"{cells} unknown level{'s' if cells > 1 else ''} in {rows} of {len(unknown)} "
            f"row{'s' if len(unknown) > 1 else ''} encoded as the reference level (the model "
            "was exported with --unknown-level reference); Predictor.unknown_levels_seen "
            "counts them",
            UnknownLevelWarning,
            stacklevel=stacklevel,
        )


def _probes(plan: TablePlan) -> list[list[Any]]:
    """Rows of known levels and plain numbers that the one-row path must answer as the
    general path does: each categorical column's first and last level."""
    return [
        [(c.levels[end] if c.kind == CATEGORICAL else number) for c in plan.columns]
        for end, number in ((0, 0.5), (-1, -2.25))
    ]


def describe_columns(plan: TablePlan) -> list[dict[str, Any]]:
    """Per raw column: name, kind, raw type, JSON type, levels, fill, whether it may be
    missing (null) at prediction time. For `toolkit info`, /metadata and the OpenAPI schema."""
    described = []
    for column in plan.columns:
        categorical = column.kind == CATEGORICAL
        described.append(
            {
                "name": column.name,
                "kind": column.kind,
                "raw_type": column.raw_type,
                "json_type": "string" if categorical else "number",
                "levels": len(column.levels) if categorical else None,
                "folded": len(column.other),  # levels sharing (other)
                "fill": column.fill,
                "indicator": column.indicator,
                "nullable": column.fill is not None,
            }
        )
    return described
