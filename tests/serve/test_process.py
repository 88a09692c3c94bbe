"""toolkit serve as a process: SIGTERM drains, several workers, unusable models fail fast."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from serving import (
    free_port,
    raw_connect,
    read_response,
    refuses_connections,
    request_head,
    running,
    serve_command,
    server_env,
)

from toolkit.runtime import Predictor


@pytest.fixture(scope="module")
def model(seed_onnx: Path) -> Path:
    """The seed model: y = x1 + x2 - 1, float32."""
    return seed_onnx


@pytest.fixture(scope="module")
def predictor(model: Path) -> Predictor:
    return Predictor(model)


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


def serve_and_wait(path: Path, port: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`toolkit serve` that is expected to exit on its own (a refusal), run to its end."""
    return subprocess.run(
        serve_command(path, port),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=server_env(),
    )


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
    result = serve_and_wait(path, port, tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(message.format(path=path)), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert "Uvicorn running" not in result.stderr
    assert time.monotonic() - started < 30
    assert refuses_connections(port)


# 9. A busy port is refused before the model is loaded.


@pytest.mark.parametrize("which", ["seed", "missing"])
def test_a_busy_port_is_a_usage_error_before_the_model_is_loaded(model, tmp_path, which):
    """Exit 2 with the port in the message; a missing model is not even looked at."""
    path = model if which == "seed" else tmp_path / "missing.onnx"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        result = serve_and_wait(path, port, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().endswith(
        f"Error: port {port} on 127.0.0.1 is in use; choose another --port"
    ), result.stderr
    assert "Try 'toolkit serve --help' for help." in result.stderr
    assert "warm" not in result.stderr and "does not exist" not in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert time.monotonic() - started < 30
