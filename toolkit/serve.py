"""`toolkit serve`: a Predictor behind HTTP, on uvicorn with FastAPI.

Endpoints:
    POST /predict   {"rows": [[...], ...]} or {"columns": {"x1": [...], ...}}
                    -> {"predictions": {"y": [...]}, "rows": n}
    GET  /health    status, provider, model SHA-256, uptime
    GET  /metadata  the model card and signature
    GET  /docs      OpenAPI documentation (/openapi.json)

Hardening: the body is read in pieces and refused with 413 as soon as it passes
--max-body-bytes (or at once from Content-Length); a body that takes longer than
--body-timeout seconds to arrive gets 408; both close the connection, so the rest of
the body is never read. Malformed JSON, NaN/Infinity literals and absurdly long numbers
get 400; wrong shapes, names and types get 422; more than --max-rows rows get 413. Every
error is a JSON object {"error": {"type", "message"}}, never a traceback. SIGTERM drains
in-flight requests (uvicorn's graceful shutdown), then exits 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from toolkit.runtime import InputError, Predictor

DEFAULT_MAX_BODY_BYTES = 8 << 20
DEFAULT_MAX_ROWS = 100_000
DEFAULT_BODY_TIMEOUT = 30.0
# A JSON number longer than this is refused before conversion: float64 needs at most
# 17 significant digits plus sign and exponent, and Python's int() of a 100,000-digit
# string costs real CPU (and raises past 4,300 digits).
MAX_NUMBER_CHARS = 64
# Batches up to this size run on the event loop (a few hundred microseconds at most);
# bigger ones go to a worker thread so one large request does not stall the others.
INLINE_ROWS = 10_000
ENV_PREFIX = "TOOLKIT_SERVE_"

# uvicorn configures this logger; startup lines land next to its own.
log = logging.getLogger("uvicorn.error")


@dataclass
class ServeSettings:
    model: str
    providers: str = "auto"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_rows: int = DEFAULT_MAX_ROWS
    body_timeout: float = DEFAULT_BODY_TIMEOUT

    def to_env(self) -> dict[str, str]:
        """How `toolkit serve` hands settings to each uvicorn worker process."""
        return {ENV_PREFIX + key.upper(): str(value) for key, value in asdict(self).items()}

    @classmethod
    def from_env(cls) -> ServeSettings:
        env = os.environ
        return cls(
            model=env[ENV_PREFIX + "MODEL"],
            providers=env.get(ENV_PREFIX + "PROVIDERS", "auto"),
            max_body_bytes=int(env.get(ENV_PREFIX + "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
            max_rows=int(env.get(ENV_PREFIX + "MAX_ROWS", DEFAULT_MAX_ROWS)),
            body_timeout=float(env.get(ENV_PREFIX + "BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT)),
        )


class RequestError(Exception):
    """An HTTP error answered as {"error": {"type", "message"}}.

    `close` ends the connection after the answer: for a body refused before it was read
    in full, since otherwise the server goes on reading (and discarding) the rest of it,
    however large, to keep the connection alive.
    """

    def __init__(self, status: int, kind: str, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.close = status, kind, message, close


def create_app_from_env() -> Any:
    """uvicorn's factory for worker processes (settings come from TOOLKIT_SERVE_*)."""
    return create_app(ServeSettings.from_env())


