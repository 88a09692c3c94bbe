"""toolkit/serve/app.py in-process: the JSON encoder built once, and json_handler (the
fast path's body -> rows -> answer) reused for another predictor method.

Over HTTP the same code is proven by test_endpoints.py; these pin the pieces a new POST
route (such as /explain) builds on, against the standard library's json.dumps.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="toolkit serve needs the 'serve' extra")

from toolkit.errors import RequestError
from toolkit.runtime import Predictor
from toolkit.serve import app
from toolkit.serve.settings import ServeSettings

ANSWERS = [
    {"predictions": {"y": [-3.265432834625244]}, "rows": 1},
    {"predictions": {"u": [1.0, 2.5e-300], "v": [1e300, -0.0]}, "rows": 2},
    {"predictions": {'é "quoted"': [0.1, 0.2, 0.30000000000000004]}, "rows": 3},
    {"predictions": {"y": np.random.default_rng(0).random(1000).tolist()}, "rows": 1000},
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_the_encoder_writes_what_json_dumps_writes(answer):
    assert app._encode(answer) == json.dumps(answer)  # byte for byte: the same floats


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_the_encoder_refuses_non_finite_numbers_as_json_dumps_allow_nan_false_does(bad):
    answer = {"predictions": {"y": [1.0, bad]}, "rows": 2}
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        json.dumps(answer, allow_nan=False)  # the reference
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        app._encode(answer)


def test_without_the_c_accelerator_the_public_encoder_gives_the_same_text(monkeypatch):
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    encode = app._json_encoder()
    for answer in ANSWERS:
        assert encode(answer) == json.dumps(answer)
    with pytest.raises(ValueError, match="Out of range float"):
        encode({"y": [math.inf]})


def call(handle: Any, body: bytes) -> bytes:
    """One POST through a json_handler, as the ASGI front calls it."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return asyncio.run(handle({"headers": headers}, receive))


def test_json_handler_serves_another_predictor_method_with_the_same_checks(seed_onnx: Path):
    predictor = Predictor(seed_onnx)  # y = x1 + x2 - 1
    state = {"predictor": predictor}

    def doubled(p: Predictor, data: Any) -> np.ndarray:
        return 2 * p.predict(data)

    def answer(p: Predictor, result: np.ndarray, rows: int) -> bytes:
        return json.dumps({"doubled": result[:, 0].tolist(), "rows": rows}).encode()

    handle = app.json_handler(ServeSettings(model=str(seed_onnx)), state, doubled, answer)
    got = json.loads(call(handle, b'{"rows": [[1, 2], [3, 4]]}'))
    # Reference: the seed model's math by hand, y = x1 + x2 - 1, doubled (float32 exact).
    assert got == {"doubled": [4.0, 12.0], "rows": 2}
    got = json.loads(call(handle, b'{"columns": {"x1": [1], "x2": [2]}}'))
    assert got == {"doubled": [4.0], "rows": 1}
    # The same refusals as /predict: input errors name the cell, bad JSON is a 400.
    with pytest.raises(RequestError, match=r"row 1, column 'x2': expected a number") as caught:
        call(handle, b'{"rows": [[1, true]]}')
    assert caught.value.status == 422
    with pytest.raises(RequestError, match="is out of the float64 range") as caught:
        call(handle, b'{"rows": [[1e999, 2]]}')
    assert caught.value.status == 400


def test_startup_freezes_what_it_loaded_and_shutdown_unfreezes_it(seed_onnx: Path):
    # Frozen objects are skipped by the collector's full passes (gc.freeze): the imports
    # and the loaded model, everything that lives as long as the server.
    front = app.create_app(ServeSettings(model=str(seed_onnx)))
    assert gc.get_freeze_count() == 0

    async def start_and_stop() -> int:
        async with front.app.router.lifespan_context(front.app):
            return gc.get_freeze_count()

    frozen = asyncio.run(start_and_stop())
    assert frozen > 10_000  # numpy, onnxruntime, FastAPI: about 60,000 here
    assert gc.get_freeze_count() == 0
