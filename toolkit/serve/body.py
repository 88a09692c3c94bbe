"""Reading and parsing a /predict request body, with every refusal an HTTP RequestError.

The body is read in pieces and refused with 413 as soon as it passes the byte limit (or
at once from Content-Length), and with 408 when it takes longer than the body timeout;
both close the connection, so the rest of the body is never read. Malformed JSON,
NaN/Infinity literals and absurdly long numbers get 400; wrong shapes get 422; more rows
than the limit get 413.
"""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from types import CoroutineType
from typing import Any

import numpy as np

from toolkit.errors import RequestError
from toolkit.runtime.inputs import all_finite

# A JSON number longer than this is refused before conversion: float64 needs at most
# 17 significant digits plus sign and exponent, and Python's int() of a 100,000-digit
# string costs real CPU (and raises past 4,300 digits).
MAX_NUMBER_CHARS = 64


async def read_body(scope: dict[str, Any], receive: Any, limit: int, timeout: float) -> bytes:
    """The whole body, or a RequestError (413 over `limit` bytes, 408 after `timeout` s)."""
    declared = _content_length(scope["headers"])
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(
            413,
            "body_too_large",
            f"request body of {int(declared):,} bytes exceeds {limit:,}",
            close=True,
        )
    # Most bodies arrive with their headers: taken at once, they need no deadline timer
    # (asyncio.timeout cost ~5 us a request, a tenth of a 1-row request's server time).
    message = _at_once(receive)
    if type(message) is dict and message["type"] == "http.request" and not message.get("more_body"):
        body = message.get("body", b"")
        if len(body) <= limit:
            return body
    if isinstance(message, dict) and not message.get("more_body", False):
        return _collected(message, [], 0, limit)  # the 413, or a disconnect's 400
    try:
        if sys.version_info >= (3, 11):  # no extra task per request, unlike wait_for
            async with asyncio.timeout(timeout):
                return await _collect(receive, limit, message)
        return await asyncio.wait_for(_collect(receive, limit, message), timeout)
    except asyncio.TimeoutError as error:
        raise RequestError(
            408, "timeout", f"the request body did not arrive within {timeout:g} s", close=True
        ) from error


def _content_length(headers: Any) -> str:
    for name, value in headers:
        if name == b"content-length":
            return value.decode("latin-1")
    return ""


def _at_once(receive: Any) -> Any:
    """receive()'s message if it is there without waiting; else None, or an awaitable
    that is not a coroutine (for the deadline path to await).

    The coroutine is stepped once by hand: a message already received completes it at
    once; one still on its way makes it wait, and the waiting call is closed, as a timeout
    would cancel it, to be made again under the deadline.
    """
    waiting = receive()
    if not isinstance(waiting, CoroutineType):  # e.g. a Future: awaited with the deadline
        return waiting
    try:
        waiting.send(None)
    except StopIteration as done:
        return done.value
    waiting.close()
    return None


async def _collect(receive: Any, limit: int, first: Any = None) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        if first is None:
            message = await receive()
        else:  # the message (or awaitable) _at_once got
            message = first if isinstance(first, dict) else await first
            first = None
        if not message.get("more_body", False):
            return _collected(message, parts, size, limit)
        size = _add(message, parts, size, limit)


def _add(message: Any, parts: list[bytes], size: int, limit: int) -> int:
    """Append the message's body to `parts`; the new size, or 400 (disconnect) / 413."""
    if message["type"] == "http.disconnect":
        raise RequestError(400, "disconnected", "the client closed the connection", close=True)
    chunk = message.get("body", b"")
    size += len(chunk)
    if size > limit:
        raise RequestError(
            413, "body_too_large", f"request body exceeds {limit:,} bytes", close=True
        )
    parts.append(chunk)
    return size


def _collected(last: Any, parts: list[bytes], size: int, limit: int) -> bytes:
    """The body, given its last message."""
    _add(last, parts, size, limit)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows (NaN and Infinity are refused)")


def _number(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number of {len(text):,} characters (at most {MAX_NUMBER_CHARS})")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]!r} is out of the float64 range")
    return value


# Bytes that can appear in a JSON number, mapped to "#": a run longer than the limit in
# the translated body is a number (or a string) too long for the fast path.
_NUMBER_BYTES = bytes.maketrans(b"-+.0123456789eE", b"#" * 15)
_LONG_RUN = b"#" * (MAX_NUMBER_CHARS + 1)


# Built once: json.loads with hooks builds a new decoder on every call (+1.6 us).
_FAST = json.JSONDecoder(parse_constant=_reject_constant, parse_int=float)
_CAREFUL = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_number, parse_int=_number)


