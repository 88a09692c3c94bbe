"""`toolkit serve` on a table model over HTTP: rows, columns and records of raw values with
mixed types, errors naming row and column, limits, /metadata and the OpenAPI types.

The model is float64 (tests/table_models.py, toolkit's export graph); predictions are
checked against the hand one-hot reference there to 1e-12, and the JSON round trip of a
float64 is exact.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from serving import Server, assert_error, httpx, running
from table_models import PLAN, reference_predict, weights, write_exported

from toolkit.errors import RequestError
from toolkit.runtime import Predictor
from toolkit.serve import app
from toolkit.serve.settings import ServeSettings

MAX_ROWS = 50
ROWS = [
    ["GM", 1.5, 1.0, True],
    [None, None, 2.0, "false"],
    ["Atlantic", 3, 3, "true"],
    ["IBM", "NA", 4.0, False],
    ["", 2.0, -5, True],
]
NAMES = PLAN.raw_names


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_exported(tmp_path_factory.mktemp("table") / "m.onnx", dtype="float64")


@pytest.fixture(scope="module")
def server(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    with running(model, folder, "--max-rows", str(MAX_ROWS)) as server:
        yield server


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def expected() -> list[float]:
    frame = pd.DataFrame(ROWS, columns=NAMES)
    return reference_predict(PLAN, frame, *weights(PLAN))[:, 0].tolist()


def test_rows_columns_and_records_with_mixed_types_equal_the_reference(client):
    columns = {name: [row[j] for row in ROWS] for j, name in enumerate(NAMES)}
    records = [dict(zip(NAMES, row, strict=True)) for row in ROWS]
    for body in ({"rows": ROWS}, {"columns": columns}, {"records": records}):
        response = client.post("/predict", json=body)
        assert response.status_code == 200, response.text
        got = response.json()
        assert got["rows"] == len(ROWS) and got["unknown_levels"] == 0
        np.testing.assert_allclose(got["predictions"]["y"], expected(), rtol=0, atol=1e-12)
    for i, record in enumerate(records):  # one row, the fast path
        got = client.post("/predict", json={"records": [record]}).json()["predictions"]["y"]
        np.testing.assert_allclose(got, expected()[i : i + 1], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        ({"records": [{"firm": "Ford", "value": 1, "capital": 2, "union": True}]},
         ["row 1, column 'firm': unknown level 'Ford'; the model knows 'Atlantic'"]),
        ({"rows": [ROWS[0], ["GM", 1, None, True]]},
         ["row 2, column 'capital': a missing value; the model was trained with --missing mean"]),
        ({"rows": [ROWS[0], ["GM", 1, "lots", True]]},
         ["row 2, column 'capital': expected a number, got 'lots'"]),
        ({"rows": [ROWS[0], ["GM", 1, 2]]},
         ["row 2: expected 4 values (firm, value, capital, union), got 3"]),
        ({"records": [{"firm": "GM", "value": 1, "union": True}]},
         ["row 1: expected columns firm, value, capital, union; missing 'capital'"]),
        ({"records": [{"firm": "GM", "value": 1, "capital": 1, "union": True, "id": 3}]},
         ["unknown 'id'"]),
        ({"columns": {"firm": ["GM"], "value": [1], "capital": [2]}}, ["missing 'union'"]),
        ({"columns": {"firm": ["GM"], "value": [1], "capital": [2, 3], "union": [True]}},
         ["expected columns of equal length"]),
    ],
)  # fmt: skip
def test_bad_values_are_422_naming_row_and_column(client, body, parts):
    assert_error(client.post("/predict", json=body), 422, "invalid_input", *parts)


@pytest.mark.parametrize(
    ("body", "part"),
    [
        ({"rows": ROWS, "records": []}, 'one of "rows"'),
        ({"features": ROWS}, 'one of "rows"'),
        ([ROWS], 'one of "rows"'),
        ({"rows": {"firm": 1}}, '"rows" must be a list, got dict'),
        ({"rows": ["GM", 1, 2, True]}, 'each of "rows" must be a list of values'),
        ({"records": [["GM", 1, 2, True]]}, 'each of "records" must be an object'),
        ({"columns": [["GM"]]}, '"columns" must map column names to lists'),
        ({"columns": {"firm": "GM"}}, 'every "columns" value must be a list'),
        ({"records": []}, "no rows to predict"),
    ],
)
def test_wrong_shapes_are_422(client, body, part):
    assert_error(client.post("/predict", json=body), 422, "invalid_request", part)


def test_the_row_limit_and_json_errors_are_as_for_numeric_models(client):
    body = {"records": [dict(zip(NAMES, ROWS[0], strict=True))] * (MAX_ROWS + 1)}
    assert_error(client.post("/predict", json=body), 413, "too_many_rows", "51 rows exceed")
    response = client.post("/predict", content=b'{"rows": [["GM", NaN, 1, true]]}')
    assert_error(response, 400, "invalid_json", "NaN")
    response = client.post("/predict", content=b'{"rows": [["GM", 1e999, 1, true]]}')
    assert_error(response, 400, "invalid_json", "out of the float64 range")


def test_metadata_shows_the_raw_inputs_and_the_plan(client):
    metadata = client.get("/metadata").json()
    assert metadata["features"] == PLAN.encoded_names
    assert metadata["table"] == PLAN.to_dict()
    assert [(c["name"], c["json_type"], c["nullable"]) for c in metadata["inputs"]] == [
        ("firm", "string", True),
        ("value", "number", True),
        ("capital", "number", False),
        ("union", "string", False),
    ]


def test_openapi_types_each_raw_column(client):
    document = client.get("/openapi.json").json()
    body = document["paths"]["/predict"]["post"]["requestBody"]
    rows, columns, records = body["content"]["application/json"]["schema"]["oneOf"]
    cells = [item["type"] for item in rows["properties"]["rows"]["items"]["prefixItems"]]
    assert cells == [["string", "null"], ["number", "null"], "number", ["string", "boolean"]]
    record = records["properties"]["records"]["items"]
    assert record["required"] == NAMES and record["additionalProperties"] is False
    assert record["properties"]["value"]["type"] == ["number", "null"]
    by_column = columns["properties"]["columns"]["properties"]
    assert by_column["capital"] == {"type": "array", "items": record["properties"]["capital"]}
    assert "null (missing) becomes 1.5" in record["properties"]["value"]["description"]
    example = records["properties"]["records"]["example"]
    # The documented example is a valid request.
    response = client.post("/predict", json={"records": example})
    assert response.status_code == 200, response.text


def call(handle: Any, body: bytes) -> bytes:
    """One POST through a json_handler, as the ASGI front calls it."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return asyncio.run(handle({"headers": headers}, receive))


