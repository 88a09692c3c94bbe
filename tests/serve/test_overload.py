"""toolkit serve under a flood of connections, on loopback only, bounded in count and time.

uvicorn's limit_concurrency counted open *connections*: with 1,000 of them open, idle or
not, every request got a plain-text 503. toolkit serve limits requests in progress
instead (--max-concurrency, 1,000 by default): past it a request gets an immediate JSON 503
with Retry-After, and idle connections take no slot.

FLOOD connections are opened at once (2,000 by default, to stay quick on a small machine;
TOOLKIT_TEST_FLOOD_CONNECTIONS=10000 runs the README's figure: 1,000 served, 9,000
refused). The test raises its own soft limit of open files (resource.setrlimit) and is
skipped, with the reason, where the hard limit is too low; the server raises its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import Server, httpx, json_error, running

FLOOD = int(os.environ.get("TOOLKIT_TEST_FLOOD_CONNECTIONS", "2000"))
LIMIT = min(1000, FLOOD // 2)  # the default --max-concurrency, or half a smaller flood
DEADLINE_S = 120.0  # the whole flood, however slow the machine: then the test fails
ONE_ROW = json.dumps({"rows": [[1.5, 2.5]]}).encode()  # y = 1.5 + 2.5 - 1 = 3.0


@pytest.fixture(scope="module", autouse=True)
def _open_files() -> None:
    """Enough file descriptors for FLOOD client sockets in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = FLOOD + 256
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need:,} open files; the hard limit here is {hard:,}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


@pytest.fixture(scope="module")
def server(seed_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Generous deadlines: on 2 cores opening 10,000 connections takes seconds.
    options = ["--max-concurrency", str(LIMIT), "--header-timeout", "60", "--body-timeout", "60"]
    with running(seed_onnx, tmp_path_factory.mktemp("flood"), *options) as server:
        yield server
        assert "over --max-concurrency" in server.log() or FLOOD <= LIMIT


def head(port: int, path: str = "/predict", method: str = "POST", length: int = 0) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines if x)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


def assert_refused(answer: tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = answer
    assert status == 503, answer
    assert headers["content-type"] == "application/json" and headers["retry-after"] == "1"
    assert headers["connection"] == "close"
    assert json_error(body) == {
        "type": "overloaded",
        "message": f"the server is busy: {LIMIT:,} requests are in progress, the most it "
        "takes at once; retry after 1 s",
    }


async def _until(condition, what: str, deadline: float) -> None:
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _held_flood(port: int) -> tuple[list, list]:
    """FLOOD requests, each holding back half its body until every refusal has arrived."""
    deadline = time.monotonic() + DEADLINE_S
    release, sent, refused, served = asyncio.Event(), [0], [], []
    half = len(ONE_ROW) // 2

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head(port, length=len(ONE_ROW)) + ONE_ROW[:half])
            await writer.drain()
            sent[0] += 1
            answer = asyncio.ensure_future(read_answer(reader))
            released = asyncio.ensure_future(release.wait())
            await asyncio.wait({answer, released}, return_when=asyncio.FIRST_COMPLETED)
            if answer.done():  # refused before the body was complete
                released.cancel()
                refused.append(answer.result())
                return
            writer.write(ONE_ROW[half:])
            served.append(await answer)
        finally:
            writer.close()

    tasks = [asyncio.ensure_future(client()) for _ in range(FLOOD)]
    await _until(lambda: sent[0] == FLOOD, "every request to be sent", deadline)
    await _until(lambda: len(refused) >= FLOOD - LIMIT, "the refusals", deadline)
    # The server is full: /health still answers, anything else is refused.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as web:
        assert (await web.get("/health")).json()["status"] == "ok"
        metadata = await web.get("/metadata")
        assert_refused((metadata.status_code, dict(metadata.headers), metadata.content))
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), max(deadline - time.monotonic(), 1))
    return served, refused


def test_a_flood_gets_the_limit_served_and_a_json_503_for_the_rest(server):
    started = time.monotonic()
    served, refused = asyncio.run(_held_flood(server.port))
    assert len(served) == LIMIT and len(refused) == FLOOD - LIMIT
    for answer in refused:
        assert_refused(answer)
    for status, _, body in served:
        assert status == 200 and json.loads(body) == {"predictions": {"y": [3.0]}, "rows": 1}
    print(f"\nflood: {FLOOD:,} connections, {LIMIT:,} served, {len(refused):,} refused (503)")
    print(f"in {time.monotonic() - started:.1f} s")
    assert server.process.poll() is None


async def _open_then_ask(port: int) -> list:
    """FLOOD connections opened first (idle), then one 1-row request on each."""
    deadline = time.monotonic() + DEADLINE_S
    opened, go = [0], asyncio.Event()

    async def client() -> tuple[int, dict[str, str], bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        opened[0] += 1
        try:
            await go.wait()
            writer.write(head(port, length=len(ONE_ROW)) + ONE_ROW)
            return await read_answer(reader)
        finally:
            writer.close()

    tasks = [asyncio.ensure_future(client()) for _ in range(FLOOD)]
    await _until(lambda: opened[0] == FLOOD, "every connection to open", deadline)
    go.set()
    return await asyncio.wait_for(asyncio.gather(*tasks), max(deadline - time.monotonic(), 1))


def test_idle_connections_take_no_request_slot(server):
    answers = asyncio.run(_open_then_ask(server.port))
    statuses = [status for status, _, _ in answers]
    for answer in answers:
        if answer[0] != 200:
            assert_refused(answer)
    # Each 1-row request is over in well under a millisecond, so a few are ever in
    # progress at once: with FLOOD connections open, every one of them is served.
    assert statuses.count(200) >= min(FLOOD, LIMIT), statuses.count(503)
    assert statuses.count(200) == FLOOD
