"""Run the app on uvicorn: fail fast on a bad model, drain in-flight requests on SIGTERM."""

from __future__ import annotations

import os
import signal
from typing import Any

from toolkit import defaults
from toolkit.runtime import Predictor
from toolkit.serve.settings import ServeSettings

# Worker processes import the app by this name (uvicorn's factory string).
APP_FACTORY = "toolkit.serve:create_app_from_env"


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def serve(
    settings: ServeSettings,
    host: str = defaults.SERVE_HOST,
    port: int = defaults.SERVE_PORT,
    workers: int = defaults.SERVE_WORKERS,
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
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_keep_alive=5,  # idle keep-alive connections are closed after 5 s
        timeout_graceful_shutdown=30,  # SIGTERM: stop accepting, finish in-flight, then exit
        limit_concurrency=1000,  # beyond this, 503 instead of unbounded queueing
        log_level="info",
    )
