"""The ASGI app: FastAPI for /health, /metadata and the docs; POST /predict and /explain on
raw ASGI.

`create_app` loads and warms the model once, at startup (the lifespan), and answers every
error as {"error": {"type", "message"}}: RequestError with its own status, Starlette's
HTTP errors (404, 405 with its Allow header) as type "http", a prediction that overflows
the model's dtype as 422, more requests in progress than --max-concurrency as 503 with
Retry-After, anything unexpected as a logged 500. (What uvicorn answers before the app
runs, malformed HTTP and slow or huge headers, is made JSON in protocol.py.)

A POST route on the fast path is `json_handler(settings, state, method, answer)` (body ->
rows -> `method(predictor, data)` -> `answer(...)` bytes) registered in `_Front`'s `posts`
by path, plus a FastAPI route that only documents it in /openapi.json (`_add_routes`).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from toolkit.errors import RequestError
from toolkit.runtime import InputError, Predictor
from toolkit.serve import schema, tables
from toolkit.serve.body import check_numbers, features, parse_json, read_body
from toolkit.serve.docs import add_docs
from toolkit.serve.explain import add_explain, explain_handler
from toolkit.serve.settings import ServeSettings

# Batches up to this size run on the event loop (a few hundred microseconds at most);
# bigger ones go to a worker thread so one large request does not stall the others.
INLINE_ROWS = 10_000
# A table model's rows are converted value by value in Python (about 1 us a row for a
# few columns), so fewer of them run inline.
TABLE_INLINE_ROWS = 1_000
INTERNAL_ERROR = "internal error; the server log has the details"
# Seconds a refused client is asked to wait (Retry-After), and between two log lines
# about refusals (a flood must not flood the log too).
RETRY_AFTER_S = 1
OVERLOAD_LOG_INTERVAL_S = 10.0

# uvicorn configures this logger; startup lines land next to its own.
log = logging.getLogger("uvicorn.error")


def create_app_from_env() -> Any:
    """uvicorn's factory for worker processes (settings come from TOOLKIT_SERVE_*)."""
    return create_app(ServeSettings.from_env())


def create_app(settings: ServeSettings) -> Any:
    """The ASGI application: loads and warms the model once, at startup."""
    # Filled by the lifespan: predictor, sha256 (of the model file), started (monotonic).
    state: dict[str, Any] = {}
    app = FastAPI(
        title="toolkit prediction service",
        description="Predictions from an ONNX linear regressor exported by toolkit.",
        lifespan=_lifespan(settings, state),
        docs_url=None,  # served from the package's own files (docs.py), not a CDN
        redoc_url=None,
    )
    _add_error_handlers(app)
    _table_openapi(app, state)
    predict_json = _predict_handler(settings, state)
    _add_routes(app, state, predict_json)
    explain_json = explain_handler(settings, state, json_handler)
    add_explain(app, explain_json)
    add_docs(app)
    posts = {"/predict": predict_json, "/explain": explain_json}
    return _Front(app, posts, settings.max_concurrency)


