"""Run the app on uvicorn: fail fast on a busy port or a bad model, drain on SIGTERM."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import socket
from typing import Any

from toolkit import defaults
from toolkit.errors import UsageError
from toolkit.runtime import Predictor
from toolkit.serve.settings import ServeSettings

# Worker processes import the app and the HTTP protocol by these names.
APP_FACTORY = "toolkit.serve:create_app_from_env"
HTTP_PROTOCOL = "toolkit.serve.protocol:HTTPProtocol"
# Connections the kernel queues before uvicorn accepts them (uvicorn's default is 2048);
# Linux caps it at net.core.somaxconn, 4096 by default since 5.4. A burst of 10,000
# connections then waits in the queue or retries its SYN instead of being reset.
BACKLOG = 4096
# Open files a worker may hold (one per connection): the soft limit is raised to the hard
# one, up to this, as Go's runtime does; the usual soft default of 1,024 would refuse the
# 1,001st connection long before --max-concurrency matters.
MAX_OPEN_FILES = 1 << 20


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def check_port(host: str, port: int) -> None:
    """A UsageError when (host, port) cannot be bound: before the model is loaded."""
    if port == 0:
        return  # the kernel picks a free one
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise UsageError(f"cannot bind to --host {host!r}: {error.strerror}") from error
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            # As uvicorn does, so a port held only by closing connections counts as free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    message = f"port {port} on {host} is in use; choose another --port"
                else:
                    message = f"cannot bind port {port} on {host}: {error.strerror}"
                raise UsageError(message) from error


def raise_open_file_limit() -> int:
    """Raise this process's soft limit of open files to the hard one; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def serve(
    settings: ServeSettings,
    host: str = defaults.SERVE_HOST,
    port: int = defaults.SERVE_PORT,
    workers: int = defaults.SERVE_WORKERS,
) -> None:
    """Run uvicorn until SIGINT/SIGTERM; in-flight requests finish first."""
    import uvicorn

    from toolkit.serve.protocol import MAX_HEADER_BYTES

    check_port(host, port)  # before the model is loaded and warmed: seconds, not minutes
    Predictor(settings.model, providers=settings.providers)  # fail fast, before binding
    os.environ.update(settings.to_env())
    raise_open_file_limit()  # inherited by the worker processes
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
        http=HTTP_PROTOCOL,  # JSON errors and a header deadline (protocol.py)
        ws="none",  # no WebSocket routes: an upgrade request is plain HTTP (a JSON 404)
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        backlog=BACKLOG,
        timeout_keep_alive=5,  # idle keep-alive connections are closed after 5 s
        timeout_graceful_shutdown=30,  # SIGTERM: stop accepting, finish in-flight, then exit
        # No connection limit: uvicorn's counts open connections, so 1,000 idle ones made
        # every request a plain-text 503. The app limits requests in progress instead
        # (--max-concurrency, a JSON 503 with Retry-After).
        limit_concurrency=None,
        log_level="info",
    )
