"""An HTTP abuse run against a real `toolkit serve` on loopback: every error is JSON, no 500s.

1. schemathesis reads the OpenAPI document (the one /openapi.json serves) and sends
   generated requests to every operation, valid and invalid (negative mode) bodies alike,
   and every undocumented method, seeded (derandomized) and bounded (SCHEMATHESIS_EXAMPLES
   per operation and phase, 100 by default: about 170 requests, 2 s): no 5xx, every status
   and content type documented, every invalid body refused, every error the JSON object
   {"error": {"type", "message"}}.
2. Hand-made abuse no generator aims at: bad methods, bad and missing content types, huge
   and many headers, bad JSON, deep nesting, odd paths; the same rules.
The server's log must hold no traceback (`serving.running` checks it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving import Server, httpx, json_error, raw_connect, read_response, running

schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (the dev extra)")
requests = pytest.importorskip("requests", reason="schemathesis's HTTP client")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from toolkit.serve import ServeSettings, create_app  # noqa: E402

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "100"))


@pytest.fixture(scope="module")
def server(seed_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Small limits, so that generated bodies reach the 413 paths too.
    options = ["--max-rows", "50", "--max-body-bytes", "65536"]
    with running(seed_onnx, tmp_path_factory.mktemp("abuse"), *options) as server:
        yield server


@pytest.fixture(scope="module")
def session() -> Iterator[Any]:
    with requests.Session() as session:
        session.trust_env = False  # loopback only: no proxy from the environment
        yield session


def errors_are_json(ctx: Any, response: Any, case: Any) -> None:
    """A schemathesis check: any 4xx/5xx answer is {"error": {"type", "message"}}."""
    if response.status_code >= 400:
        assert response.headers["content-type"] == ["application/json"], response.headers
        json_error(response.content)


# The document the app builds (no model needed for it); the test below checks that the
# server serves the same one. (schemathesis.pytest.from_fixture does not work on pytest 9.)
DOCUMENT = create_app(ServeSettings("model.onnx")).app.openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_server_serves_the_document_under_test(server):
    assert httpx.get(server.url + "/openapi.json", trust_env=False).json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same requests on every run
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_documented_answers(case, server, session):
    response = case.call(base_url=server.url, session=session)
    # positive_data_acceptance expects a 2xx for any body the schema allows, but the schema
    # cannot say how many features a row has: [[1, 2, 3]] is a valid body and a 422.
    case.validate_response(
        response, excluded_checks=[positive_data_acceptance], additional_checks=[errors_are_json]
    )


# 2. Hand-made abuse.

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("PATCH", "/predict", {}, b"{}", 405),
        ("TRACE", "/predict", {}, b"", 405),
        ("OPTIONS", "/health", {}, b"", 405),
        ("BREW", "/predict", {}, b"", 400),  # not a method httptools knows: uvicorn's 400
        ("GET", "/../../etc/passwd", {}, b"", 404),
        ("GET", "/predict%00", {}, b"", 404),
        ("GET", "/docs/assets/../../app.py", {}, b"", 404),
        ("POST", "/predict", {"content-type": "text/plain"}, b"rows=1,2", 400),
        ("POST", "/predict", {"content-type": "application/x-www-form-urlencoded"}, b"a=1", 400),
        ("POST", "/predict", {"content-type": "multipart/form-data; boundary=x"}, b"--x--", 400),
        ("POST", "/predict", {"content-type": "application/json"}, b"\xff\xfe{}", 400),
        ("POST", "/predict", {"content-type": "application/json"}, b'{"rows": [[1, 2]]', 400),
        ("POST", "/predict", {"content-type": "application/json"}, DEEP, 413),
        ("POST", "/predict", {"content-type": "application/json"}, b"[" * 50_000, 400),
        ("POST", "/predict", {"content-type": "application/json"}, b'{"rows": ' * 2000, 400),
        ("POST", "/predict", {"content-type": "application/json"}, b'"' + b"a" * 60_000, 400),
        ("POST", "/predict", {f"x-{i}": "v" * 100 for i in range(100)}, b"", 400),
        ("GET", "/health", {"x-huge": "a" * 20_000}, b"", 431),
        ("POST", "/predict", {"content-length": "abc"}, b"", 400),
    ],
)
def test_hand_made_abuse_gets_a_json_error(server, method, path, headers, body, status):
    """Each request on a fresh raw connection, bytes as written (httpx would fix them)."""
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    if "content-length" not in headers:
        head.append(f"Content-Length: {len(body)}")
    head += [f"{name}: {value}" for name, value in headers.items()]
    with raw_connect(server.port) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        answer, response_headers, content = read_response(sock)
    assert answer == status, content
    assert response_headers["content-type"] == "application/json"
    error = json_error(content)
    assert error["type"] and error["message"]


def test_the_server_survived(server):
    with server.client() as client:
        assert client.post("/predict", json={"rows": [[2, 2]]}).json()["predictions"] == {
            "y": [3.0]
        }
        assert json.loads(client.get("/health").content)["status"] == "ok"