def _table_openapi(app: FastAPI, state: dict[str, Any]) -> None:
    """For a table model, /openapi.json's request bodies type each raw column (the
    document is made on its first request, once the model is loaded)."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = default()
        predictor = state.get("predictor")
        if predictor is not None and predictor.table is not None:
            body = tables.request_schema(predictor.table)
            for path in ("/predict", "/explain"):
                operation = document.get("paths", {}).get(path, {}).get("post")
                if operation is not None:
                    operation["requestBody"] = body
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _lifespan(settings: ServeSettings, state: dict[str, Any]) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        path = Path(settings.model)
        predictor = Predictor(path, providers=settings.providers)
        # Warm-up: first-run allocations.
        if predictor.table is None:
            predictor.predict([[0.0] * predictor.n_features])
        else:
            predictor.predict(tables.warm_row(predictor))
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
        # What is loaded by now lives as long as the server: frozen, the collector stops
        # re-scanning it each time requests' garbage sets off a full collection (1,000-row
        # requests: about 15% less server CPU each, scripts/bench_serve.py).
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()

    return lifespan


def _error(
    status: int, kind: str, message: str, close: bool = False, headers: Any = None
) -> Response:
    return JSONResponse(
        {"error": {"type": kind, "message": message}},
        status_code=status,
        headers={**(headers or {}), **({"connection": "close"} if close else {})},
    )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> Response:
        return _error(exc.status, exc.kind, exc.message, exc.close)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, "http", str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return _error(500, "internal", INTERNAL_ERROR)


def _predict_handler(settings: ServeSettings, state: dict[str, Any]) -> Any:
    """The /predict work: ASGI scope and receive -> the JSON answer, or a RequestError."""
    table = (tables.counted, _table_answer)
    return json_handler(settings, state, Predictor.predict, _answer, table)


def json_handler(
    settings: ServeSettings,
    state: dict[str, Any],
    method: Callable[[Predictor, Any], np.ndarray],
    answer: Callable[[Predictor, np.ndarray, int], bytes],
    table: tuple[Callable[[Predictor, Any], Any], Callable[[Predictor, Any, int], bytes]]
    | None = None,
) -> Callable[[dict[str, Any], Any], Awaitable[bytes]]:
    """A POST route's work on the fast path: read and check the JSON body (rows or
    columns), run `method(predictor, data)` on it (inline, or in a thread for a big batch)
    and encode `answer(predictor, result, rows)`; every refusal is a RequestError.

    A table model's body (rows, columns or records of raw values: serve/tables.py) goes
    to `table`'s method instead, and its result to `table`'s answer."""

    async def handle(scope: dict[str, Any], receive: Any) -> bytes:
        body = await read_body(scope, receive, settings.max_body_bytes, settings.body_timeout)
        payload = parse_json(body)
        predictor: Predictor = state["predictor"]
        try:
            if predictor.table is not None and table is not None:
                data, rows = tables.table_features(payload, settings.max_rows)
                (run, reply), inline = table, TABLE_INLINE_ROWS
            else:
                data, rows = features(payload, body, settings.max_rows, predictor.dtype)
                run, reply, inline = method, answer, INLINE_ROWS
            try:
                if rows > inline:
                    result = await asyncio.to_thread(run, predictor, data)
                else:
                    result = run(predictor, data)
            except InputError as exc:
                raise RequestError(422, "invalid_input", str(exc)) from exc
            return reply(predictor, result, rows)
        except RequestError:
            # A number outside float64 is a 400 whatever else is wrong with the body:
            # the fast parse read it as infinity, which the checks above may not reach.
            check_numbers(body)
            raise

    return handle


def _json_encoder() -> Callable[[Any], str]:
    """json.dumps(obj, allow_nan=False), built once: the finiteness check then costs nothing
    when all is well. json.dumps with an option builds an encoder per call, and even the
    default one builds its C encoder per call; this builds it once (1 row: 2.3 -> 1.4 us).
    """
    encoder = json.JSONEncoder(allow_nan=False)
    make = getattr(json.encoder, "c_make_encoder", None)  # None without the C accelerator
    try:
        # What JSONEncoder.iterencode builds for these settings (no circular check: the
        # answers are plain dicts of lists).
        chunks = make(
            None, encoder.default, json.encoder.encode_basestring_ascii, None, ": ", ", ",
            False, False, False,
        )  # fmt: skip
    except TypeError:  # no accelerator, or another signature: the public path
        return encoder.encode
    return lambda obj: "".join(chunks(obj, 0))


_encode = _json_encoder()


def _answer(predictor: Predictor, result: np.ndarray, rows: int) -> bytes:
    columns = result.T.tolist()
    predictions = dict(zip(predictor.target_names, columns, strict=True))
    try:
        return _encode({"predictions": predictions, "rows": rows}).encode()
    except ValueError as exc:  # finite inputs whose prediction does not fit the dtype
        message = _overflow_message(predictor, result)
        raise RequestError(422, "prediction_overflow", message) from exc


def _table_answer(predictor: Predictor, counted: Any, rows: int) -> bytes:
    """A table model's answer: the predictions, and how many cells held unknown levels."""
    result, unknown = counted
    columns = result.T.tolist()
    predictions = dict(zip(predictor.target_names, columns, strict=True))
    document = {"predictions": predictions, "rows": rows, "unknown_levels": int(unknown.sum())}
    try:
        return _encode(document).encode()
    except ValueError as exc:
        message = _overflow_message(predictor, result)
        raise RequestError(422, "prediction_overflow", message) from exc


