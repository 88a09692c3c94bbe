"""`toolkit serve` for table models: raw values in, with mixed types (toolkit/columns.py).

A table model's /predict takes one of

    {"rows": [["GM", 1.5, null], ...]}          values in the model's raw column order
    {"columns": {"firm": ["GM", ...], ...}}      column name -> values
    {"records": [{"firm": "GM", ...}, ...]}     one object per row

with text, numbers, booleans and nulls as the columns take them (Predictor.predict's
rules: runtime/table.py), under the same limits and error format as numeric models (413
over --max-rows, 422 naming the row and column). The answer adds `unknown_levels`: how
many cells held a level the model does not know (refused with a 422 under
--unknown-level error, encoded as the reference level under "reference").
/metadata adds the raw inputs and the plan; /openapi.json shows each column's JSON type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.columns import CATEGORICAL, TablePlan
from toolkit.errors import RequestError
from toolkit.runtime import Predictor
from toolkit.runtime.table_model import describe_columns

FORMS = ("rows", "columns", "records")
SHAPE = (
    'expected a JSON object with one of "rows" (a list of rows, each a list of the raw '
    'columns\' values in order), "columns" (column name -> list of values) or "records" '
    "(a list of objects, column name -> value)"
)
# JSON types a categorical column takes besides text, by raw type.
_ALSO = {"bool": ["boolean"], "int": ["integer"], "float": ["number"], "string": []}


def table_features(payload: Any, max_rows: int) -> tuple[Any, int]:
    """The input for Predictor.predict_counted and its row count, or a 422 / 413."""
    forms = [form for form in FORMS if isinstance(payload, dict) and form in payload]
    if len(forms) != 1:
        raise RequestError(422, "invalid_request", SHAPE)
    (form,) = forms
    data = payload[form]
    if form == "columns":
        if not isinstance(data, dict):
            raise RequestError(422, "invalid_request", '"columns" must map column names to lists')
        if not all(isinstance(v, list) for v in data.values()):
            raise RequestError(422, "invalid_request", 'every "columns" value must be a list')
        rows = max((len(v) for v in data.values()), default=0)
    else:
        if not isinstance(data, list):
            raise RequestError(
                422, "invalid_request", f'"{form}" must be a list, got {type(data).__name__}'
            )
        item = list if form == "rows" else dict
        if not all(isinstance(row, item) for row in data):
            what = "a list of values" if form == "rows" else "an object of column -> value"
            raise RequestError(422, "invalid_request", f'each of "{form}" must be {what}')
        rows = len(data)
    if rows > max_rows:
        raise RequestError(413, "too_many_rows", f"{rows:,} rows exceed the limit of {max_rows:,}")
    if rows == 0:
        raise RequestError(422, "invalid_request", "no rows to predict")
    return data, rows


def counted(predictor: Predictor, data: Any) -> tuple[np.ndarray, np.ndarray]:
    return predictor.predict_counted(data)


def warm_row(predictor: Predictor) -> dict[str, Any]:
    """A row every table model takes (each column's reference level, numbers 0)."""
    plan = predictor.table
    assert plan is not None
    return {c.name: c.levels[0] if c.kind == CATEGORICAL else 0.0 for c in plan.columns}


def metadata(predictor: Predictor) -> dict[str, Any]:
    """/metadata's additions for a table model (none for a numeric one)."""
    if predictor.table is None:
        return {}
    return {"inputs": describe_columns(predictor.table), "table": predictor.table.to_dict()}


def request_schema(plan: TablePlan) -> dict[str, Any]:
    """The OpenAPI request body of a table model: rows, columns or records, each column
    typed (number or string, null where the model fills a missing value)."""
    cells = {column["name"]: _cell(column) for column in describe_columns(plan)}
    names = list(cells)
    example = {c.name: c.levels[-1] if c.kind == CATEGORICAL else 1.0 for c in plan.columns}
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _form(
                            "rows",
                            {
                                "type": "array",
                                "items": {
                                    "type": "array",
                                    "prefixItems": [cells[n] for n in names],
                                    "minItems": len(names),
                                    "maxItems": len(names),
                                },
                                "description": f"Rows of values in the order {', '.join(names)}",
                                "example": [list(example.values())],
                            },
                        ),
                        _form(
                            "columns",
                            {
                                "type": "object",
                                "properties": {
                                    n: {"type": "array", "items": cells[n]} for n in names
                                },
                                "required": names,
                                "additionalProperties": False,
                                "example": {n: [v] for n, v in example.items()},
                            },
                        ),
                        _form(
                            "records",
                            {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": cells,
                                    "required": names,
                                    "additionalProperties": False,
                                },
                                "example": [example],
                            },
                        ),
                    ]
                }
            }
        },
    }


def _form(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {key: schema}}


def _cell(column: dict[str, Any]) -> dict[str, Any]:
    """One column's JSON schema: its type(s), null when it has a fill, and a description."""
    if column["kind"] == CATEGORICAL:
        types = ["string", *_ALSO[column["raw_type"]]]
        what = f"categorical ({column['raw_type']}), {column['levels']} levels"
    else:
        types = ["number"]
        what = f"numeric ({column['raw_type']})"
    if column["nullable"]:
        types.append("null")
        what += f"; null (missing) becomes {column['fill']!r}"
    else:
        what += "; a value is required"
    return {"type": types[0] if len(types) == 1 else types, "description": what}