def create_app(settings: ServeSettings) -> Any:
    """The ASGI application: loads and warms the model once, at startup."""
    from contextlib import asynccontextmanager

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        path = Path(settings.model)
        predictor = Predictor(path, providers=settings.providers)
        predictor.predict([[0.0] * predictor.n_features])  # warm-up: first-run allocations
        state.update(
            predictor=predictor,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            started=time.monotonic(),
        )
        log.info(
            "toolkit serve: %s (sha256 %s) on %s, warm",
            path,
            state["sha256"][:16],
            predictor.provider,
        )
        yield

    app = FastAPI(
        title="toolkit prediction service",
        description="Predictions from an ONNX linear regressor exported by toolkit.",
        lifespan=lifespan,
    )

    def error(status: int, kind: str, message: str, close: bool = False) -> Response:
        return JSONResponse(
            {"error": {"type": kind, "message": message}},
            status_code=status,
            headers={"connection": "close"} if close else None,
        )

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> Response:
        return error(exc.status, exc.kind, exc.message, exc.close)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error(exc.status_code, "http", str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return error(500, "internal", "internal error; the server log has the details")

    async def predict_json(scope: dict[str, Any], receive: Any) -> bytes:
        body = await _read_body(scope, receive, settings.max_body_bytes, settings.body_timeout)
        payload = _parse_json(body)
        predictor: Predictor = state["predictor"]
        data, rows = _features(payload, body, settings.max_rows)
        try:
            if rows > INLINE_ROWS:
                result = await asyncio.to_thread(predictor.predict, data)
            else:
                result = predictor.predict(data)
        except InputError as exc:
            raise RequestError(422, "invalid_input", str(exc)) from exc
        predictions = {name: result[:, t].tolist() for t, name in enumerate(predictor.target_names)}
        return json.dumps({"predictions": predictions, "rows": rows}).encode()

    # Documents the endpoint in /openapi.json; requests are answered by _PredictRoute below.
    @app.post("/predict", openapi_extra={"requestBody": _REQUEST_SCHEMA}, responses=_RESPONSES)
    async def predict(request: Request) -> Response:
        """Predict rows (a list of feature lists) or columns (feature name -> values)."""
        return Response(
            await predict_json(request.scope, request.receive), media_type="application/json"
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and what is running."""
        predictor: Predictor = state["predictor"]
        return {
            "status": "ok",
            "provider": predictor.provider,
            "model": str(predictor.path),
            "model_sha256": state["sha256"],
            "uptime_s": round(time.monotonic() - state["started"], 3),
        }

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        """The model card and signature."""
        predictor: Predictor = state["predictor"]
        return {
            "features": predictor.feature_names,
            "targets": predictor.target_names,
            "dtype": str(predictor.dtype),
            "provider": predictor.provider,
            "model_sha256": state["sha256"],
            "card": predictor.metadata,
        }

    return _PredictRoute(app, predict_json)


class _PredictRoute:
    """POST /predict straight on ASGI; everything else (health, metadata, docs, lifespan)
    goes to the FastAPI app. FastAPI's routing and middleware cost ~80 us a request, a third
    of a 1-row request's server time (scripts/bench_serve.py)."""

    def __init__(self, app: FastAPI, predict_json: Any) -> None:
        self.app, self._predict_json = app, predict_json

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        status, close = 200, False
        try:
            body = await self._predict_json(scope, receive)
        except RequestError as exc:
            status, close = exc.status, exc.close
            body = _error_body(exc.kind, exc.message)
        except Exception:
            log.exception("unexpected error")
            status = 500
            body = _error_body("internal", "internal error; the server log has the details")
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _error_body(kind: str, message: str) -> bytes:
    return json.dumps({"error": {"type": kind, "message": message}}).encode()


async def _read_body(scope: dict[str, Any], receive: Any, limit: int, timeout: float) -> bytes:
    declared = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(
            413,
            "body_too_large",
            f"request body of {int(declared):,} bytes exceeds {limit:,}",
            close=True,
        )

    async def collect() -> bytes:
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError(
                    400, "disconnected", "the client closed the connection", close=True
                )
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    413, "body_too_large", f"request body exceeds {limit:,} bytes", close=True
                )
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    try:
        if sys.version_info >= (3, 11):  # no extra task per request, unlike wait_for
            async with asyncio.timeout(timeout):
                return await collect()
        return await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError as error:
        raise RequestError(
            408, "timeout", f"the request body did not arrive within {timeout:g} s", close=True
        ) from error


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows (NaN and Infinity are refused)")


def _number(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number of {len(text):,} characters (at most {MAX_NUMBER_CHARS})")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]!r} is out of the float64 range")
    return value


# Bytes that can appear in a JSON number, mapped to "#": a run longer than the limit in
# the translated body is a number (or a string) too long for the fast path.
_NUMBER_BYTES = bytes.maketrans(b"-+.0123456789eE", b"#" * 15)
_LONG_RUN = b"#" * (MAX_NUMBER_CHARS + 1)


def _parse_json(body: bytes, careful: bool = False) -> Any:
    """Parse with NaN/Infinity refused and integers read as floats.

    The careful path checks every number's length and range in Python (slow: it cost
    ~900 us of a 1,000-row request); it runs when a byte scan finds a run of number
    characters longer than MAX_NUMBER_CHARS, or, via `_finite_array`, when a fast parse
    produced an overflow to infinity.
    """
    if not body:
        raise RequestError(400, "invalid_json", "empty body; expected a JSON object")
    careful = careful or _LONG_RUN in body.translate(_NUMBER_BYTES)
    numbers: dict[str, Any] = (
        {"parse_float": _number, "parse_int": _number} if careful else {"parse_int": float}
    )
    try:
        return json.loads(body, parse_constant=_reject_constant, **numbers)
    except json.JSONDecodeError as exc:
        raise RequestError(400, "invalid_json", f"malformed JSON: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # from the hooks above, or absurd nesting
        raise RequestError(400, "invalid_json", f"invalid JSON value: {exc}") from exc


def _finite_array(values: Any, body: bytes, shape_ok: Any) -> np.ndarray | None:
    """`values` as a float64 array when that is safe and lossless, else None.

    numpy would quietly turn true into 1.0 and "1.5" into 1.5, so bodies holding booleans
    or string values keep the list path, where the Predictor's guard names the cell.
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        return None
    if not shape_ok(array):
        return None
    if not np.isfinite(array).all():  # only an overflow gets here: NaN literals are refused
        _parse_json(body, careful=True)  # raises the 400 naming the number
    return array


def _features(payload: Any, body: bytes, max_rows: int) -> tuple[Any, int]:
    """The input for Predictor.predict and its row count, or a 422 saying what is wrong."""
    if not isinstance(payload, dict) or len(payload.keys() & {"rows", "columns"}) != 1:
        raise RequestError(
            422,
            "invalid_request",
            'expected a JSON object with "rows" (a list of rows) or "columns" (feature name -> '
            "list of values)",
        )
    if "rows" in payload:
        data = payload["rows"]
        if not isinstance(data, list):
            raise RequestError(
                422, "invalid_request", f'"rows" must be a list, got {type(data).__name__}'
            )
        rows = len(data)
        if rows and not isinstance(data[0], list):
            raise RequestError(
                422, "invalid_request", '"rows" must be a list of rows, each a list of numbers'
            )
    else:
        data = payload["columns"]
        if not isinstance(data, dict):
            raise RequestError(422, "invalid_request", '"columns" must map feature names to lists')
        lengths = {len(v) if isinstance(v, list) else -1 for v in data.values()}
        if -1 in lengths:
            raise RequestError(422, "invalid_request", 'every "columns" value must be a list')
        rows = max(lengths, default=0)
    if rows > max_rows:
        raise RequestError(413, "too_many_rows", f"{rows:,} rows exceed the limit of {max_rows:,}")
    if rows == 0:
        raise RequestError(422, "invalid_request", "no rows to predict")
    # An array skips the Predictor's per-cell list checks (~100 us per 1,000 rows); only
    # bodies without booleans, nulls (numpy reads None as NaN) and quoted values (keys
    # aside) qualify.
    plain = b"true" not in body and b"false" not in body and b"null" not in body
    if plain and "rows" in payload and body.count(b'"') == 2:
        array = _finite_array(data, body, lambda a: a.ndim == 2)
        return (data if array is None else array), rows
    if plain and "columns" in payload and body.count(b'"') == 2 + 2 * len(data):
        arrays = {name: _finite_array(v, body, lambda a: a.ndim == 1) for name, v in data.items()}
        if all(a is not None for a in arrays.values()):
            return arrays, rows
    return data, rows


_REQUEST_SCHEMA = {
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
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Predictions by target name",
        "content": {"application/json": {"example": {"predictions": {"y": [2.0, 6.0]}, "rows": 2}}},
    },
    400: {"description": "Malformed JSON, NaN/Infinity, absurdly long numbers", **_ERROR},
    408: {"description": "The body arrived too slowly", **_ERROR},
    413: {"description": "Body or row count over the limit", **_ERROR},
    422: {"description": "Wrong shape, names or types", **_ERROR},
}


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def serve(
    settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1
) -> None:
    """Run uvicorn until SIGINT/SIGTERM; in-flight requests finish first."""
    import uvicorn

    Predictor(settings.model, providers=settings.providers)  # fail fast, before binding
    os.environ.update(settings.to_env())
    # After its graceful shutdown uvicorn raises the signal it caught again, for the
    # handler it found; with the default one SIGTERM would then kill the process (status
    # -15) after a clean drain. A drained SIGTERM is a normal stop: exit 0.
    signal.signal(signal.SIGTERM, _exit_quietly)
    uvicorn.run(
        "toolkit.serve:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_keep_alive=5,  # idle keep-alive connections are closed after 5 s
        timeout_graceful_shutdown=30,  # SIGTERM: stop accepting, finish in-flight, then exit
        limit_concurrency=1000,  # beyond this, 503 instead of unbounded queueing
        log_level="info",
    )
