"""toolkit/serve.py: the real `toolkit serve` process, over real HTTP on loopback.

Every test talks to a server started as a subprocess (`python -m toolkit serve ...`) on a
free 127.0.0.1 port. Errors must be JSON objects {"error": {"type", "message"}} with the
status serve.py documents, never a 500 or a traceback (the server logs are checked too).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import toolkit
from toolkit.runtime import Predictor

# The server needs the `serve` extra and the tests httpx (both in the `dev` extra); without
# them this module is skipped with that reason instead of failing to import.
httpx = pytest.importorskip("httpx", reason="needs httpx (pip install -e '.[dev]')")
pytest.importorskip("fastapi", reason="toolkit serve needs the 'serve' extra")
pytest.importorskip("uvicorn", reason="toolkit serve needs the 'serve' extra")

# The load test's duration; TOOLKIT_TEST_LOAD_SECONDS=60 makes a longer soak.
LOAD_SECONDS = float(os.environ.get("TOOLKIT_TEST_LOAD_SECONDS", "20"))
LOAD_CLIENTS = 16
STARTUP_SECONDS = 60.0  # a cold start imports onnxruntime and fastapi; usually 2-4 s
REPO = Path(toolkit.__file__).resolve().parents[1]
# Small limits for the server that tests them.
SMALL_BODY = 4096
SMALL_ROWS = 10


@pytest.fixture(scope="module")
def model(seed_onnx: Path) -> Path:
    """The seed model: y = x1 + x2 - 1, float32."""
    return seed_onnx


@pytest.fixture(scope="module")
def predictor(model: Path) -> Predictor:
    return Predictor(model)


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


@pytest.fixture(scope="module")
def server(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Default settings; shared by most tests."""
    with running(model, tmp_path_factory.mktemp("serve")) as server:
        yield server


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def small(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Small limits: 4 KiB bodies, 10 rows, 1 s to send a body."""
    options = ["--max-body-bytes", str(SMALL_BODY), "--max-rows", str(SMALL_ROWS)]
    options += ["--body-timeout", "1"]
    with running(model, tmp_path_factory.mktemp("small"), *options) as server:
        yield server


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


# 1. Predictions, health, metadata, documentation.


def test_predict_rows_and_columns_equal_the_predictor(client, predictor):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1000, 1000, (257, 2))
    expected = predictor.predict(x.tolist())[:, 0].tolist()

    by_rows = client.post("/predict", json={"rows": x.tolist()})
    assert by_rows.status_code == 200, by_rows.text
    assert by_rows.json() == {"predictions": {"y": expected}, "rows": 257}

    columns = {"x2": x[:, 1].tolist(), "x1": x[:, 0].tolist()}  # by name, in any order
    by_columns = client.post("/predict", json={"columns": columns})
    assert by_columns.status_code == 200, by_columns.text
    assert by_columns.json() == {"predictions": {"y": expected}, "rows": 257}


def test_predict_one_row_and_integers(client, predictor):
    response = client.post("/predict", json={"rows": [[1, 2]]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": {"y": [2.0]}, "rows": 1}  # 1 + 2 - 1
    single = [[0.1, -7.25]]
    response = client.post("/predict", json={"rows": single})
    assert response.json()["predictions"]["y"] == predictor.predict(single)[:, 0].tolist()


def test_big_batch_runs_off_the_event_loop_and_is_exact(client, predictor):
    """More than serve.INLINE_ROWS rows go to a worker thread: same answers."""
    x = np.random.default_rng(2).uniform(-1e6, 1e6, (25_000, 2)).tolist()
    response = client.post("/predict", json={"rows": x})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"]["y"] == predictor.predict(x)[:, 0].tolist()


def test_default_row_limit_is_100_000(client):
    response = client.post("/predict", content=b'{"rows": [' + b"[0,0]," * 100_000 + b"[0,0]]}")
    assert_error(response, 413, "too_many_rows", "100,001 rows exceed the limit of 100,000")


def test_health(client, model, predictor):
    response = client.get("/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok"
    assert health["provider"] == predictor.provider == "CPUExecutionProvider"
    assert health["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert Path(health["model"]) == model
    assert isinstance(health["uptime_s"], float) and health["uptime_s"] >= 0
    time.sleep(0.05)
    assert client.get("/health").json()["uptime_s"] > health["uptime_s"]


def test_metadata_is_the_card(client, model, predictor):
    response = client.get("/metadata")
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["features"] == ["x1", "x2"] and metadata["targets"] == ["y"]
    assert metadata["dtype"] == "float32"
    assert metadata["provider"] == "CPUExecutionProvider"
    assert metadata["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert metadata["card"] == predictor.metadata
    assert json.loads(metadata["card"]["feature_names"]) == ["x1", "x2"]


def test_openapi_and_docs(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/predict", "/health", "/metadata"} <= set(paths)
    predict = paths["/predict"]["post"]
    assert "application/json" in predict["requestBody"]["content"]
    assert {"200", "400", "408", "413", "422"} <= set(predict["responses"])
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in docs.text


def test_unknown_paths_and_methods_are_json_errors(client):
    assert_error(client.get("/nope"), 404, "http", "Not Found")
    assert_error(client.get("/predict"), 405, "http", "Method Not Allowed")


# 3. Bad input: 400 for what is not JSON as serve.py accepts it, 422 for the wrong content.

LONG_NUMBER = "1" * 5000


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        (b'{"rows": [[1, 2]', ["malformed JSON", "Expecting"]),
        (b"{rows: [[1, 2]]}", ["malformed JSON"]),
        (b'{"rows": [[1, 2]]} trailing', ["malformed JSON", "Extra data"]),
        (b'{"rows": [[NaN, 2]]}', ["NaN is not a number JSON allows"]),
        (b'{"rows": [[1, Infinity]]}', ["Infinity is not a number JSON allows"]),
        (b'{"rows": [[-Infinity, 1]]}', ["-Infinity is not a number JSON allows"]),
        (b'{"columns": {"x1": [NaN], "x2": [1]}}', ["NaN is not a number JSON allows"]),
        (f'{{"rows": [[{LONG_NUMBER}, 2]]}}'.encode(), ["5,000 characters", "at most 64"]),
        (f'{{"rows": [[0.{LONG_NUMBER}, 2]]}}'.encode(), ["5,002 characters"]),
        (b'{"rows": [[1e999, 2]]}', ["'1e999' is out of the float64 range"]),
        (b'{"rows": [[-1e999, 2]]}', ["'-1e999' is out of the float64 range"]),
        (b"", ["empty body"]),
        (b"[" * 100_000, ["invalid JSON value"]),  # nesting past the recursion limit
        (b'{"rows": [[1, 2]], "\xff": 1}', ["invalid JSON value"]),  # not UTF-8
    ],
    ids=[
        "truncated",
        "unquoted-key",
        "trailing-data",
        "nan",
        "infinity",
        "minus-infinity",
        "nan-in-columns",
        "5000-digit-integer",
        "5000-digit-fraction",
        "1e999",
        "minus-1e999",
        "empty",
        "deep-nesting",
        "not-utf8",
    ],
)
def test_invalid_json_is_400(client, body, parts):
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json", *parts)


SHAPE = 'expected a JSON object with "rows" (a list of rows) or "columns"'


@pytest.mark.parametrize(
    ("payload", "kind", "parts"),
    [
        ({"rows": [[1, 2, 3]]}, "invalid_input", ["expected 2 features per row (x1, x2), got 3"]),
        ({"rows": [[1]]}, "invalid_input", ["expected 2 features per row (x1, x2), got 1"]),
        ({"rows": [[1, 2], [1]]}, "invalid_input", ["rows of equal length", "ragged"]),
        ({"rows": [[[1, 2]]]}, "invalid_input", ["got an array of shape (1, 1, 2)"]),
        ({"rows": [[1, "two"]]}, "invalid_input", ["row 1, column 'x2': expected a number"]),
        ({"rows": [[1, "2"]]}, "invalid_input", ["expected numbers, got an array of dtype <U"]),
        ({"rows": [[1, 2], ["a", 2]]}, "invalid_input", ["row 2, column 'x1'", "got 'a'"]),
        ({"rows": [[True, 2]]}, "invalid_input", ["row 1, column 'x1'", "got True"]),
        ({"rows": [[1, 2], [3, False]]}, "invalid_input", ["row 2, column 'x2'", "got False"]),
        ({"rows": [[{"a": 1}, 2]]}, "invalid_input", ["row 1, column 'x1'", "expected a number"]),
        ({"rows": [[None, 2]]}, "invalid_input", ["row 1, column 'x1'", "got None"]),
        ({"rows": [[1e39, 2]]}, "invalid_input", ["beyond the range of the model's float32"]),
        ({"rows": [[1, 2], 3]}, "invalid_input", ["ragged"]),
        ({"rows": [1, 2]}, "invalid_request", ['"rows" must be a list of rows']),
        ({"rows": {"x1": 1}}, "invalid_request", ['"rows" must be a list, got dict']),
        ({"rows": "1,2"}, "invalid_request", ['"rows" must be a list, got str']),
        ({"rows": []}, "invalid_request", ["no rows to predict"]),
        ({"columns": {"x1": [1]}}, "invalid_input", ["expected columns x1, x2; missing 'x2'"]),
        (
            {"columns": {"x1": [1], "x2": [2], "x3": [3]}},
            "invalid_input",
            ["expected columns x1, x2; unknown 'x3'"],
        ),
        (
            {"columns": {"a": [1], "b": [2]}},
            "invalid_input",
            ["missing 'x1', 'x2' and unknown 'a', 'b'"],
        ),
        ({"columns": {"x1": [1], "x2": [1, 2]}}, "invalid_input", ["x1: 1, x2: 2"]),
        ({"columns": {"x1": [1], "x2": ["b"]}}, "invalid_input", ["column 'x2'", "got 'b'"]),
        ({"columns": {"x1": [1], "x2": [True]}}, "invalid_input", ["got booleans"]),
        ({"columns": {"x1": [1, 2], "x2": [3, False]}}, "invalid_input", ["column 'x2'", "False"]),
        ({"columns": {"x1": [[1]], "x2": [[2]]}}, "invalid_input", ["column 'x1'", "(1, 1)"]),
        ({"columns": {"x1": 1, "x2": 2}}, "invalid_request", ['every "columns" value must be']),
        ({"columns": [[1, 2]]}, "invalid_request", ['"columns" must map feature names']),
        ({"columns": {}}, "invalid_request", ["no rows to predict"]),
        ({"columns": {"x1": [], "x2": []}}, "invalid_request", ["no rows to predict"]),
        ({}, "invalid_request", [SHAPE]),
        ({"data": [[1, 2]]}, "invalid_request", [SHAPE]),
        ({"rows": [[1, 2]], "columns": {"x1": [1], "x2": [2]}}, "invalid_request", [SHAPE]),
        ([[1, 2]], "invalid_request", [SHAPE]),
        ("rows", "invalid_request", [SHAPE]),
        (3, "invalid_request", [SHAPE]),
        (None, "invalid_request", [SHAPE]),
    ],
)
def test_wrong_content_is_422(client, payload, kind, parts):
    response = client.post("/predict", content=json.dumps(payload).encode())
    assert_error(response, 422, kind, *parts)


def test_server_still_healthy_after_bad_input(client):
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/predict", json={"rows": [[2, 2]]}).json()["predictions"] == {"y": [3.0]}


# 2. and 3. Limits: body size (declared and streamed), rows, and slow bodies.


def test_declared_body_over_the_limit_is_413_before_the_body_is_sent(small):
    with raw_connect(small.port) as sock:
        sock.sendall(request_head(small.port, 10**9))  # headers only: 1 GB promised, none sent
        started = time.monotonic()
        status, headers, body = read_response(sock)
    # 413, not the 408 of --body-timeout: decided from the header alone.
    assert status == 413
    assert time.monotonic() - started < 5
    assert json_error(body) == {
        "type": "body_too_large",
        "message": f"request body of 1,000,000,000 bytes exceeds {SMALL_BODY:,}",
    }
    assert headers["connection"] == "close"


def test_body_over_the_limit_with_httpx_is_413(small):
    with small.client() as client:
        big = b"[" + b"0," * SMALL_BODY + b"0]"
        response = client.post("/predict", content=big)
        assert_error(response, 413, "body_too_large", f"of {len(big):,} bytes exceeds")
        assert response.headers["connection"] == "close"
        # 8 MiB: more than the socket buffers hold, so the server hangs up mid-upload,
        # and the client still reads the 413.
        response = client.post("/predict", content=b" " * (8 << 20))
        assert_error(response, 413, "body_too_large", f"of {8 << 20:,} bytes exceeds")
        at_limit = json.dumps({"rows": [[1, 2]]}).encode().ljust(SMALL_BODY)  # spaces are JSON
        assert client.post("/predict", content=at_limit).json()["predictions"] == {"y": [2.0]}


def test_chunked_body_over_the_limit_is_413_without_reading_it_all(small):
    chunks, chunk = 2000, b" " * 1024  # 2 MB, sent over 10 s or more
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(chunks):
            sent += 1
            yield chunk
            time.sleep(0.005)

    started = time.monotonic()
    with small.client() as client:
        response = client.post("/predict", content=body())
    elapsed = time.monotonic() - started
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "body_too_large", f"request body exceeds {SMALL_BODY:,} bytes")
    assert sent < chunks / 4, f"the server read {sent} of {chunks} chunks before answering"
    assert elapsed < 5
    assert httpx.get(small.url + "/health", trust_env=False).status_code == 200


def test_chunked_body_over_the_limit_raw(small):
    """The 413 arrives while the client is still sending, and the server hangs up."""
    with raw_connect(small.port) as sock:
        sock.sendall(request_head(small.port, None))
        piece = b"400\r\n" + b" " * 1024 + b"\r\n"  # chunks of 1 KiB
        sent = 0
        while sent < 100 and not select.select([sock], [], [], 0.02)[0]:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(piece)
            sent += 1
        status, headers, body = read_response(sock)
        assert status == 413
        assert sent <= SMALL_BODY // 1024 + 5
        assert json_error(body)["type"] == "body_too_large"
        assert headers["connection"] == "close"
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""  # closed: no more body is read


def test_more_rows_than_the_limit_is_413(small):
    with small.client() as client:
        rows = [[float(i), 1.0] for i in range(SMALL_ROWS)]
        response = client.post("/predict", json={"rows": rows})
        assert response.status_code == 200 and response.json()["rows"] == SMALL_ROWS
        message = f"{SMALL_ROWS + 1:,} rows exceed the limit of {SMALL_ROWS:,}"
        response = client.post("/predict", json={"rows": [*rows, [1.0, 1.0]]})
        assert_error(response, 413, "too_many_rows", message)
        columns = {"x1": [1.0] * (SMALL_ROWS + 1), "x2": [1.0] * (SMALL_ROWS + 1)}
        assert_error(client.post("/predict", json={"columns": columns}), 413, "too_many_rows")


def test_slow_body_is_408(small):
    with raw_connect(small.port) as sock:
        body = json.dumps({"rows": [[1, 2]] * 4}).encode()
        started = time.monotonic()
        sock.sendall(request_head(small.port, len(body)) + body[:10])  # then nothing
        status, headers, answer = read_response(sock, timeout=10)
        elapsed = time.monotonic() - started
    assert status == 408
    assert json_error(answer) == {
        "type": "timeout",
        "message": "the request body did not arrive within 1 s",
    }
    assert headers["connection"] == "close"
    assert 0.9 < elapsed < 5
    assert httpx.get(small.url + "/health", trust_env=False).status_code == 200


def test_body_trickling_in_is_408_even_if_every_piece_is_on_time(small):
    with raw_connect(small.port) as sock:
        body = json.dumps({"rows": [[1, 2]] * 50}).encode()
        sock.sendall(request_head(small.port, len(body)))
        started = time.monotonic()
        for byte in body:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(bytes([byte]))
            if select.select([sock], [], [], 0.1)[0]:
                break
        status, _, answer = read_response(sock)
    assert status == 408 and json_error(answer)["type"] == "timeout"
    assert time.monotonic() - started < 5


# 5. SIGTERM: finish what is in flight, refuse new connections, exit 0.


def test_sigterm_drains_in_flight_requests(model, tmp_path, predictor):
    rows = np.random.default_rng(5).uniform(-10, 10, (100, 2)).tolist()
    body = json.dumps({"rows": rows}).encode()
    with running(model, tmp_path) as server:
        with raw_connect(server.port) as sock:
            sock.sendall(request_head(server.port, len(body)) + body[: len(body) // 2])
            time.sleep(0.3)  # the request is in the handler, waiting for the rest
            server.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 5
            while not refuses_connections(server.port):  # the listener closes at once
                assert time.monotonic() < deadline, "new connections still accepted"
                time.sleep(0.05)
            assert server.process.poll() is None, "exited before the in-flight request ended"
            sock.sendall(body[len(body) // 2 :])
            status, _, answer = read_response(sock)
        assert status == 200, answer
        assert json.loads(answer) == {
            "predictions": {"y": predictor.predict(rows)[:, 0].tolist()},
            "rows": 100,
        }
        assert server.process.wait(timeout=5) == 0, server.log()
        assert refuses_connections(server.port)
    log = server.log()
    assert "Waiting for connections to close" in log or "Shutting down" in log, log
    assert "Finished server process" in log


def test_sigterm_when_idle_exits_0_quickly(model, tmp_path):
    with running(model, tmp_path) as server:
        server.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert server.process.wait(timeout=5) == 0, server.log()
        assert time.monotonic() - started < 5
        assert refuses_connections(server.port)


# 7. Several worker processes.


def test_two_workers_start_answer_and_stop(model, tmp_path, predictor):
    with running(model, tmp_path, "--workers", "2") as server, server.client() as client:
        assert client.get("/health").json()["status"] == "ok"
        rows = [[1.5, -2.25], [3.0, 4.0]]
        for _ in range(10):  # spread over both workers
            with server.client() as fresh:
                response = fresh.post("/predict", json={"rows": rows})
            assert response.json()["predictions"]["y"] == predictor.predict(rows)[:, 0].tolist()
        log = server.log()
        assert log.count("Started parent process") == 1, log
        assert log.count("Started server process") == 2, log  # one per worker
        assert server.stop() == 0, server.log()


# 8. A model that cannot be served fails before the port is bound.


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.onnx", None, "Error: model '{path}' does not exist."),
        ("garbage.onnx", b"not a model", "Error: '{path}' is not a readable ONNX model"),
    ],
)
def test_unusable_model_fails_fast_with_a_clean_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    port = free_port()
    started = time.monotonic()
    result = subprocess.run(
        serve_command(path, port),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=server_env(),
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(message.format(path=path)), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert "Uvicorn running" not in result.stderr
    assert time.monotonic() - started < 30
    assert refuses_connections(port)


# 6. Load: 16 clients for LOAD_SECONDS, 1-row and 1000-row requests, all exact.


@pytest.mark.slow
def test_load_all_answers_exact(server, predictor, capsys):
    rng = np.random.default_rng(6)
    pool: list[tuple[bytes, list[float]]] = []
    for size in [1] * 64 + [1000] * 64:
        rows = rng.uniform(-1e4, 1e4, (size, 2)).tolist()
        pool.append((json.dumps({"rows": rows}).encode(), predictor.predict(rows)[:, 0].tolist()))
    counts = [0] * LOAD_CLIENTS
    failures: list[str] = []
    deadline = time.monotonic() + LOAD_SECONDS

    def worker(index: int) -> None:
        choose = random.Random(index).randrange
        with server.client(headers={"content-type": "application/json"}) as client:
            while time.monotonic() < deadline and not failures:
                body, expected = pool[choose(len(pool))]
                try:
                    response = client.post("/predict", content=body)
                except httpx.HTTPError as error:
                    failures.append(f"client {index}: {error!r}")
                    return
                if response.status_code != 200:
                    failures.append(f"client {index}: {response.status_code} {response.text}")
                elif response.json()["predictions"]["y"] != expected:
                    failures.append(f"client {index}: an answer differs from Predictor.predict")
                else:
                    counts[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(LOAD_CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=LOAD_SECONDS + 60)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "a load client hung"
    assert not failures, failures[:5]
    total = sum(counts)
    assert total > LOAD_CLIENTS and all(counts), counts
    with capsys.disabled():  # shown without -s
        print(
            f"\nload: {total} requests in {elapsed:.1f} s from {LOAD_CLIENTS} clients = "
            f"{total / elapsed:.0f} requests/s (half 1-row, half 1000-row), all exact"
        )
    assert server.process.poll() is None
