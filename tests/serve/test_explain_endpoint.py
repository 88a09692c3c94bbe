"""POST /explain (toolkit/serve/explain.py) over real HTTP: the Predictor's answers, and
/predict's limits and errors; 404 for a model exported without --explain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from explain_models import exported, make_data, trained
from serving import Server, assert_error, httpx, running

from toolkit.runtime import Predictor


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = make_data(rows=40, features=2, seed=8)
    return exported(trained(tmp_path_factory.mktemp("explain-serve"), x, y))


@pytest.fixture(scope="module")
def server(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    options = ["--max-rows", "50", "--max-body-bytes", "4096"]  # small, to reach the 413s
    with running(model, tmp_path_factory.mktemp("serve"), *options) as server:
        yield server


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def test_rows_and_columns_get_the_predictors_explanation(client, model):
    rows = np.random.default_rng(2).uniform(-10, 10, (7, 2))
    found = Predictor(model).explain(rows)
    by_rows = client.post("/explain", json={"rows": rows.tolist()})
    assert by_rows.status_code == 200, by_rows.text
    assert by_rows.json() == {
        "predictions": {"y": found.prediction[:, 0].tolist()},
        "contributions": {
            "y": {f: found.contributions[:, 0, j].tolist() for j, f in enumerate(["x1", "x2"])}
        },
        "baseline": {"y": found.baseline[0]},
        "stderr": {"y": found.stderr[:, 0].tolist()},
        "lower": {"y": found.lower[:, 0].tolist()},
        "upper": {"y": found.upper[:, 0].tolist()},
        "level": 0.95,
        "rows": 7,
    }
    columns = {"x2": rows[:, 1].tolist(), "x1": rows[:, 0].tolist()}
    assert client.post("/explain", json={"columns": columns}).json() == by_rows.json()


def test_predicts_errors_and_limits(client):
    assert_error(client.post("/explain", json={"rows": [[1.0]]}), 422, "invalid_input", "2 feat")
    assert_error(client.post("/explain", json={"rows": [[1.0, 2.0]] * 51}), 413, "too_many_rows")
    big = {"rows": [[1.2345678901234567, 2.2345678901234567]] * 200}  # 8 KB > 4,096 bytes
    assert_error(client.post("/explain", json=big), 413, "body_too_large")
    bad = client.post("/explain", content=b'{"rows": [[1, 2]]', headers={"content-type": "json"})
    assert_error(bad, 400, "invalid_json")
    assert_error(client.post("/explain", content=b'{"rows": [[1e999, 2]]}'), 400, "invalid_json")
    assert_error(client.post("/explain", json={"nope": 1}), 422, "invalid_request")
    assert_error(client.get("/explain"), 405, "http")


def test_a_prediction_that_overflows_is_a_422(client):
    response = client.post("/explain", json={"rows": [[1e300, 1e300]]})
    assert_error(response, 422, "prediction_overflow", "row 1 overflowed the model's float64")


def test_the_openapi_document_describes_explain(client):
    operation = client.get("/openapi.json").json()["paths"]["/explain"]["post"]
    assert "rows" in str(operation["requestBody"])
    assert sorted(operation["responses"]) == ["200", "400", "404", "408", "413", "422", "503"]


def test_a_model_without_explain_outputs_answers_404(seed_onnx, tmp_path):
    with running(seed_onnx, tmp_path) as server, server.client() as client:
        response = client.post("/explain", json={"rows": [[1.0, 2.0]]})
        assert_error(response, 404, "no_explain", "export it with `toolkit export --explain`")
        assert response.headers["connection"] == "close"
        assert client.post("/predict", json={"rows": [[1.0, 2.0]]}).status_code == 200


# A table model (raw columns in) exported with --explain: /explain takes /predict's body
# forms for table models and answers the Predictor's explanation, with unknown_levels.
TABLE_RECORDS = [
    {"firm": "GM", "value": 1.5, "union": True, "capital": 2.0, "year": 1936},
    {"firm": None, "value": None, "union": "false", "capital": -1, "year": 1940},
    {"firm": "IBM", "value": "NA", "union": False, "capital": 0.5, "year": "1935"},
]


@pytest.fixture(scope="module")
def table_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from table_checkpoints import example_plan, table_checkpoint

    from toolkit.export import export_model

    folder = tmp_path_factory.mktemp("explain-table")
    model = table_checkpoint(folder / "m.pt", example_plan(), dtype="float64")
    found = {}
    for policy in ("error", "reference"):
        found[policy] = folder / f"{policy}.onnx"
        export_model(model, found[policy], explain=True, unknown_level=policy)
    return found


def test_a_table_model_explains_raw_records_rows_and_columns(table_models, tmp_path):
    model = table_models["reference"]
    predictor = Predictor(model)
    records = [*TABLE_RECORDS, {**TABLE_RECORDS[0], "firm": "Ford"}]
    found, unknown = predictor.explain_counted(records)
    names = predictor.input_names
    with running(model, tmp_path) as server, server.client() as client:
        got = client.post("/explain", json={"records": records})
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["unknown_levels"] == int(unknown.sum()) == 1 and body["rows"] == 4
        assert body["predictions"] == {"y": found.prediction[:, 0].tolist()}
        assert body["upper"] == {"y": found.upper[:, 0].tolist()}
        assert body["contributions"]["y"] == {
            f: found.contributions[:, 0, j].tolist() for j, f in enumerate(predictor.feature_names)
        }
        assert "firm[GM]" in body["contributions"]["y"]
        rows = [[record[name] for name in names] for record in records]
        columns = {name: [record[name] for record in records] for name in names}
        assert client.post("/explain", json={"rows": rows}).json() == body
        assert client.post("/explain", json={"columns": columns}).json() == body
        schema = client.get("/openapi.json").json()["paths"]["/explain"]["post"]["requestBody"]
        assert "records" in json.dumps(schema)


def test_a_table_models_unknown_level_is_a_422_under_error(table_models, tmp_path):
    with running(table_models["error"], tmp_path) as server, server.client() as client:
        response = client.post("/explain", json={"records": [{**TABLE_RECORDS[0], "firm": "Ford"}]})
        assert_error(response, 422, "invalid_input", "row 1, column 'firm': unknown level 'Ford'")
