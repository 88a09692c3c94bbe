"""toolkit/serve over HTTP: body size (declared and streamed), row count and slow bodies."""

from __future__ import annotations

import contextlib
import json
import select
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import (
    Server,
    assert_error,
    httpx,
    json_error,
    raw_connect,
    read_response,
    request_head,
    running,
)

# Small limits for the server that tests them.
SMALL_BODY = 4096
SMALL_ROWS = 10


@pytest.fixture(scope="module")
def model(seed_onnx: Path) -> Path:
    """The seed model: y = x1 + x2 - 1, float32."""
    return seed_onnx


@pytest.fixture(scope="module")
def small(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Small limits: 4 KiB bodies, 10 rows, 1 s to send a body, 1 s to send headers."""
    options = ["--max-body-bytes", str(SMALL_BODY), "--max-rows", str(SMALL_ROWS)]
    options += ["--body-timeout", "1", "--header-timeout", "1"]
    with running(model, tmp_path_factory.mktemp("small"), *options) as server:
        yield server


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


def test_slow_headers_are_408_at_the_header_timeout(small):
    """--header-timeout reaches the HTTP protocol of the worker (tests/serve/test_protocol.py
    has the details, on both of uvicorn's parsers)."""
    with raw_connect(small.port) as sock:
        started = time.monotonic()
        sock.sendall(request_head(small.port, 10)[:30])  # part of the request line, then nothing
        status, headers, answer = read_response(sock)
        elapsed = time.monotonic() - started
    assert status == 408 and headers["connection"] == "close"
    assert json_error(answer) == {
        "type": "timeout",
        "message": "the request headers did not arrive within 1 s",
    }
    assert 0.9 < elapsed < 5
