"""toolkit/serve over HTTP: predictions, health, metadata, docs, bad input (400, 422), load."""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from serving import Server, assert_error, httpx, running

from toolkit.runtime import Predictor

# The load test's duration; TOOLKIT_TEST_LOAD_SECONDS=60 makes a longer soak.
LOAD_SECONDS = float(os.environ.get("TOOLKIT_TEST_LOAD_SECONDS", "20"))
LOAD_CLIENTS = 16


@pytest.fixture(scope="module")
def model(seed_onnx: Path) -> Path:
    """The seed model: y = x1 + x2 - 1, float32."""
    return seed_onnx


@pytest.fixture(scope="module")
def predictor(model: Path) -> Predictor:
    return Predictor(model)


@pytest.fixture(scope="module")
def server(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Default settings; shared by most tests."""
    with running(model, tmp_path_factory.mktemp("serve")) as server:
        yield server


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


# 1. Predictions, health, metadata, documentation.


def test_predict_rows_and_columns_equal_the_predictor(client, predictor):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1000, 1000, (257, 2))
    expected = predictor.predict(x.tolist())[:, 0].tolist()

    by_rows = client.post("/predict", json={"rows": x.tolist()})
    assert by_rows.status_code == 200, by_rows.text
    assert by_rows.json() == {"predictions": {"y": expected}, "rows": 257}

    columns = {"x2": x[:, 1].tolist(), "x1": x[:, 0].tolist()}  # by name, in any order
    by_columns = client.post("/predict", json={"columns": columns})
    assert by_columns.status_code == 200, by_columns.text
    assert by_columns.json() == {"predictions": {"y": expected}, "rows": 257}


def test_predict_one_row_and_integers(client, predictor):
    response = client.post("/predict", json={"rows": [[1, 2]]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": {"y": [2.0]}, "rows": 1}  # 1 + 2 - 1
    single = [[0.1, -7.25]]
    response = client.post("/predict", json={"rows": single})
    assert response.json()["predictions"]["y"] == predictor.predict(single)[:, 0].tolist()


def test_big_batch_runs_off_the_event_loop_and_is_exact(client, predictor):
    """More than toolkit.serve.app.INLINE_ROWS rows go to a worker thread: same answers."""
    x = np.random.default_rng(2).uniform(-1e6, 1e6, (25_000, 2)).tolist()
    response = client.post("/predict", json={"rows": x})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"]["y"] == predictor.predict(x)[:, 0].tolist()


def test_default_row_limit_is_100_000(client):
    response = client.post("/predict", content=b'{"rows": [' + b"[0,0]," * 100_000 + b"[0,0]]}")
    assert_error(response, 413, "too_many_rows", "100,001 rows exceed the limit of 100,000")


def test_health(client, model, predictor):
    response = client.get("/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok"
    assert health["provider"] == predictor.provider == "CPUExecutionProvider"
    assert health["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert Path(health["model"]) == model
    assert isinstance(health["uptime_s"], float) and health["uptime_s"] >= 0
    time.sleep(0.05)
    assert client.get("/health").json()["uptime_s"] > health["uptime_s"]


def test_metadata_is_the_card(client, model, predictor):
    response = client.get("/metadata")
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["features"] == ["x1", "x2"] and metadata["targets"] == ["y"]
    assert metadata["dtype"] == "float32"
    assert metadata["provider"] == "CPUExecutionProvider"
    assert metadata["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert metadata["card"] == predictor.metadata
    assert json.loads(metadata["card"]["feature_names"]) == ["x1", "x2"]


def test_openapi_and_docs(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/predict", "/health", "/metadata"} <= set(paths)
    predict = paths["/predict"]["post"]
    assert "application/json" in predict["requestBody"]["content"]
    assert {"200", "400", "408", "413", "422"} <= set(predict["responses"])
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in docs.text


def test_unknown_paths_and_methods_are_json_errors(client):
    assert_error(client.get("/nope"), 404, "http", "Not Found")
    for method, path, allowed in [
        ("GET", "/predict", "POST"),
        ("PUT", "/predict", "POST"),
        ("POST", "/health", "GET"),
        ("DELETE", "/metadata", "GET"),
    ]:
        response = client.request(method, path)
        assert_error(response, 405, "http", "Method Not Allowed")
        assert response.headers["allow"] == allowed, (method, path)


# 3. Bad input: 400 for what is not JSON as serve.py accepts it, 422 for the wrong content.

LONG_NUMBER = "1" * 5000


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        (b'{"rows": [[1, 2]', ["malformed JSON", "Expecting"]),
        (b"{rows: [[1, 2]]}", ["malformed JSON"]),
        (b'{"rows": [[1, 2]]} trailing', ["malformed JSON", "Extra data"]),
        (b'{"rows": [[NaN, 2]]}', ["NaN is not a number JSON allows"]),
        (b'{"rows": [[1, Infinity]]}', ["Infinity is not a number JSON allows"]),
        (b'{"rows": [[-Infinity, 1]]}', ["-Infinity is not a number JSON allows"]),
        (b'{"columns": {"x1": [NaN], "x2": [1]}}', ["NaN is not a number JSON allows"]),
        (f'{{"rows": [[{LONG_NUMBER}, 2]]}}'.encode(), ["5,000 characters", "at most 64"]),
        (f'{{"rows": [[0.{LONG_NUMBER}, 2]]}}'.encode(), ["5,002 characters"]),
        (b'{"rows": [[1e999, 2]]}', ["'1e999' is out of the float64 range"]),
        (b'{"rows": [[-1e999, 2]]}', ["'-1e999' is out of the float64 range"]),
        (b"", ["empty body"]),
        (b"[" * 100_000, ["invalid JSON value"]),  # nesting past the recursion limit
        (b'{"rows": [[1, 2]], "\xff": 1}', ["invalid JSON value"]),  # not UTF-8
    ],
    ids=[
        "truncated",
        "unquoted-key",
        "trailing-data",
        "nan",
        "infinity",
        "minus-infinity",
        "nan-in-columns",
        "5000-digit-integer",
        "5000-digit-fraction",
        "1e999",
        "minus-1e999",
        "empty",
        "deep-nesting",
        "not-utf8",
    ],
)
def test_invalid_json_is_400(client, body, parts):
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json", *parts)


SHAPE = 'expected a JSON object with "rows" (a list of rows) or "columns"'


@pytest.mark.parametrize(
    ("payload", "kind", "parts"),
    [
        ({"rows": [[1, 2, 3]]}, "invalid_input", ["expected 2 features per row (x1, x2), got 3"]),
        ({"rows": [[1]]}, "invalid_input", ["expected 2 features per row (x1, x2), got 1"]),
        ({"rows": [[1, 2], [1]]}, "invalid_input", ["rows of equal length", "ragged"]),
        ({"rows": [[[1, 2]]]}, "invalid_input", ["got an array of shape (1, 1, 2)"]),
        ({"rows": [[1, "two"]]}, "invalid_input", ["row 1, column 'x2': expected a number"]),
        ({"rows": [[1, "2"]]}, "invalid_input", ["expected numbers, got an array of dtype <U"]),
        ({"rows": [[1, 2], ["a", 2]]}, "invalid_input", ["row 2, column 'x1'", "got 'a'"]),
        ({"rows": [[True, 2]]}, "invalid_input", ["row 1, column 'x1'", "got True"]),
        ({"rows": [[1, 2], [3, False]]}, "invalid_input", ["row 2, column 'x2'", "got False"]),
        ({"rows": [[{"a": 1}, 2]]}, "invalid_input", ["row 1, column 'x1'", "expected a number"]),
        ({"rows": [[None, 2]]}, "invalid_input", ["row 1, column 'x1'", "got None"]),
        ({"rows": [[1e39, 2]]}, "invalid_input", ["beyond the range of the model's float32"]),
        ({"rows": [[1, 2], 3]}, "invalid_input", ["ragged"]),
        ({"rows": [1, 2]}, "invalid_request", ['"rows" must be a list of rows']),
        ({"rows": {"x1": 1}}, "invalid_request", ['"rows" must be a list, got dict']),
        ({"rows": "1,2"}, "invalid_request", ['"rows" must be a list, got str']),
        ({"rows": []}, "invalid_request", ["no rows to predict"]),
        ({"columns": {"x1": [1]}}, "invalid_input", ["expected columns x1, x2; missing 'x2'"]),
        (
            {"columns": {"x1": [1], "x2": [2], "x3": [3]}},
            "invalid_input",
            ["expected columns x1, x2; unknown 'x3'"],
        ),
        (
            {"columns": {"a": [1], "b": [2]}},
            "invalid_input",
            ["missing 'x1', 'x2' and unknown 'a', 'b'"],
        ),
        ({"columns": {"x1": [1], "x2": [1, 2]}}, "invalid_input", ["x1: 1, x2: 2"]),
        ({"columns": {"x1": [1], "x2": ["b"]}}, "invalid_input", ["column 'x2'", "got 'b'"]),
        ({"columns": {"x1": [1], "x2": [True]}}, "invalid_input", ["got booleans"]),
        ({"columns": {"x1": [1, 2], "x2": [3, False]}}, "invalid_input", ["column 'x2'", "False"]),
        ({"columns": {"x1": [[1]], "x2": [[2]]}}, "invalid_input", ["column 'x1'", "(1, 1)"]),
        ({"columns": {"x1": 1, "x2": 2}}, "invalid_request", ['every "columns" value must be']),
        ({"columns": [[1, 2]]}, "invalid_request", ['"columns" must map feature names']),
        ({"columns": {}}, "invalid_request", ["no rows to predict"]),
        ({"columns": {"x1": [], "x2": []}}, "invalid_request", ["no rows to predict"]),
        ({}, "invalid_request", [SHAPE]),
        ({"data": [[1, 2]]}, "invalid_request", [SHAPE]),
        ({"rows": [[1, 2]], "columns": {"x1": [1], "x2": [2]}}, "invalid_request", [SHAPE]),
        ([[1, 2]], "invalid_request", [SHAPE]),
        ("rows", "invalid_request", [SHAPE]),
        (3, "invalid_request", [SHAPE]),
        (None, "invalid_request", [SHAPE]),
    ],
)
def test_wrong_content_is_422(client, payload, kind, parts):
    response = client.post("/predict", content=json.dumps(payload).encode())
    assert_error(response, 422, kind, *parts)


@pytest.mark.parametrize(
    "payload",
    [
        {"rows": [[3e38, 3e38]]},
        {"rows": [[1, 2], [-3e38, -3e38]]},
        {"columns": {"x1": [3e38], "x2": [1e38]}},
    ],
    ids=["rows", "second-row-negative", "columns"],
)
def test_a_prediction_that_overflows_the_dtype_is_a_clear_422(client, payload):
    """Inputs within float32 whose prediction (x1 + x2 - 1) is not: JSON has no Infinity."""
    row = 2 if len(payload.get("rows", [])) == 2 else 1
    assert_error(
        client.post("/predict", json=payload),
        422,
        "prediction_overflow",
        f"the prediction for row {row}, target 'y', overflowed the model's float32 "
        "(largest finite value 3.40282e+38)",
    )


OUT_OF_RANGE = "invalid JSON value: number '1e999' is out of the float64 range"


@pytest.mark.parametrize(
    "body",
    [
        b'{"rows": [[1e999, 2]]}',
        b'{"rows": [[1e999, 2]], "x": 1}',  # a shape error too
        b'{"rows": [[1e999, 2]], "columns": {}}',
        b'{"rows": [[1e999, 2, 3]]}',  # a feature-count error too
        b'{"rows": [[1e999, "a"]]}',  # a type error too
        b'{"rows": [[1e999, true]]}',
        b'{"rows": 1e999}',
        b'{"columns": {"x1": [1e999], "x2": [1]}}',
        b'{"columns": {"x1": [1e999], "x3": [1]}}',  # a name error too
        b'{"columns": {"x1": [[1e999]], "x2": [[1]]}}',
        b"[1e999]",
    ],
)
def test_a_number_outside_float64_is_always_the_same_400(client, body):
    """Whatever else is wrong with the body, the out-of-range number is reported first."""
    response = client.post("/predict", content=body)
    assert assert_error(response, 400, "invalid_json") == OUT_OF_RANGE


def test_server_still_healthy_after_bad_input(client):
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/predict", json={"rows": [[2, 2]]}).json()["predictions"] == {"y": [3.0]}


# 6. Load: 16 clients for LOAD_SECONDS, 1-row and 1000-row requests, all exact.


@pytest.mark.slow
def test_load_all_answers_exact(server, predictor, capsys):
    rng = np.random.default_rng(6)
    pool: list[tuple[bytes, list[float]]] = []
    for size in [1] * 64 + [1000] * 64:
        rows = rng.uniform(-1e4, 1e4, (size, 2)).tolist()
        pool.append((json.dumps({"rows": rows}).encode(), predictor.predict(rows)[:, 0].tolist()))
    counts = [0] * LOAD_CLIENTS
    failures: list[str] = []
    deadline = time.monotonic() + LOAD_SECONDS

    def worker(index: int) -> None:
        choose = random.Random(index).randrange
        with server.client(headers={"content-type": "application/json"}) as client:
            while time.monotonic() < deadline and not failures:
                body, expected = pool[choose(len(pool))]
                try:
                    response = client.post("/predict", content=body)
                except httpx.HTTPError as error:
                    failures.append(f"client {index}: {error!r}")
                    return
                if response.status_code != 200:
                    failures.append(f"client {index}: {response.status_code} {response.text}")
                elif response.json()["predictions"]["y"] != expected:
                    failures.append(f"client {index}: an answer differs from Predictor.predict")
                else:
                    counts[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(LOAD_CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=LOAD_SECONDS + 60)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "a load client hung"
    assert not failures, failures[:5]
    total = sum(counts)
    assert total > LOAD_CLIENTS and all(counts), counts
    with capsys.disabled():  # shown without -s
        print(
            f"\nload: {total} requests in {elapsed:.1f} s from {LOAD_CLIENTS} clients = "
            f"{total / elapsed:.0f} requests/s (half 1-row, half 1000-row), all exact"
        )
    assert server.process.poll() is None