def test_unknown_levels_under_the_reference_policy_are_counted_in_the_answer(tmp_path):
    plan = PLAN.with_unknown_level("reference")
    path = write_exported(tmp_path / "ref.onnx", plan, dtype="float64")
    state = {"predictor": Predictor(path)}
    handle = app._predict_handler(ServeSettings(model=str(path)), state)
    rows = [["Ford", 1.0, 2.0, "maybe"], ["GM", 1.0, 2.0, True], ["Chrysler", 1.0, 2.0, False]]
    got = json.loads(call(handle, json.dumps({"rows": rows}).encode()))
    assert got["unknown_levels"] == 2 and got["rows"] == 3
    # Unknown levels are encoded as the reference levels: row 1 equals row 3.
    assert got["predictions"]["y"][0] == got["predictions"]["y"][2]
    with pytest.raises(RequestError, match="row 1, column 'capital'") as caught:
        call(handle, b'{"rows": [["GM", 1, true, true]]}')
    assert caught.value.status == 422


def test_a_big_batch_runs_off_the_event_loop_and_is_exact(model):
    state = {"predictor": Predictor(model)}
    handle = app._predict_handler(ServeSettings(model=str(model)), state)
    rows = ROWS * (app.TABLE_INLINE_ROWS // len(ROWS) + 1)  # past the inline limit
    got = json.loads(call(handle, json.dumps({"rows": rows}).encode()))
    assert got["rows"] == len(rows) > app.TABLE_INLINE_ROWS
    np.testing.assert_allclose(got["predictions"]["y"], expected() * (len(rows) // len(ROWS)))