def _overflow_message(predictor: Predictor, result: np.ndarray) -> str:
    row, target = np.argwhere(~np.isfinite(result))[0]
    dtype = predictor.dtype
    return (
        f"the prediction for row {row + 1}, target {predictor.target_names[target]!r}, "
        f"overflowed the model's {dtype} (largest finite value {np.finfo(dtype).max:.6g}); "
        "the inputs are too large for this model"
    )


def _add_routes(app: FastAPI, state: dict[str, Any], predict_json: Any) -> None:
    # Documents the endpoint in /openapi.json; requests are answered by _Front below.
    @app.post("/predict", openapi_extra={"requestBody": schema.REQUEST}, responses=schema.RESPONSES)
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
            **tables.metadata(predictor),  # a table model's raw inputs and plan
        }


class _Front:
    """The ASGI entry point: the request limit, then the POST routes in `posts` (path ->
    json_handler) straight on ASGI; everything else (health, metadata, docs, lifespan,
    other methods) goes to the FastAPI app.

    Requests in progress past `limit` (per worker) get an immediate JSON 503 with
    Retry-After and the connection closes; GET /health is always answered, so a busy
    server is not mistaken for a dead one. Idle connections cost no request slot (uvicorn's
    limit_concurrency counted connections: 1,000 idle ones refused every request).
    FastAPI's routing and middleware cost ~80 us a request, a third of a 1-row request's
    server time (scripts/bench_serve.py), hence the direct POST routes."""

    def __init__(self, app: FastAPI, posts: dict[str, Any], limit: int) -> None:
        self.app, self._posts, self.limit = app, posts, limit
        self.in_progress = 0
        self._refused, self._logged_at = 0, -OVERLOAD_LOG_INTERVAL_S

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.limit:
            await self._refuse(send)
            return
        self.in_progress += 1
        try:
            handle = self._posts.get(scope["path"]) if scope["method"] == "POST" else None
            if handle is None:
                await self.app(scope, receive, send)
            else:
                await self._post(handle, scope, receive, send)
        finally:
            self.in_progress -= 1

    async def _post(self, handle: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
        status, close = 200, False
        try:
            body = await handle(scope, receive)
        except RequestError as exc:
            status, close = exc.status, exc.close
            body = _error_body(exc.kind, exc.message)
        except Exception:
            log.exception("unexpected error")
            status = 500
            body = _error_body("internal", INTERNAL_ERROR)
        await _send_json(send, status, body, [(b"connection", b"close")] if close else [])

    async def _refuse(self, send: Any) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= OVERLOAD_LOG_INTERVAL_S:
            log.warning(
                "over --max-concurrency %d: %d request(s) answered 503", self.limit, self._refused
            )
            self._refused, self._logged_at = 0, now
        message = (
            f"the server is busy: {self.limit:,} requests are in progress, the most it takes "
            f"at once; retry after {RETRY_AFTER_S} s"
        )
        headers = [(b"retry-after", b"%d" % RETRY_AFTER_S), (b"connection", b"close")]
        await _send_json(send, 503, _error_body("overloaded", message), headers)


async def _send_json(send: Any, status: int, body: bytes, extra: list[Any]) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": body})


def _error_body(kind: str, message: str) -> bytes:
    return json.dumps({"error": {"type": kind, "message": message}}).encode()
