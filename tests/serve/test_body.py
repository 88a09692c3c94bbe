"""toolkit/serve/body.py: reading and parsing request bodies, in-process (no server).

The HTTP tests (test_endpoints.py, test_limits.py) prove the same rules end to end; these
pin each function's contract and its error's status, type and wording.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="toolkit serve needs the 'serve' extra")

from toolkit.errors import RequestError, ToolkitError
from toolkit.serve.body import (
    MAX_NUMBER_CHARS,
    check_numbers,
    features,
    parse_json,
    read_body,
)


@contextlib.contextmanager
def refused(status: int, kind: str, match: str) -> Iterator[None]:
    """pytest.raises for a RequestError of this status and type."""
    with pytest.raises(RequestError, match=match) as caught:
        yield
    assert (caught.value.status, caught.value.kind) == (status, kind)


def test_request_error_is_a_toolkit_error_carrying_status_kind_message_and_close():
    error = RequestError(413, "body_too_large", "too big", close=True)
    assert isinstance(error, ToolkitError)
    assert (error.status, error.kind, error.message, error.close) == (
        413,
        "body_too_large",
        "too big",
        True,
    )
    assert str(error) == "too big"
    assert RequestError(400, "invalid_json", "bad").close is False


# --- parse_json ---------------------------------------------------------------------------


def test_integers_are_read_as_floats():
    assert parse_json(b'{"rows": [[1, 2]]}') == {"rows": [[1.0, 2.0]]}
    assert isinstance(parse_json(b"[1]")[0], float)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_literals_are_400(literal):
    with refused(400, "invalid_json", "is not a number JSON allows"):
        parse_json(b'{"rows": [[' + literal + b", 1]]}")


def test_empty_and_malformed_bodies_are_400():
    with refused(400, "invalid_json", "^empty body; expected a JSON object$"):
        parse_json(b"")
    with refused(400, "invalid_json", "^malformed JSON: "):
        parse_json(b'{"rows": [[1, 2]]')


def test_a_number_too_long_is_refused_before_conversion():
    with refused(
        400, "invalid_json", f"a number of 65 characters \\(at most {MAX_NUMBER_CHARS}\\)"
    ):
        parse_json(b"[" + b"1" * (MAX_NUMBER_CHARS + 1) + b"]")
    assert parse_json(b"[" + b"1" * MAX_NUMBER_CHARS + b"]") == [float("1" * MAX_NUMBER_CHARS)]


def test_a_number_beyond_float64_is_400_naming_it():
    with refused(400, "invalid_json", "number '1e999' is out of the float64 range"):
        parse_json(b"[1e999]", careful=True)


# --- features -----------------------------------------------------------------------------


def test_plain_rows_become_a_float64_array():
    body = b'{"rows": [[1, 2], [3, 4]]}'
    data, rows = features(parse_json(body), body, max_rows=10)
    assert rows == 2
    assert isinstance(data, np.ndarray) and data.dtype == np.float64
    np.testing.assert_array_equal(data, [[1.0, 2.0], [3.0, 4.0]])


def test_plain_rows_become_an_array_in_the_models_dtype_rounded_as_numpy_rounds():
    body = b'{"rows": [[0.1, 2], [3.4028235e38, -1e-46]]}'
    data, _ = features(parse_json(body), body, max_rows=10, dtype=np.float32)
    assert data.dtype == np.float32
    # Reference: numpy's own float64 -> float32 rounding of the same values.
    expected = np.array([[0.1, 2.0], [3.4028235e38, -1e-46]]).astype(np.float32)
    np.testing.assert_array_equal(data, expected)


# body.py silences numpy's cast warning with a filter set at import, which pytest resets
# for each test: set again here, as it is in a server.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("strict", [False, True])
def test_a_value_beyond_float32_stays_float64_for_the_predictor_to_name(strict):
    body = b'{"rows": [[1e39, 2]]}'
    with warnings.catch_warnings():
        if strict:  # numpy's overflow warning raised as an error: the same answer
            warnings.simplefilter("error")
        data, _ = features(parse_json(body), body, max_rows=10, dtype=np.float32)
    assert data.dtype == np.float64
    np.testing.assert_array_equal(data, [[1e39, 2.0]])


def test_plain_columns_become_arrays_by_name():
    body = b'{"columns": {"x1": [1, 2], "x2": [3, 4]}}'
    data, rows = features(parse_json(body), body, max_rows=10)
    assert rows == 2 and list(data) == ["x1", "x2"]
    assert all(isinstance(v, np.ndarray) for v in data.values())


def test_booleans_and_quoted_values_keep_the_list_path_for_the_guard_to_name():
    for body in (b'{"rows": [[true, 2]]}', b'{"rows": [["1.5", 2]]}'):
        data, rows = features(parse_json(body), body, max_rows=10)
        assert isinstance(data, list) and rows == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"rows": [[false, 2]]}',
        b'{"rows": [[null, 2]]}',
        b'{"rows": [[1, 2]], "note": "hi"}',  # a string beside the rows
        b'{"columns": {"x1": [1, null], "x2": [3, 4]}}',
        b'{"columns": {"x1": ["1", 2], "x2": [3, 4]}}',
    ],
)
def test_any_literal_or_string_value_keeps_the_list_path(body):
    data, _ = features(parse_json(body), body, max_rows=10)
    assert not isinstance(data, np.ndarray)
    if isinstance(data, dict):
        assert not all(isinstance(v, np.ndarray) for v in data.values())


def test_numbers_in_any_json_spelling_take_the_array_path():
    # Exponents, signs, whitespace and key names with digits and "e" are all plain.
    body = b'{ "columns" : {"e1": [1E2, -2.5e-3],\n\t"x 2": [0, 7]} }'
    data, rows = features(parse_json(body), body, max_rows=10)
    assert rows == 2 and all(isinstance(v, np.ndarray) for v in data.values())
    np.testing.assert_array_equal(data["e1"], [100.0, -0.0025])
    body = b'{"rows":[[1e0,2],\r\n[3,-4E-1]]}'
    data, _ = features(parse_json(body), body, max_rows=10)
    np.testing.assert_array_equal(data, [[1.0, 2.0], [3.0, -0.4]])


def test_an_overflow_in_the_fast_path_is_a_400_naming_the_number():
    body = b'{"rows": [[1e999, 2]]}'
    with refused(400, "invalid_json", "out of the float64 range"):
        features({"rows": [[float("inf"), 2.0]]}, body, max_rows=10)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ([1, 2], 'expected a JSON object with "rows"'),
        ({"rows": [], "columns": {}}, 'expected a JSON object with "rows"'),
        ({"rows": {"a": 1}}, '"rows" must be a list, got dict'),
        ({"rows": [1, 2]}, '"rows" must be a list of rows'),
        ({"columns": [1]}, '"columns" must map feature names to lists'),
        ({"columns": {"x1": 1}}, 'every "columns" value must be a list'),
        ({"rows": []}, "no rows to predict"),
    ],
)
def test_wrong_shapes_are_422(payload, match):
    with refused(422, "invalid_request", match):
        features(payload, b"{}", max_rows=10)


def test_more_rows_than_the_limit_is_413():
    with refused(413, "too_many_rows", "^11 rows exceed the limit of 10$"):
        features({"rows": [[0.0, 0.0]] * 11}, b"", max_rows=10)


def test_check_numbers_is_the_400_for_a_number_beyond_float64_and_quiet_otherwise():
    for body in (b'{"rows": [[1e999, 2]], "x": 1}', b"[1E+999]", b'{"columns": {"a": [-1e400]}}'):
        with refused(400, "invalid_json", "is out of the float64 range"):
            check_numbers(body)
    # Bodies without an exponent are not parsed again; valid ones pass.
    for body in (b'{"rows": [[1, 2]], "x": 1}', b'{"rows": [[1e300, 1e-300]]}', b"[1"):
        check_numbers(body)


# --- read_body ----------------------------------------------------------------------------


def messages(*parts: bytes) -> Any:
    """An ASGI receive() that hands out `parts` as one body in pieces."""
    queue = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def read(receive: Any, limit: int = 100, timeout: float = 5.0, length: int | None = None) -> bytes:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return asyncio.run(read_body({"headers": headers}, receive, limit, timeout))


def test_a_body_in_pieces_is_joined():
    assert read(messages(b'{"rows": ', b"[[1, 2]]}")) == b'{"rows": [[1, 2]]}'


def test_a_declared_length_over_the_limit_is_413_before_reading():
    async def never(*args: Any) -> dict[str, Any]:
        raise AssertionError("the body was read")

    with refused(413, "body_too_large", "^request body of 1,000 bytes exceeds 100$"):
        read(never, limit=100, length=1000)


def test_a_streamed_body_over_the_limit_is_413_and_closes():
    with pytest.raises(RequestError, match="request body exceeds 10 bytes") as caught:
        read(messages(b"12345", b"678901"), limit=10)
    assert caught.value.close


def test_a_disconnect_is_400_and_closes():
    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    with pytest.raises(RequestError, match="the client closed the connection") as caught:
        read(gone)
    assert (caught.value.status, caught.value.close) == (400, True)


def test_a_body_slower_than_the_timeout_is_408():
    async def stalled() -> dict[str, Any]:
        await asyncio.sleep(10)
        raise AssertionError("not cancelled")

    with refused(408, "timeout", "^the request body did not arrive within 0.05 s$"):
        read(stalled, timeout=0.05)


def test_a_body_that_is_not_there_yet_is_waited_for_under_the_deadline():
    # The first receive() is stepped by hand and closed when it would wait; the second
    # waits under the deadline. Each call must be made whole: count them.
    calls = []

    async def late() -> dict[str, Any]:
        calls.append("called")
        await asyncio.sleep(0.01)
        calls.append("answered")
        return {"type": "http.request", "body": b"[1]", "more_body": False}

    assert read(late) == b"[1]"
    assert calls == ["called", "called", "answered"]


def test_a_receive_that_returns_a_future_is_awaited():
    async def main() -> bytes:
        def receive() -> asyncio.Future[dict[str, Any]]:
            future = asyncio.get_running_loop().create_future()
            future.set_result({"type": "http.request", "body": b"[2]", "more_body": False})
            return future

        return await read_body({"headers": []}, receive, 100, 5.0)

    assert asyncio.run(main()) == b"[2]"
