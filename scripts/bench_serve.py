"""Benchmark `toolkit serve` against a minimal uvicorn app on loopback: requests/s, p50/p99.

The candidate is `python -m toolkit serve MODEL --port P` (FastAPI on uvicorn, one worker),
the baseline a raw ASGI callable on uvicorn with the settings `toolkit serve` passes to
uvicorn (one worker, the same event loop, keep-alive 5 s, no connection limit, backlog
4096, no WebSockets, log level info with the access log on) but uvicorn's stock HTTP
protocol, where toolkit runs its guarded subclass (toolkit/serve/protocol.py: JSON errors,
the header deadline), and no request limit: it parses the body with
json.loads, runs raw `onnxruntime.InferenceSession.run` on the same .onnx file and answers
{"predictions": {"y": [...]}}. A third side, for information only, puts that same handler
behind a one-route FastAPI app, which splits the gap into the framework's share and
toolkit's own. When litserve is installed, LitServe serves the same model as a peer (its
documented LitAPI: decode_request, predict, encode_response; one worker process), and the
table shows toolkit's lead over it; otherwise that row says skipped. --stack h11 runs every
side on h11 and asyncio instead of what uvicorn picks (httptools and uvloop, which the
serve extra installs): the figure without them. Each server is a subprocess (group) on
its own free port on 127.0.0.1; its CPU time counts every process of the group. Before any
timing every side must answer the same sample with the same predictions.

The load generator runs in this process: --concurrency keep-alive connections (16 by
default), each a task that POSTs the same pre-encoded request, waits for the whole answer
and sends the next (closed loop), on asyncio with a minimal HTTP/1.1 client (--client raw,
the default). --client httpx uses httpx.AsyncClient instead; on 2 cores it saturates its
core at about 500 one-row requests/s, far below what either server answers, so it measures
itself and both sides look alike: use it only to cross-check. On a small machine the
servers and the load generator share the cores (--pin puts the servers on one and the
generator on another); the table shows each server's CPU time per request, a figure that
noise and the generator disturb less than requests/s, and how busy the generator was: at
90% of a core or more it, not the server, may set the pace, and that row says MISS.
Before the timed rounds of a request size every side gets one untimed run (a server's
first run at a size is often the slowest); every run opens its connections and warms up
for --warmup seconds, then counts the requests that complete within --duration seconds.
As in bench_runtime.py, the sides are interleaved in a rotating order (a b c, b c a, ...)
for --rounds rounds per request size, each side keeps its best round, and the verdict is
the ratio toolkit / baseline of the best requests/s; the median of the per-round ratios
is shown too. This is a report, not a test: it exits 0 when a target is missed, non-zero
only when something crashes (or the servers disagree on a prediction).
The model is trained and exported in another interpreter, so torch never loads here.

    .venv/bin/python scripts/bench_serve.py --quick              # smoke run, about 1 min
    .venv/bin/python scripts/bench_serve.py --json bench.json    # full run, about 5 min
    .venv/bin/python scripts/bench_serve.py --stack h11 --sizes 1 # without httptools, uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import ROOT, Row, finish, row

SEED = 0
HOST = "127.0.0.1"
TARGET = 0.9  # toolkit serve / baseline, requests per second (issue 16)
# Above this share of a core the load generator, not the server, may set the pace.
GENERATOR_LIMIT = 0.9
STARTUP_TIMEOUT = 90.0  # seconds for a server to answer /health
STOP_TIMEOUT = 15.0  # seconds after SIGTERM before SIGKILL
# Fresh interpreter (it imports torch): train and export the seed model to argv[1]/seed.onnx.
MODEL_PROBE = """
import sys
from pathlib import Path
from toolkit.export import export_model
from toolkit.training import TrainConfig, train
folder = Path(sys.argv[1])
train(TrainConfig(out=folder / "seed.pt"))
export_model(folder / "seed.pt", folder / "seed.onnx")
"""
# The baseline server: argv = mode ("asgi" or "fastapi"), stack, model, port. The uvicorn
# settings are those of toolkit.serve.serve() (workers=1 runs in this process, as there).
BASELINE_APP = """
import json, sys
import numpy as np
import onnxruntime as ort
import uvicorn

