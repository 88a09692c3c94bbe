"""The ASGI app: FastAPI for /health, /metadata and the docs; POST /predict on raw ASGI.

`create_app` loads and warms the model once, at startup (the lifespan), and answers every
error as {"error": {"type", "message"}}: RequestError with its own status, Starlette's
HTTP errors (404, 405) as type "http", anything unexpected as a logged 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from toolkit.errors import RequestError
from toolkit.runtime import InputError, Predictor
from toolkit.serve import schema
from toolkit.serve.body import features, parse_json, read_body
from toolkit.serve.settings import ServeSettings

# Batches up to this size run on the event loop (a few hundred microseconds at most);
# bigger ones go to a worker thread so one large request does not stall the others.
INLINE_ROWS = 10_000
INTERNAL_ERROR = "internal error; the server log has the details"

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
    )
    _add_error_handlers(app)
    predict_json = _predict_handler(settings, state)
    _add_routes(app, state, predict_json)
    return _PredictRoute(app, predict_json)


def _lifespan(settings: ServeSettings, state: dict[str, Any]) -> Any:
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

    return lifespan


def _error(status: int, kind: str, message: str, close: bool = False) -> Response:
    return JSONResponse(
        {"error": {"type": kind, "message": message}},
        status_code=status,
        headers={"connection": "close"} if close else None,
    )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> Response:
        return _error(exc.status, exc.kind, exc.message, exc.close)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, "http", str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return _error(500, "internal", INTERNAL_ERROR)


def _predict_handler(settings: ServeSettings, state: dict[str, Any]) -> Any:
    """The /predict work: ASGI scope and receive -> the JSON answer, or a RequestError."""

    async def predict_json(scope: dict[str, Any], receive: Any) -> bytes:
        body = await read_body(scope, receive, settings.max_body_bytes, settings.body_timeout)
        payload = parse_json(body)
        predictor: Predictor = state["predictor"]
        data, rows = features(payload, body, settings.max_rows)
        try:
            if rows > INLINE_ROWS:
                result = await asyncio.to_thread(predictor.predict, data)
            else:
                result = predictor.predict(data)
        except InputError as exc:
            raise RequestError(422, "invalid_input", str(exc)) from exc
        predictions = {name: result[:, t].tolist() for t, name in enumerate(predictor.target_names)}
        return json.dumps({"predictions": predictions, "rows": rows}).encode()

    return predict_json


def _add_routes(app: FastAPI, state: dict[str, Any], predict_json: Any) -> None:
    # Documents the endpoint in /openapi.json; requests are answered by _PredictRoute below.
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
        }


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
            body = _error_body("internal", INTERNAL_ERROR)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _error_body(kind: str, message: str) -> bytes:
    return json.dumps({"error": {"type": kind, "message": message}}).encode()
