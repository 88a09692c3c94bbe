"""Drive a real `toolkit serve` process over real HTTP on loopback: shared by tests/serve.

Every test talks to a server started as a subprocess (`python -m toolkit serve ...`) on a
free 127.0.0.1 port. Errors must be JSON objects {"error": {"type", "message"}} with the
status toolkit/serve documents, never a 500 or a traceback (the server logs are checked too).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import toolkit

# The server needs the `serve` extra and the tests httpx (both in the `dev` extra); without
# them every test module that imports this one is skipped with that reason.
httpx = pytest.importorskip("httpx", reason="needs httpx (pip install -e '.[dev]')")
pytest.importorskip("fastapi", reason="toolkit serve needs the 'serve' extra")
pytest.importorskip("uvicorn", reason="toolkit serve needs the 'serve' extra")

STARTUP_SECONDS = 60.0  # a cold start imports onnxruntime and fastapi; usually 2-4 s
REPO = Path(toolkit.__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def server_env() -> dict[str, str]:
    """This checkout's toolkit first, whatever the working directory of the server."""
    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def serve_command(model: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "toolkit", "serve", str(model), "--port", str(port)]


class Server:
    """A `toolkit serve` subprocess; its stdout and stderr go to a log file."""

    def __init__(self, model: Path, folder: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"serve-{self.port}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*serve_command(model, self.port), *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=folder,
                env=server_env(),
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, deadline_s: float = STARTUP_SECONDS) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"toolkit serve exited with {self.process.returncode} before answering "
                    f"GET /health; its log:\n{self.log()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/health", timeout=1, trust_env=False).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"toolkit serve did not answer GET /health in {deadline_s:g} s:\n{self.log()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, trust_env=False, **kwargs)


@contextlib.contextmanager
def running(model: Path, folder: Path, *options: str) -> Iterator[Server]:
    server = Server(model, folder, *options)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log and "unexpected error" not in log, log


def assert_error(response: httpx.Response, status: int, kind: str, *parts: str) -> str:
    """The response is the JSON error {"error": {"type": kind, "message": ...}}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.headers
    assert "Traceback" not in response.text
    body = response.json()
    assert list(body) == ["error"] and sorted(body["error"]) == ["message", "type"], body
    assert body["error"]["type"] == kind, body
    message = body["error"]["message"]
    for part in parts:
        assert part in message, (part, message)
    return message


# Raw HTTP over a socket: for what httpx will not do (stop half-way through a body).


def raw_connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def request_head(port: int, length: int | None, path: str = "/predict") -> bytes:
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()


def read_response(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one HTTP/1.1 response with a Content-Length."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response; got {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed inside the response body; got {body!r}"
        body += chunk
    return int(status_line.split()[1]), headers, body[:length]


def json_error(body: bytes) -> dict[str, str]:
    payload = json.loads(body)
    assert list(payload) == ["error"] and sorted(payload["error"]) == ["message", "type"]
    return payload["error"]
