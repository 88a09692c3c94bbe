"""uvicorn's HTTP protocol with toolkit's rules for what happens before the app sees a request.

uvicorn answers some requests itself, before the ASGI app runs, and has no deadline for
a request's headers. `HTTPProtocol` is uvicorn's own protocol (httptools when installed,
as with `uvicorn[standard]`, else h11) with three changes:

1. Its own answers are JSON like the app's, {"error": {"type", "message"}}, and close the
   connection: 400 `invalid_http` for a request the parser cannot read (with the parser's
   reason), 431 `headers_too_large` for a request line and headers over MAX_HEADER_BYTES
   (httptools has no limit of its own: it buffered 10 MB of one header).
2. A request's headers must arrive within --header-timeout seconds of its first byte (of
   the connection's opening, for its first request); a client that trickles them gets 408
   `timeout` and the connection closes, one that never sent a byte is disconnected. Between
   requests uvicorn's keep-alive timer (5 s) closes idle connections, as before.
3. The fast path costs nothing: one clock read per request, and a timer only while a
   request's headers are incomplete after a read.

What no server process can answer in JSON: a connection the kernel refuses or drops (the
listen backlog is full, the port is closed during shutdown), a client that hangs up, and
bytes that are not HTTP at all after a response was sent.
"""

from __future__ import annotations

import http
import json
import sys
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from toolkit.serve.settings import header_timeout_from_env

# The request line and headers, in bytes: h11's default limit (uvicorn's other protocol),
# which also bounds what a client can make the server buffer before the app runs.
MAX_HEADER_BYTES = 16 * 1024


class _HeadersTooLarge(Exception):
    """Raised in a parser callback; httptools re-raises it as HttpParserCallbackError."""


def _response(status: int, kind: str, message: str, default_headers: Any) -> bytes:
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, http.HTTPStatus(status).phrase.encode())]
    lines += [name + b": " + value + b"\r\n" for name, value in default_headers]
    lines.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
    lines.append(b"connection: close\r\n\r\n")
    return b"".join(lines) + body


def _parser_error(error: BaseException | None) -> tuple[int, str, str]:
    """(status, type, message) for an error of httptools or h11 reading a request."""
    too_large = (
        isinstance(error, _HeadersTooLarge)
        or isinstance(getattr(error, "__context__", None), _HeadersTooLarge)
        # h11 hints 431 for its buffer limit (the same MAX_HEADER_BYTES, see server.py).
        or getattr(error, "error_status_hint", 400) == 431
    )
    if too_large:
        return 431, "headers_too_large", f"request headers exceed {MAX_HEADER_BYTES:,} bytes"
    reason = str(error) if error is not None else ""
    return 400, "invalid_http", "malformed HTTP request" + (f": {reason}" if reason else "")


class _Guard:
    """The header deadline and JSON answers, shared by the httptools and h11 protocols.

    The subclasses call `_guard_start` on connection, `_head_begins` when a request's
    first byte arrives, `_head_complete` when its headers are parsed, and `_after_read`
    after each read; `_head_pending` says whether a request's headers are incomplete.
    """

    loop: Any
    transport: Any
    server_state: Any
    cycle: Any

    def _guard_start(self) -> None:
        self._header_timeout = header_timeout_from_env()
        self._head_started = self.loop.time()
        self._head_bytes = 0  # of reads that ended with the headers still incomplete
        self._head_timer: Any = self.loop.call_later(self._header_timeout, self._headers_late)

    def _head_begins(self) -> None:
        self._head_started = self.loop.time()
        self._head_bytes = 0

    def _head_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_pending(self) -> bool:
        raise NotImplementedError

    def _after_read(self, size: int) -> None:
        if self.transport.is_closing() or not self._head_pending():
            return
        self._head_bytes += size
        if self._head_bytes > MAX_HEADER_BYTES:
            self._answer(*_parser_error(_HeadersTooLarge()))
        elif self._head_timer is None:
            left = self._head_started + self._header_timeout - self.loop.time()
            self._head_timer = self.loop.call_later(max(left, 0.0), self._headers_late)

    def _headers_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # pipelined: finish the response, then close
        elif self._head_pending() and self._head_bytes:
            seconds = f"{self._header_timeout:g}"
            message = f"the request headers did not arrive within {seconds} s"
            self._answer(408, "timeout", message)
        else:
            self.transport.close()  # connected and sent nothing: not a request to answer

    def _answer(self, status: int, kind: str, message: str) -> None:
        self._head_complete()
        default_headers = self.server_state.default_headers
        self.transport.write(_response(status, kind, message, default_headers))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this from its `except` around the parser: the error is the one
        # being handled, so its reason and kind (malformed, headers too large) are known.
        self._answer(*_parser_error(sys.exc_info()[1]))

    def _unsupported_upgrade_warning(self) -> None:
        """No warning: server.py turns WebSockets off on purpose (ws="none"), so an upgrade
        request is answered as the plain HTTP request it also is."""

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_complete()
        super().connection_lost(exc)  # type: ignore[misc]


try:
    import httptools  # noqa: F401  (what uvicorn's "auto" would pick)
except ImportError:  # pragma: no cover - the `serve` extra installs it
    _HttpTools = None
else:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class _HttpTools(_Guard, HttpToolsProtocol):  # type: ignore[no-redef]
        """uvicorn's httptools protocol, guarded."""

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._pending, self._read_size = True, 0
            self._guard_start()

        # The three methods below run for every request: kept to a few attribute reads.

        def data_received(self, data: bytes) -> None:
            self._read_size = len(data)
            super().data_received(data)
            if self._pending:
                self._after_read(len(data))

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._pending, self._head_bytes = True, 0
            self._head_started = self.loop.time()

        def on_headers_complete(self) -> None:
            self._pending = False
            if self._head_timer is not None:
                self._head_complete()
            if self._head_bytes + self._read_size > MAX_HEADER_BYTES:
                size = len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers)
                if size > MAX_HEADER_BYTES:
                    raise _HeadersTooLarge
            super().on_headers_complete()

        def _head_pending(self) -> bool:
            return self._pending


class _H11(_Guard, H11Protocol):
    """uvicorn's h11 protocol, guarded."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._guard_start()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            buffered = len(self.conn.trailing_data[0])
            if not buffered:
                self._head_begins()  # the first bytes of a request
            # h11's own limit only applies to a head still incomplete after a read.
            end = data.find(b"\r\n\r\n")
            if buffered + (len(data) if end < 0 else end) > MAX_HEADER_BYTES:
                self._answer(*_parser_error(_HeadersTooLarge()))
                return
        super().data_received(data)
        if not self._head_pending():
            self._head_complete()
        self._after_read(len(data))

    def _head_pending(self) -> bool:
        return self.conn.their_state is h11.IDLE and bool(self.conn.trailing_data[0])


# The class uvicorn runs (server.py names it by this module path).
HTTPProtocol: type = _HttpTools or _H11
