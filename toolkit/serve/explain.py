"""POST /explain: each prediction's contributions and, for models with inference, its
standard error and prediction interval (a model exported with `toolkit export --explain`).

The body, its limits and its errors are /predict's (body.py: 413, 408, 400, 422), and so
are the request limit and the fast path (app._Front, app.json_handler). A model without
explain outputs answers 404 (type "no_explain") before the body is read, and closes the
connection, as for an unknown route.
The answer, by target name (and feature name for the contributions):

    {"predictions": {"y": [...]}, "contributions": {"y": {"x1": [...], ...}},
     "baseline": {"y": b}, "stderr": {"y": [...]}, "lower": {...}, "upper": {...},
     "level": 0.95, "rows": n}

A table model takes /predict's table bodies (rows, columns or records of raw values) and
its answer adds `unknown_levels`, as /predict's does.
`stderr`, `lower`, `upper` and `level` are null for models without inference (ridge fits),
`baseline` (the prediction at the training mean) when the model card lacks it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response

from toolkit.errors import RequestError
from toolkit.runtime import Predictor
from toolkit.runtime.explain import NO_EXPLAIN, Explanation
from toolkit.serve import schema
from toolkit.serve.settings import ServeSettings


def explain_handler(settings: ServeSettings, state: dict[str, Any], handler: Any) -> Any:
    """The /explain work on the fast path: `handler` is app.json_handler, given
    Predictor.explain and `answer`; a model without explain outputs is a 404 first."""
    table = (_explain_counted, _table_answer)  # a table model's raw body (serve/tables.py)
    handle = handler(settings, state, Predictor.explain, _answer, table)

    async def guarded(scope: dict[str, Any], receive: Any) -> bytes:
        predictor: Predictor = state["predictor"]
        if not predictor.explain_outputs:
            message = NO_EXPLAIN.format(path=str(predictor.path), output=predictor.output_name)
            raise RequestError(404, "no_explain", message, close=True)
        return await handle(scope, receive)

    return guarded


def add_explain(app: FastAPI, explain_json: Any) -> None:
    """Document POST /explain in /openapi.json; requests are answered by app._Front."""

    @app.post(
        "/explain",
        openapi_extra={"requestBody": schema.REQUEST},
        responses=schema.EXPLAIN_RESPONSES,
    )
    async def explain(request: Request) -> Response:
        """Explain rows: each prediction's contributions (w * (x - training mean)) and, for
        models with inference, its standard error and prediction interval."""
        content = await explain_json(request.scope, request.receive)
        return Response(content, media_type="application/json")


def _answer(_predictor: Predictor, found: Explanation, rows: int) -> bytes:
    return answer(found, rows)


def _explain_counted(predictor: Predictor, data: Any) -> tuple[Explanation, np.ndarray]:
    return predictor.explain_counted(data)


def _table_answer(_predictor: Predictor, counted: Any, rows: int) -> bytes:
    found, unknown = counted
    return answer(found, rows, int(unknown.sum()))


def answer(found: Explanation, rows: int, unknown_levels: int | None = None) -> bytes:
    """The JSON answer (a table model's with `unknown_levels`, the cells that held an
    unknown level, as /predict's); a 422 when a value overflowed the model's dtype."""
    targets, features_ = found.target_names, found.feature_names

    def by_target(values: np.ndarray | None) -> dict[str, list[float]] | None:
        return None if values is None else {t: values[:, i].tolist() for i, t in enumerate(targets)}

    contributions = {
        target: {f: found.contributions[:, t, j].tolist() for j, f in enumerate(features_)}
        for t, target in enumerate(targets)
    }
    baseline = (
        None if found.baseline is None else dict(zip(targets, found.baseline.tolist(), strict=True))
    )
    document = {
        "predictions": by_target(found.prediction),
        "contributions": contributions,
        "baseline": baseline,
        "stderr": by_target(found.stderr),
        "lower": by_target(found.lower),
        "upper": by_target(found.upper),
        "level": found.level,
        "rows": rows,
        **({"unknown_levels": unknown_levels} if unknown_levels is not None else {}),
    }
    try:  # allow_nan=False: the finiteness check costs nothing when all is well
        return json.dumps(document, allow_nan=False).encode()
    except ValueError as exc:  # finite inputs whose outputs do not fit the dtype
        raise RequestError(422, "prediction_overflow", _overflow(found)) from exc


def _overflow(found: Explanation) -> str:
    parts = {"prediction": found.prediction, "contributions": found.contributions}
    parts.update(stderr=found.stderr, lower=found.lower, upper=found.upper)
    name, values = next(
        (k, v) for k, v in parts.items() if v is not None and not np.isfinite(v).all()
    )
    row = int(np.argwhere(~np.isfinite(values))[0][0])
    return (
        f"the {name} of row {row + 1} overflowed the model's {values.dtype} (largest finite "
        f"value {np.finfo(values.dtype).max:.6g}); the inputs are too large for this model"
    )