def parse_json(body: bytes, careful: bool = False) -> Any:
    """Parse with NaN/Infinity refused and integers read as floats.

    The careful path checks every number's length and range in Python (slow: it cost
    ~900 us of a 1,000-row request); it runs when a byte scan finds a run of number
    characters longer than MAX_NUMBER_CHARS, or, via `_finite_array`, when a fast parse
    produced an overflow to infinity.
    """
    if not body:
        raise RequestError(400, "invalid_json", "empty body; expected a JSON object")
    careful = careful or _LONG_RUN in body.translate(_NUMBER_BYTES)
    try:
        # As json.loads does with bytes: UTF-8, -16 or -32, told apart by the first bytes
        # (a body that opens with "{" and no NUL byte after it is UTF-8: skip the test).
        utf8 = body[0] == 0x7B and (len(body) < 2 or body[1] != 0)
        text = body.decode("utf-8" if utf8 else json.detect_encoding(body), "surrogatepass")
        return (_CAREFUL if careful else _FAST).decode(text)
    except json.JSONDecodeError as exc:
        raise RequestError(400, "invalid_json", f"malformed JSON: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # from the hooks above, or absurd nesting
        raise RequestError(400, "invalid_json", f"invalid JSON value: {exc}") from exc


def check_numbers(body: bytes) -> None:
    """The 400 for a number outside float64, if the body has one (it would need an exponent).

    The fast parse reads such a number as infinity; a body refused for another reason
    (422, 413) must still get this 400, so every body gets the same status and wording.
    """
    if b"e" in body or b"E" in body:
        parse_json(body, careful=True)


def _finite_array(values: Any, body: bytes, ndim: int, dtype: Any) -> np.ndarray | None:
    """`values` as an array of `ndim` dimensions in `dtype` (the model's: the Predictor
    then converts nothing) when that is safe and lossless, else None.

    numpy would quietly turn true into 1.0 and "1.5" into 1.5, so bodies holding booleans
    or string values keep the list path, where the Predictor's guard names the cell. A
    value beyond `dtype`'s range stays float64, for the Predictor to name it.
    """
    array = _as_array(values, dtype)
    if array is None or array.ndim != ndim:
        return None
    if all_finite(array):
        return array
    wide = array if array.dtype == np.float64 else _as_array(values, np.float64)
    if not all_finite(wide):  # only an overflow gets here: NaN literals are refused
        parse_json(body, careful=True)  # raises the 400 naming the number
    return wide


# A value beyond float32's range becomes infinity in _as_array, which then reads it again
# as float64; numpy's warning about it is noise.
warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning, __name__)


def _as_array(values: Any, dtype: Any) -> Any:
    """`values` as an array in `dtype`; None if they are not all numbers; float64 if one
    is beyond `dtype`'s range and numpy raises about it (np.seterr, warnings as errors)."""
    try:
        return np.asarray(values, dtype=dtype)
    except (ValueError, TypeError):
        return None
    except (FloatingPointError, RuntimeWarning):
        return np.asarray(values, dtype=np.float64)


def features(payload: Any, body: bytes, max_rows: int, dtype: Any = np.float64) -> tuple[Any, int]:
    """The input for Predictor.predict and its row count, or a 422 saying what is wrong.

    Plain numbers become arrays in `dtype` (pass the model's); others stay lists.
    """
    if not isinstance(payload, dict) or ("rows" in payload) == ("columns" in payload):
        raise RequestError(
            422,
            "invalid_request",
            'expected a JSON object with "rows" (a list of rows) or "columns" (feature name -> '
            "list of values)",
        )
    data, rows = _rows(payload["rows"]) if "rows" in payload else _columns(payload["columns"])
    if rows > max_rows:
        raise RequestError(413, "too_many_rows", f"{rows:,} rows exceed the limit of {max_rows:,}")
    if rows == 0:
        raise RequestError(422, "invalid_request", "no rows to predict")
    # An array skips the Predictor's per-cell list checks (~100 us per 1,000 rows); only
    # bodies without quoted values (keys aside), booleans and nulls (numpy reads None as
    # NaN) qualify.
    if "rows" in payload:
        if _plain(body, 1):
            array = _finite_array(data, body, 2, dtype)
            return (data if array is None else array), rows
    elif _plain(body, 1 + len(data)):
        arrays = {name: _finite_array(v, body, 1, dtype) for name, v in data.items()}
        if all(a is not None for a in arrays.values()):
            return arrays, rows
    return data, rows


def _rows(data: Any) -> tuple[list[Any], int]:
    if not isinstance(data, list):
        raise RequestError(
            422, "invalid_request", f'"rows" must be a list, got {type(data).__name__}'
        )
    if data and not isinstance(data[0], list):
        raise RequestError(
            422, "invalid_request", '"rows" must be a list of rows, each a list of numbers'
        )
    return data, len(data)


def _columns(data: Any) -> tuple[dict[str, Any], int]:
    if not isinstance(data, dict):
        raise RequestError(422, "invalid_request", '"columns" must map feature names to lists')
    lengths = {len(v) if isinstance(v, list) else -1 for v in data.values()}
    if -1 in lengths:
        raise RequestError(422, "invalid_request", 'every "columns" value must be a list')
    return data, max(lengths, default=0)


# What a body of numbers holds besides its keys: deleted, the rest is keys, strings and
# literals (true, false and null lose their "e": tru, fals).
_STRUCTURE = b"-+.0123456789eE[]{},: \t\r\n"


def _plain(body: bytes, keys: int) -> bool:
    """Whether the body holds `keys` quoted keys and otherwise only numbers: no string
    values, true, false or null. One pass (7 us for 1,000 rows; four searches took 54)."""
    rest = body.translate(None, _STRUCTURE)
    return (
        rest.count(b'"') == 2 * keys
        and b"tru" not in rest
        and b"fals" not in rest
        and b"null" not in rest
    )
