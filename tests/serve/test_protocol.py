"""toolkit/serve/protocol.py: what uvicorn answers before the app, on both of its parsers.

Each protocol class (httptools, the one `toolkit serve` runs, and h11, uvicorn's fallback)
runs in-process on a uvicorn server on loopback with a tiny app, and is driven over raw
sockets: malformed requests and oversized headers get JSON errors, headers that trickle in
get 408 at the deadline, a silent connection is closed, and ordinary, keep-alive and
pipelined requests are untouched.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from serving import free_port, json_error, raw_connect, read_response

uvicorn = pytest.importorskip("uvicorn", reason="toolkit serve needs the 'serve' extra")

from toolkit.serve import protocol  # noqa: E402
from toolkit.serve.protocol import MAX_HEADER_BYTES  # noqa: E402
from toolkit.serve.settings import ENV_PREFIX  # noqa: E402

HEADER_TIMEOUT = 0.5
CLASSES = {"h11": protocol._H11}
if protocol._HttpTools is not None:
    CLASSES["httptools"] = protocol._HttpTools


async def echo(scope, receive, send):
    """Answers {"path": ..., "bytes": <body length>} after reading the whole body."""
    assert scope["type"] == "http"
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = json.dumps({"path": scope["path"], "bytes": size}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module", params=sorted(CLASSES))
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A uvicorn server running `echo` with one protocol class, in a thread."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_PREFIX + "HEADER_TIMEOUT", str(HEADER_TIMEOUT))
        config = uvicorn.Config(
            echo,
            host="127.0.0.1",
            port=free_port(),
            http=CLASSES[request.param],
            ws="none",
            lifespan="off",
            log_level="error",
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield config.port
        server.should_exit = True
        thread.join(timeout=10)


def head(path: str = "/", extra: str = "", length: int = 0) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\n{extra}Content-Length: {length}\r\n\r\n".encode()


def closed_by_server(sock: socket.socket, timeout: float = 5) -> bool:
    sock.settimeout(timeout)
    with contextlib.suppress(ConnectionResetError):
        return sock.recv(1) == b""
    return True


def two_bodies(sock: socket.socket) -> list[bytes]:
    """The bodies of two pipelined 200 responses (which may arrive in one read)."""
    sock.settimeout(10)
    data, bodies = b"", []
    while len(bodies) < 2:
        head_end = data.find(b"\r\n\r\n") + 4
        if head_end >= 4:
            assert data.startswith(b"HTTP/1.1 200 "), data
            length = int(data[:head_end].lower().split(b"content-length:")[1].split()[0])
            if len(data) >= head_end + length:
                bodies.append(data[head_end : head_end + length])
                data = data[head_end + length :]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"connection closed; got {data!r}"
        data += chunk
    return bodies


def test_requests_keep_alive_and_pipelining_are_untouched(port):
    with raw_connect(port) as sock:
        sock.sendall(head("/a", length=5) + b"hello")
        assert read_response(sock)[::2] == (200, b'{"path": "/a", "bytes": 5}')
        time.sleep(HEADER_TIMEOUT * 1.5)  # idle between requests: keep-alive's business
        sock.sendall(head("/b") + head("/c", length=2) + b"hi")  # two requests at once
        assert two_bodies(sock) == [b'{"path": "/b", "bytes": 0}', b'{"path": "/c", "bytes": 2}']


def test_a_slow_body_is_not_cut_by_the_header_deadline(port):
    with raw_connect(port) as sock:
        sock.sendall(head("/slow", length=4) + b"ab")
        time.sleep(HEADER_TIMEOUT * 2)
        sock.sendall(b"cd")
        assert read_response(sock)[::2] == (200, b'{"path": "/slow", "bytes": 4}')


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n",
    ],
    ids=["method", "header", "content-length"],
)
def test_malformed_http_is_a_json_400(port, request_bytes):
    with raw_connect(port) as sock:
        sock.sendall(request_bytes)
        status, headers, body = read_response(sock)
        assert status == 400 and headers["content-type"] == "application/json"
        error = json_error(body)
        assert error["type"] == "invalid_http"
        assert error["message"].startswith("malformed HTTP request")
        assert headers["connection"] == "close" and closed_by_server(sock)


@pytest.mark.parametrize("pieces", [1, 8], ids=["at-once", "in-pieces"])
def test_headers_over_the_limit_are_a_json_431(port, pieces):
    big = f"X-Big: {'a' * MAX_HEADER_BYTES}\r\n"
    data = head(extra=big)
    with raw_connect(port) as sock:
        step = -(-len(data) // pieces)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for start in range(0, len(data), step):
                sock.sendall(data[start : start + step])
                time.sleep(0.01)
        status, _, body = read_response(sock)
        assert status == 431
        assert json_error(body) == {
            "type": "headers_too_large",
            "message": f"request headers exceed {MAX_HEADER_BYTES:,} bytes",
        }
        assert closed_by_server(sock)


def test_headers_under_the_limit_are_served(port):
    with raw_connect(port) as sock:
        sock.sendall(head("/ok", extra=f"X-Big: {'a' * (MAX_HEADER_BYTES - 200)}\r\n"))
        assert read_response(sock)[0] == 200


@pytest.mark.parametrize("keep_alive", [False, True], ids=["first-request", "second-request"])
def test_trickled_headers_get_408_at_the_deadline(port, keep_alive):
    with raw_connect(port) as sock:
        if keep_alive:  # the deadline runs again for each request on a connection
            sock.sendall(head("/first"))
            assert read_response(sock)[0] == 200
        started = time.monotonic()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for byte in head("/trickle"):  # every byte on time, the whole head late
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
                if time.monotonic() - started > HEADER_TIMEOUT * 4:
                    break
        status, headers, body = read_response(sock)
        elapsed = time.monotonic() - started
        assert status == 408 and headers["connection"] == "close"
        assert json_error(body) == {
            "type": "timeout",
            "message": f"the request headers did not arrive within {HEADER_TIMEOUT:g} s",
        }
        assert HEADER_TIMEOUT * 0.8 < elapsed < HEADER_TIMEOUT * 4
        assert closed_by_server(sock)


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(port):
    with raw_connect(port) as sock:
        started = time.monotonic()
        assert closed_by_server(sock, timeout=HEADER_TIMEOUT * 6)
        assert HEADER_TIMEOUT * 0.8 < time.monotonic() - started < HEADER_TIMEOUT * 4
