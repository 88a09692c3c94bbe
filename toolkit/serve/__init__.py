"""`toolkit serve`: a Predictor behind HTTP, on uvicorn with FastAPI.

Endpoints:
    POST /predict   {"rows": [[...], ...]} or {"columns": {"x1": [...], ...}}
                    -> {"predictions": {"y": [...]}, "rows": n}; a table model also
                    takes {"records": [{...}, ...]} of raw values and answers
                    "unknown_levels" (tables.py)
    POST /explain   the same body -> predictions, contributions, stderr, lower, upper
                    (a model exported with --explain; 404 otherwise; explain.py)
    GET  /health    status, provider, model SHA-256, uptime
    GET  /metadata  the model card and signature
    GET  /docs      OpenAPI documentation (/openapi.json)

Hardening: the body is read in pieces and refused with 413 as soon as it passes
--max-body-bytes (or at once from Content-Length); a body that takes longer than
--body-timeout seconds to arrive gets 408; both close the connection, so the rest of
the body is never read. Malformed JSON, NaN/Infinity literals and absurdly long numbers
get 400 (a number outside float64 always, whatever else is wrong); wrong shapes, names and
types get 422, and so does a prediction that overflows the model's dtype; more than
--max-rows rows get 413. More than --max-concurrency requests in progress get an immediate
503 with Retry-After (idle connections take no slot). Before the app: malformed HTTP gets
400, headers over 16 KiB 431, and headers slower than --header-timeout 408 (protocol.py).
Every error is a JSON object {"error": {"type", "message"}}, never a traceback. SIGTERM
drains in-flight requests (uvicorn's graceful shutdown), then exits 0. /docs is Swagger
UI from the package's own files (docs.py): no CDN.

Start reading at `app.py` (the ASGI app, its request limit and /predict fast path), then
`body.py` (reading and parsing request bodies), `protocol.py` (what uvicorn answers before
the app), `settings.py`, `server.py` (uvicorn, the port check), `docs.py` and `schema.py`
(the OpenAPI documents). Worker processes import the app through
"toolkit.serve:create_app_from_env".
"""

from toolkit.errors import RequestError
from toolkit.serve.app import create_app, create_app_from_env
from toolkit.serve.server import serve
from toolkit.serve.settings import ServeSettings

__all__ = ["RequestError", "ServeSettings", "create_app", "create_app_from_env", "serve"]
