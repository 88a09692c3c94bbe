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

Start reading at `app.py` (the ASGI app and its /predict fast path), then `body.py`
(reading and parsing request bodies), `settings.py`, `server.py` (uvicorn) and
`schema.py` (the OpenAPI documents). Worker processes import the app through
"toolkit.serve:create_app_from_env".
"""

from toolkit.errors import RequestError
from toolkit.serve.app import create_app, create_app_from_env
from toolkit.serve.server import serve
from toolkit.serve.settings import ServeSettings

__all__ = ["RequestError", "ServeSettings", "create_app", "create_app_from_env", "serve"]