mode, stack, model, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
feature = session.get_inputs()[0]
name = feature.name
dtype = np.float64 if feature.type == "tensor(double)" else np.float32
session.run(None, {name: np.zeros((1, feature.shape[1]), dtype)})  # warm-up, as toolkit's


def predict(body):
    rows = json.loads(body)["rows"]
    (y,) = session.run(None, {name: np.asarray(rows, dtype=dtype)})
    return json.dumps({"predictions": {"y": y[:, 0].tolist()}}).encode()


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["method"] == "POST" and scope["path"] == "/predict":
        status, out = 200, predict(b"".join(chunks))
    elif scope["path"] == "/health":
        status, out = 200, b'{"status": "ok"}'
    else:
        status, out = 404, b'{"error": "not found"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": out})


if mode == "asgi":
    app = asgi
else:
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    app = FastAPI()

    @app.post("/predict")
    async def route(request: Request) -> Response:
        return Response(predict(await request.body()), media_type="application/json")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

uvicorn.run(
    app,
    host="127.0.0.1",
    port=port,
    workers=1,
    ws="none",
    backlog=4096,
    timeout_keep_alive=5,
    timeout_graceful_shutdown=30,
    limit_concurrency=None,
    log_level="info",
    **({"http": "h11", "loop": "asyncio"} if stack == "h11" else {}),
)
"""
# toolkit serve on h11 and asyncio (--stack h11): its guarded h11 protocol and uvicorn's
# asyncio loop, as without the serve extra's httptools and uvloop. argv: model, port.
TOOLKIT_H11 = """
import functools, sys
import uvicorn
from toolkit.serve import protocol
protocol.HTTPProtocol = protocol._H11
uvicorn.run = functools.partial(uvicorn.run, loop="asyncio")
from toolkit.cli import main
sys.argv = ["toolkit", "serve", sys.argv[1], "--port", sys.argv[2]]
main()
"""
# LitServe on the same model, as its docs write an API (a peer, shown when installed):
# argv = stack, model, port. It runs the model in a worker process fed through queues.
LITSERVE_APP = """
import sys
import numpy as np
import onnxruntime as ort
import litserve as ls

stack, model, port = sys.argv[1], sys.argv[2], int(sys.argv[3])


class API(ls.LitAPI):
    def setup(self, device):
        self.session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        feature = self.session.get_inputs()[0]
        self.name = feature.name
        self.dtype = np.float64 if feature.type == "tensor(double)" else np.float32

    def decode_request(self, request):
        return np.asarray(request["rows"], dtype=self.dtype)

    def predict(self, x):
        (y,) = self.session.run(None, {self.name: x})
        return y

    def encode_response(self, y):
        return {"predictions": {"y": y[:, 0].tolist()}}


if __name__ == "__main__":  # LitServe spawns its workers: they import this file
    server = ls.LitServer(API(), accelerator="cpu", workers_per_device=1)
    extra = {"http": "h11", "loop": "asyncio"} if stack == "h11" else {}
    server.run(host="127.0.0.1", port=port, generate_client_file=False, **extra)
