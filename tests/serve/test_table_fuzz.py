"""Random JSON bodies at a table model's /predict (in process, json_handler as the ASGI
front calls it): every body is answered, 200 with predictions or a RequestError with a
documented status (400, 413, 422), never another exception (a 500). Values are mixed on
purpose: null, booleans, huge integers, floats, texts, nested lists and objects.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from table_models import PLAN, write_exported

pytest.importorskip("fastapi", reason="toolkit serve needs the 'serve' extra")

from toolkit.errors import RequestError
from toolkit.runtime import Predictor
from toolkit.serve import app
from toolkit.serve.settings import ServeSettings

NAMES = st.sampled_from([*PLAN.raw_names, "other"])
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(["GM", "IBM", "true", "NA", ""]),
)
VALUE = st.recursive(
    LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=5)
)
PAYLOADS = st.one_of(
    st.fixed_dictionaries({"rows": st.lists(st.lists(LEAF, min_size=3, max_size=5), max_size=4)}),
    st.fixed_dictionaries({"records": st.lists(st.dictionaries(NAMES, LEAF, max_size=5))}),
    st.fixed_dictionaries({"columns": st.dictionaries(NAMES, st.lists(LEAF, max_size=3))}),
    st.dictionaries(st.sampled_from(["rows", "records", "columns"]), VALUE, max_size=2),
)


@pytest.fixture(scope="module")
def handle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    plan = PLAN.with_unknown_level("reference")
    path = write_exported(tmp_path_factory.mktemp("fuzz") / "m.onnx", plan, dtype="float64")
    state = {"predictor": Predictor(path)}
    return app._predict_handler(ServeSettings(model=str(path), max_rows=50), state)


def call(handle: Any, body: bytes) -> bytes:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return asyncio.run(handle({"headers": headers}, receive))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=PAYLOADS)
def test_every_body_gets_an_answer_or_a_documented_error(handle, payload):
    try:
        answer = json.loads(call(handle, json.dumps(payload).encode()))
    except RequestError as error:
        assert error.status in (400, 413, 422), (error.status, error.message)
        assert "Traceback" not in error.message
    else:
        assert set(answer) == {"predictions", "rows", "unknown_levels"}
        assert len(answer["predictions"]["y"]) == answer["rows"]
