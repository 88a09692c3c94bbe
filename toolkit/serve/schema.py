"""The OpenAPI documents of POST /predict and POST /explain (shown at /docs and /openapi.json).

Requests are answered by the ASGI fast path (app.py), which FastAPI does not see, so the
request and response shapes are declared here by hand.
"""

from __future__ import annotations

from typing import Any

REQUEST: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["rows"],
                        "properties": {
                            "rows": {
                                "type": "array",
                                "items": {"type": "array", "items": {"type": "number"}},
                                "example": [[1.0, 2.0], [3.0, 4.0]],
                            }
                        },
                    },
                    {
                        "type": "object",
                        "required": ["columns"],
                        "properties": {
                            "columns": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "array",
                                    "items": {"type": "number"},
                                },
                                "example": {"x1": [1.0, 3.0], "x2": [2.0, 4.0]},
                            }
                        },
                    },
                ]
            }
        }
    },
}
_ERROR = {
    "content": {"application/json": {"example": {"error": {"type": "...", "message": "..."}}}}
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Predictions by target name",
        "content": {"application/json": {"example": {"predictions": {"y": [2.0, 6.0]}, "rows": 2}}},
    },
    400: {"description": "Malformed JSON, NaN/Infinity, absurdly long numbers", **_ERROR},
    408: {"description": "The body arrived too slowly", **_ERROR},
    413: {"description": "Body or row count over the limit", **_ERROR},
    422: {"description": "Wrong shape, names or types; a prediction the dtype overflows", **_ERROR},
    503: {"description": "Too many requests in progress; see Retry-After", **_ERROR},
}
EXPLAIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Predictions, contributions (w * (x - training mean)) by target and "
        "feature, the prediction at the training mean (baseline), and for models with "
        "inference the standard error and the prediction interval at `level` (else null)",
        "content": {
            "application/json": {
                "example": {
                    "predictions": {"y": [2.0]},
                    "contributions": {"y": {"x1": [-0.5], "x2": [0.5]}},
                    "baseline": {"y": 2.0},
                    "stderr": {"y": [0.1]},
                    "lower": {"y": [1.8]},
                    "upper": {"y": [2.2]},
                    "level": 0.95,
                    "rows": 1,
                }
            }
        },
    },
    **{status: RESPONSES[status] for status in (400, 408, 413)},
    404: {"description": "The model was exported without --explain", **_ERROR},
    **{status: RESPONSES[status] for status in (422, 503)},
}