"""
# The sides, as the tables show them: the first is the baseline, the last the candidate.
BASELINE = "baseline (raw ASGI)"
FASTAPI = "same handler, FastAPI"
LITSERVE = "LitServe"
TOOLKIT = "toolkit serve"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """A server subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path) -> None:
        self.name, self.argv, self.port, self.log_path = name, argv, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, pin: set[int] | None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_SERVE_")}

        def preexec() -> None:  # in the child, before exec
            _die_with_parent()
            if pin:
                os.sched_setaffinity(0, pin)

        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {STARTUP_TIMEOUT:g} s:\n{self.tail()}")

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server's processes (its process group: LitServe's
        workers too) and all their threads, from /proc."""
        if self.proc is None:
            return None
        ticks, found = 0, False
        for stat_path in Path("/proc").glob("[0-9]*/stat"):
            try:
                stat = stat_path.read_text()
            except OSError:
                continue  # a process that just ended
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == self.proc.pid:  # process group: the server's own session
                ticks += int(fields[11]) + int(fields[12])
                found = True
        return ticks / os.sysconf("SC_CLK_TCK") if found else None

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL; the whole process group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the benchmark dies, even by SIGKILL (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def make_rows(rng: np.random.Generator, n: int, features: int) -> list[list[float]]:
    """Uniform in [-10, 10), six decimals, as a client would write them."""
    return np.round(rng.uniform(-10, 10, (n, features)), 6).tolist()


def http_request(port: int, body: bytes) -> bytes:
    """A pre-encoded HTTP/1.1 keep-alive POST /predict."""
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def post(port: int, body: bytes) -> tuple[int, Any]:
    """POST /predict with urllib (independent of the load generator's client)."""
    request = urllib.request.Request(
        f"http://{HOST}:{port}/predict",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def n_features(server: Server) -> int:
    """The model's width, from toolkit serve's GET /metadata."""
    with urllib.request.urlopen(f"http://{HOST}:{server.port}/metadata", timeout=10) as r:
        return len(json.loads(r.read())["features"])


def check_agreement(servers: dict[str, Server], samples: list[bytes]) -> float:
    """Every server answers every sample with 200 and the same predictions; the max |diff|."""
    worst = 0.0
    for body in samples:
        n = len(json.loads(body)["rows"])
        answers = {}
        for name, server in servers.items():
            status, answer = post(server.port, body)
            if status != 200:
                raise RuntimeError(f"{name}: {n} rows answered {status}: {answer}")
            y = answer.get("predictions", {}).get("y")
            if not isinstance(y, list) or len(y) != n:
                raise RuntimeError(f"{name}: {n} rows, unexpected answer {str(answer)[:200]}")
            answers[name] = np.asarray(y, dtype=np.float64)
        reference = answers[BASELINE]
        for name, y in answers.items():
            diff = float(np.max(np.abs(y - reference)))
            if not np.allclose(y, reference, rtol=1e-6, atol=1e-6):
                raise RuntimeError(f"{name} and {BASELINE} disagree on {n} rows: max |diff| {diff}")
            worst = max(worst, diff)
    return worst


def _content_length(head: bytes) -> int:
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
    end = lower.index(b"\r\n", at + 2)
    return int(lower[at + 17 : end])


async def _raw_worker(
    port: int, request: bytes, window: tuple[float, float], out: dict[str, Any]
) -> None:
    start, end = window
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while True:
            sent = time.perf_counter()
            if sent >= end:
                return
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(_content_length(head))
            done = time.perf_counter()
            if start <= done <= end:
                out["latencies"].append(done - sent)
                if head[9:12] != b"200":
                    out["errors"] += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _httpx_worker(
    client: Any, body: bytes, window: tuple[float, float], out: dict[str, Any]
) -> None:
    start, end = window
    headers = {"Content-Type": "application/json"}
    while True:
        sent = time.perf_counter()
        if sent >= end:
            return
        response = await client.post("/predict", content=body, headers=headers)
        done = time.perf_counter()
        if start <= done <= end:
            out["latencies"].append(done - sent)
            if response.status_code != 200:
                out["errors"] += 1


async def _sample_cpu(server: Server, window: tuple[float, float], out: dict[str, Any]) -> None:
    for key, at in zip(("start", "end"), window, strict=True):
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        out[f"server_cpu_{key}"] = server.cpu_seconds()
        out[f"client_cpu_{key}"] = time.process_time()


async def _load(server: Server, body: bytes, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "errors": 0}
    start = time.perf_counter() + args.warmup
    window = (start, start + args.duration)
    sampler = _sample_cpu(server, window, out)
    if args.client == "raw":
        request = http_request(server.port, body)
        workers = [_raw_worker(server.port, request, window, out) for _ in range(args.concurrency)]
        await asyncio.gather(sampler, *workers)
    else:
        import httpx

        limits = httpx.Limits(
            max_connections=args.concurrency, max_keepalive_connections=args.concurrency
        )
        base = f"http://{HOST}:{server.port}"
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            workers = [_httpx_worker(client, body, window, out) for _ in range(args.concurrency)]
            await asyncio.gather(sampler, *workers)
    return out


def measure(server: Server, body: bytes, args: argparse.Namespace) -> dict[str, Any]:
    """One closed-loop run: warm-up, then `args.duration` seconds that count."""
    limit = args.warmup + args.duration + 60  # a stuck server cannot hold the run
    out = asyncio.run(asyncio.wait_for(_load(server, body, args), limit))
    latencies = np.asarray(out["latencies"])
    n = len(latencies)
    if n == 0:
        raise RuntimeError(f"{server.name}: no request completed in {args.duration:g} s")
    p50, p99 = np.percentile(latencies, [50, 99])
    server_cpu = None
    if out.get("server_cpu_start") is not None and out.get("server_cpu_end") is not None:
        server_cpu = (out["server_cpu_end"] - out["server_cpu_start"]) / n
    return {
        "requests": n,
        "errors": out["errors"],
        "rps": n / args.duration,
        "p50": float(p50),
        "p99": float(p99),
        "mean": float(latencies.mean()),
        "server_cpu_per_request": server_cpu,
        "client_cpu_share": (out["client_cpu_end"] - out["client_cpu_start"]) / args.duration,
    }


def interleave(
    servers: dict[str, Server], body: bytes, args: argparse.Namespace, label: str
) -> dict[str, list[dict[str, Any]]]:
    """`args.rounds` measurements of each side, in a rotating order (a b c, b c a, ...),
    after one untimed warm-up run of each (a server's first run at a size is often slow)."""
    names = list(servers)
    warmup = argparse.Namespace(**{**vars(args), "duration": args.warmup})
    for name in names:
        measure(servers[name], body, warmup)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            result = measure(servers[name], body, args)
            runs[name].append(result)
            print(
                f"  {label}, round {round_ + 1}/{args.rounds}, {name}: "
                f"{result['rps']:,.0f} req/s, p50 {_ms(result['p50'])}, "
                f"p99 {_ms(result['p99'])}, server CPU {_us(result['server_cpu_per_request'])}"
                f"/request, load generator CPU {result['client_cpu_share']:.0%}, "
                f"errors {result['errors']}",
                flush=True,
            )
    return runs


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _us(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e6:.0f} us"


def figures(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each side's best round (most requests/s) and the ratios against the baseline."""
    best = {name: max(rounds, key=lambda r: r["rps"]) for name, rounds in runs.items()}
    base, cand = runs[BASELINE], runs[TOOLKIT]
    per_round = [c["rps"] / b["rps"] for b, c in zip(base, cand, strict=True)]
    cpu = best[TOOLKIT]["server_cpu_per_request"], best[BASELINE]["server_cpu_per_request"]
    return {
        "best": best,
        "rounds": runs,
        "rps_ratio": best[TOOLKIT]["rps"] / best[BASELINE]["rps"],
        "rps_ratio_median_of_rounds": statistics.median(per_round),
        "rps_ratio_range_of_rounds": [min(per_round), max(per_round)],
        # toolkit's best requests/s over each other side's (LitServe's: the lead to keep)
        "toolkit_over": {
            name: best[TOOLKIT]["rps"] / b["rps"] for name, b in best.items() if name != TOOLKIT
        },
        "server_cpu_ratio": cpu[0] / cpu[1] if None not in cpu and cpu[1] else None,
        "errors": sum(r["errors"] for rounds in runs.values() for r in rounds),
        "load_generator_cpu_max": max(
            r["client_cpu_share"] for rounds in runs.values() for r in rounds
        ),
    }


def summary_rows(report: dict[str, Any]) -> list[Row]:
    diff = report["agreement_max_abs_diff"]
    rows = [row("agreement: max |y diff| on samples", f"{diff:.1e}", "<= 1e-6", diff <= 1e-6)]
    rows.append(row("stack (HTTP parser + event loop)", report["config"]["uvicorn_http_loop"]))
    rows.append(row("LitServe peer", report["config"]["litserve"]))
    for key, fig in report["sizes"].items():
        ratio, median = fig["rps_ratio"], fig["rps_ratio_median_of_rounds"]
        low, high = fig["rps_ratio_range_of_rounds"]
        verdict = ratio >= TARGET
        rows += [
            row(f"{key}: toolkit / baseline req/s", f"{ratio:.2f}x", f">= {TARGET}x", verdict),
            row(f"{key}: same, median (range) of rounds", f"{median:.2f}x ({low:.2f}-{high:.2f})"),
            row(f"{key}: errors (non-200)", str(fig["errors"]), "0", fig["errors"] == 0),
        ]
        if LITSERVE in fig["toolkit_over"]:
            lead = fig["toolkit_over"][LITSERVE]
            rows.append(row(f"{key}: toolkit / LitServe req/s", f"{lead:.2f}x"))
        for name, best in fig["best"].items():
            rows += [
                row(f"{key}: {name} req/s", f"{best['rps']:,.0f}"),
                row(f"{key}: {name} p50 / p99", f"{_ms(best['p50'])} / {_ms(best['p99'])}"),
                row(f"{key}: {name} server CPU/request", _us(best["server_cpu_per_request"])),
            ]
        cpu = fig["server_cpu_ratio"]
        if cpu is not None:
            rows.append(row(f"{key}: toolkit / baseline server CPU/request", f"{cpu:.2f}x"))
        # A saturated load generator sets the pace itself and hides the servers' difference.
        busiest = fig["load_generator_cpu_max"]
        rows.append(
            row(
                f"{key}: load generator CPU, busiest run",
                f"{busiest:.0%}",
                f"< {GENERATOR_LIMIT:.0%}",
                busiest < GENERATOR_LIMIT,
            )
        )
    return rows


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("uvicorn", "fastapi", "starlette", "onnxruntime", "numpy", "httpx"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def uvicorn_flavour(stack: str) -> str:
    """The HTTP protocol and event loop every side runs: uvicorn's "auto" picks or h11."""
    from importlib.util import find_spec

    if stack == "h11":
        return "h11+asyncio"
    http = "httptools" if find_spec("httptools") else "h11"
    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    return f"{http}+{loop}"


def litserve_status(args: argparse.Namespace) -> str:
    """Whether the LitServe peer runs: its version, or why it is skipped."""
    from importlib.metadata import PackageNotFoundError, version

    if args.no_litserve:
        return "skipped (--no-litserve)"
    try:
        return version("litserve")
    except PackageNotFoundError:
        return "skipped (not installed: pip install litserve)"


def side_commands(tmp: Path, model: Path, args: argparse.Namespace) -> dict[str, list[str]]:
    """Each side's command line but its port, baseline first and toolkit last."""
    (tmp / "baseline_app.py").write_text(BASELINE_APP)
    app, stack = str(tmp / "baseline_app.py"), args.stack
    commands = {BASELINE: [sys.executable, app, "asgi", stack, str(model)]}
    if not args.no_fastapi_side:
        commands[FASTAPI] = [sys.executable, app, "fastapi", stack, str(model)]
    if not litserve_status(args).startswith("skipped"):
        (tmp / "litserve_app.py").write_text(LITSERVE_APP)
        commands[LITSERVE] = [sys.executable, str(tmp / "litserve_app.py"), stack, str(model)]
    if stack == "h11":
        commands[TOOLKIT] = [sys.executable, "-c", TOOLKIT_H11, str(model)]
    else:
        commands[TOOLKIT] = [sys.executable, "-m", "toolkit", "serve", str(model), "--port"]
    return commands


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each one")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per side: best of N")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 1000], help="rows/request")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator")
    parser.add_argument(
        "--no-fastapi-side", action="store_true", help="skip the info-only FastAPI baseline"
    )
    parser.add_argument(
        "--no-litserve", action="store_true", help="skip the LitServe peer even if installed"
    )
    parser.add_argument(
        "--stack",
        choices=("auto", "h11"),
        default="auto",
        help="uvicorn's HTTP parser and loop on every side: auto (httptools + uvloop when "
        "installed, as the serve extra does) or h11 (h11 + asyncio, as without them)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="servers on CPU 0, load generator on CPU 1 (default: the OS schedules all)",
    )
    parser.add_argument("--model", type=Path, help="an .onnx file (default: train the seed one)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s runs, 2 rounds")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the finally below stops the servers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.quick:
        args.duration, args.warmup, args.rounds = 3.0, 1.0, 2
    pin_servers: set[int] | None = None
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            parser.error("--pin needs two CPUs")
        pin_servers = {cpus[0]}
        os.sched_setaffinity(0, {cpus[1]})

    config: dict[str, Any] = dict(concurrency=args.concurrency, duration=args.duration)
    config.update(warmup=args.warmup, rounds=args.rounds, sizes=args.sizes, client=args.client)
    config.update(pin=args.pin, cpus=os.cpu_count(), python=platform.python_version())
    config.update(uvicorn_http_loop=uvicorn_flavour(args.stack), **versions())
    config.update(litserve=litserve_status(args))
    report: dict[str, Any] = {"config": config, "sizes": {}}
    print("config: " + ", ".join(f"{k}={v}" for k, v in config.items()), flush=True)

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        model = args.model
        if model is None:
            # Another interpreter trains and exports: this one (the load generator) stays
            # free of torch, and so do the servers.
            probe = [sys.executable, "-c", MODEL_PROBE, folder]
            subprocess.run(probe, cwd=ROOT, check=True, capture_output=True)
            model = tmp / "seed.onnx"
        model = model.resolve()
        commands = side_commands(tmp, model, args)
        servers: dict[str, Server] = {}
        try:
            for name, argv in commands.items():
                port = free_port()
                log = tmp / f"server{len(servers)}.log"
                servers[name] = Server(name, [*argv, str(port)], port, log)
                servers[name].start(pin_servers)
            for server in servers.values():
                server.wait_ready()
            config["servers"] = {name: " ".join(s.argv) for name, s in servers.items()}

            rng = np.random.default_rng(SEED)
            features = n_features(servers[TOOLKIT])
            samples = [
                json.dumps({"rows": make_rows(rng, n, features)}).encode()
                for n in sorted({1, 2, 7, 1000, *args.sizes})
            ]
            report["agreement_max_abs_diff"] = check_agreement(servers, samples)
            print(f"agreement: {len(samples)} samples, all sides equal", flush=True)

            for size in args.sizes:
                body = json.dumps({"rows": make_rows(rng, size, features)}).encode()
                key = f"{size:,} row{'s' if size > 1 else ''}"
                print(f"\n{key} ({len(body):,}-byte body), {args.concurrency} clients", flush=True)
                report["sizes"][key] = figures(interleave(servers, body, args, key))
                report["sizes"][key]["body_bytes"] = len(body)
        finally:
            for server in servers.values():
                server.stop()

    return finish(report, summary_rows(report), args.json)


if __name__ == "__main__":
    sys.exit(main())
