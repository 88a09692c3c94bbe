"""A corpus of malformed tables through `toolkit train` and `toolkit predict`: never a traceback.

About a hundred CSV and Parquet files, each a good table (columns x1, x2, y) broken in one
way: blank cells, text in numbers, ragged rows, bad quotes, byte-order marks, NUL bytes,
huge numbers, NaN and infinity as text, repeated or blank headers, empty files, binary
junk, truncated or damaged Parquet, columns of the wrong type, bytes that are not UTF-8.
Where a case breaks the table is drawn from a seeded generator, so every run sees the same
corpus. Each file goes through `toolkit train` and `toolkit predict` (the seed model:
features x1, x2), and CSV also through predict's stdin, in-process. Every run must end
with exit 0, or with exit 1 or 2 and one `Error: ...` message: no exception escapes.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from toolkit.cli import cli

SEED = 20_240_601
ROWS = 12
Case = tuple[str, bytes]  # file name (its suffix picks the format), content


def _good_rows(rng: random.Random) -> list[list[str]]:
    rows = []
    for _ in range(ROWS):
        x1, x2 = rng.randint(-50, 50), rng.randint(-50, 50)
        rows.append([str(x1), str(x2), str(x1 + x2 - 1)])
    return rows


def _csv(rows: list[list[str]], header: str = "x1,x2,y") -> bytes:
    return (header + "\n" + "".join(",".join(row) + "\n" for row in rows)).encode()


def _cell_cases(rng: random.Random) -> list[Case]:
    """One cell of a good table replaced by a bad value."""
    values = [
        "", " ", "abc", "1,5", '"1,5"', "1.2.3", "--1", "0x10", "1e", "e5", "١٢", "½", "1_000",
        "nan", "NaN", "-nan", "inf", "-Infinity", "+inf", "NA", "null", "None", "N/A", "#DIV/0!",
        "1e400", "-1e309", "9" * 400, "1e-400", "TRUE", "2024-01-01", "$5", "5%", "'3'",
        "\t", "1 2", "\x00", "5\x00", "\x7f",
    ]  # fmt: skip
    cases = []
    for k, value in enumerate(values):
        rows = _good_rows(rng)
        rows[rng.randrange(ROWS)][rng.randrange(3)] = value
        cases.append((f"cell-{k:02d}.csv", _csv(rows)))
    return cases


def _shape_cases(rng: random.Random) -> list[Case]:
    """Ragged rows, bad quotes, odd line endings, headers."""
    rows = _good_rows(rng)
    at = rng.randrange(1, ROWS)
    ragged = [row[:] for row in rows]
    ragged[at] = ragged[at][:2]
    long = [row[:] for row in rows]
    long[at] = [*long[at], "7"]
    body = _csv(rows)[len("x1,x2,y\n") :]
    lines = body.splitlines(keepends=True)
    quoted = [*lines[:at], b'"' + lines[at], *lines[at + 1 :]]
    middle = [*lines[:at], lines[at].replace(b",", b',"', 1), *lines[at + 1 :]]
    extra = ",".join(f"c{i}" for i in range(500))
    header = b"x1,x2,y\n"
    return [
        ("ragged-short.csv", _csv(ragged)),
        ("ragged-long.csv", _csv(long)),
        ("quote-unclosed.csv", header + b"".join(quoted)),
        ("quote-opened-mid-row.csv", header + b"".join(middle)),
        ("quote-inside-cell.csv", header + b'1,2"3",4\n' + body),
        ("quote-newline-in-cell.csv", header + b'"1\n",2,3\n' + body),
        ("crlf.csv", _csv(rows).replace(b"\n", b"\r\n")),
        ("cr-only.csv", _csv(rows).replace(b"\n", b"\r")),
        ("mixed-endings.csv", _csv(rows).replace(b"\n", b"\r\n", 3)),
        ("no-final-newline.csv", _csv(rows).rstrip(b"\n")),
        ("blank-lines.csv", _csv(rows).replace(b"\n", b"\n\n")),
        ("tabs.csv", _csv(rows).replace(b",", b"\t")),
        ("semicolons.csv", _csv(rows).replace(b",", b";")),
        ("header-spaces.csv", _csv(rows, "x1, x2, y")),
        ("header-quoted.csv", _csv(rows, '"x1","x2","y"')),
        ("header-duplicate.csv", _csv(rows, "x1,x1,y")),
        ("header-blank.csv", _csv(rows, "x1,,y")),
        ("header-all-blank.csv", _csv(rows, ",,")),
        ("header-only.csv", header),
        ("header-one-column.csv", _csv([[r[0]] for r in rows], "y")),
        ("header-case.csv", _csv(rows, "X1,X2,Y")),
        ("header-missing.csv", body),
        ("header-twice.csv", header + header + body),
        ("wide.csv", _csv([row + ["0"] * 500 for row in rows], f"x1,x2,y,{extra}")),
        ("long-line.csv", header + b"1,2," + b"3" * 100_000 + b"\n" + body),
    ]  # fmt: skip


def _byte_cases(rng: random.Random) -> list[Case]:
    """Encodings, byte-order marks, NUL bytes, empty files, junk."""
    good = _csv(_good_rows(rng))
    latin = good.replace(b"x2", b"x\xe92", 1)
    cell_at = rng.randrange(len(b"x1,x2,y\n") + 1, len(good) - 1)
    return [
        ("bom-utf8.csv", b"\xef\xbb\xbf" + good),
        ("bom-utf16.csv", good.decode().encode("utf-16")),
        ("bom-utf16-be.csv", b"\xfe\xff" + good.decode().encode("utf-16-be")),
        ("bom-utf32.csv", good.decode().encode("utf-32")),
        ("bom-twice.csv", b"\xef\xbb\xbf\xef\xbb\xbf" + good),
        ("latin1-header.csv", latin),
        ("latin1-cell.csv", good[:cell_at] + b"\xe9" + good[cell_at:]),
        ("invalid-utf8-tail.csv", good + b"1,2,\xff\xfe\n"),
        ("nul-in-header.csv", good.replace(b"x2", b"x\x002", 1)),
        ("nul-cell.csv", good[:cell_at] + b"\x00" + good[cell_at:]),
        ("nuls-only.csv", b"\x00" * 64),
        ("empty.csv", b""),
        ("newlines-only.csv", b"\n\n\n"),
        ("spaces-only.csv", b"   \n  \n"),
        ("junk.csv", rng.randbytes(300)),
        ("junk-no-suffix", rng.randbytes(300)),
        ("junk-par1-magic", b"PAR1" + rng.randbytes(200)),
        ("gzip.csv", b"\x1f\x8b\x08\x00" + rng.randbytes(100)),
        ("control-chars.csv", good.replace(b"\n", b"\x0b\n", 2)),
        ("emoji-header.csv", good.replace(b"x1", "x1\U0001f600".encode(), 1)),
    ]


def _parquet(table: pa.Table, **options: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def _parquet_cases(rng: random.Random) -> list[Case]:
    """Truncated and damaged files, columns of the wrong type, odd schemas."""
    rows = [[float(c) for c in row] for row in _good_rows(rng)]
    columns = {name: [row[i] for row in rows] for i, name in enumerate(["x1", "x2", "y"])}
    good = _parquet(pa.table(columns))
    snappy = _parquet(pa.table({k: v * 200 for k, v in columns.items()}))

    def flipped(data: bytes, start: int, stop: int) -> bytes:
        damaged = bytearray(data)
        for i in rng.sample(range(start, stop), 16):
            damaged[i] ^= 0xFF
        return bytes(damaged)

    def typed(kind: pa.Array) -> bytes:
        n = len(kind)
        return _parquet(pa.table({"x1": columns["x1"][:n], "x2": kind, "y": columns["y"][:n]}))

    def named(*names: str) -> bytes:
        return _parquet(pa.table([pa.array([1.0])] * len(names), names=list(names)))

    n = 3
    return [
        ("truncated-half.parquet", good[: len(good) // 2]),
        ("truncated-footer.parquet", good[:-5]),
        ("truncated-magic.parquet", good[:4]),
        ("header-magic-only.parquet", b"PAR1"),
        ("pages-flipped.parquet", flipped(snappy, 8, len(snappy) // 2)),
        ("footer-flipped.parquet", flipped(good, len(good) - 200, len(good) - 8)),
        ("footer-length-wrong.parquet", good[:-8] + (10**6).to_bytes(4, "little") + b"PAR1"),
        ("csv-in-parquet.parquet", _csv(_good_rows(rng))),
        ("empty.parquet", b""),
        ("strings.parquet", typed(pa.array(["1", "b", "3"]))),
        ("bools.parquet", typed(pa.array([True, False, True]))),
        ("timestamps.parquet", typed(pa.array([1, 2, 3], pa.timestamp("s")))),
        ("lists.parquet", typed(pa.array([[1.0], [2.0], [3.0]]))),
        ("struct.parquet", typed(pa.array([{"a": 1.0}] * n))),
        ("dictionary.parquet", typed(pa.array(["a", "b", "a"]).dictionary_encode())),
        ("decimal.parquet", typed(pa.array([1, 2, 3], pa.decimal128(5, 2)))),
        ("all-null.parquet", typed(pa.array([None] * n, pa.float64()))),
        ("null-type.parquet", typed(pa.array([None] * n))),
        ("binary.parquet", typed(pa.array([b"\xff", b"\x00", b"1"]))),
        ("float16.parquet", typed(pa.array([1.0, 2.0, 3.0], pa.float16()))),
        ("uint64-max.parquet", typed(pa.array([2**64 - 1, 0, 1], pa.uint64()))),
        ("nan-and-inf.parquet", typed(pa.array([float("nan"), float("inf"), 1.0]))),
        ("duplicate-names.parquet", named("x1", "x1", "y")),
        ("blank-name.parquet", named("x1", "", "y")),
        ("spaced-names.parquet", named(" x1", "x2 ", "y")),
        ("zero-rows.parquet", _parquet(pa.table({k: pa.array([], pa.float64()) for k in columns}))),
        ("one-column.parquet", _parquet(pa.table({"y": columns["y"]}))),
        ("many-row-groups.parquet", _parquet(pa.table(columns), row_group_size=1)),
        ("no-statistics.parquet", _parquet(pa.table(columns), write_statistics=False)),
        ("no-suffix-parquet", good),
    ]  # fmt: skip


def corpus() -> list[Case]:
    rng = random.Random(SEED)
    return _cell_cases(rng) + _shape_cases(rng) + _byte_cases(rng) + _parquet_cases(rng)


CORPUS = corpus()


def test_the_corpus_is_large_and_its_names_unique():
    names = [name for name, _ in CORPUS]
    assert len(names) >= 100 and len(set(names)) == len(names)


@pytest.fixture(scope="module")
def model(seed_onnx: Path) -> Path:
    return seed_onnx


def _checked(result: Result, what: str) -> None:
    """Exit 0, or 1 or 2 with one `Error: ...` message; no exception escaped the command."""
    escaped = result.exception if not isinstance(result.exception, SystemExit) else None
    assert escaped is None, f"{what}: {escaped!r}"
    assert result.exit_code in (0, 1, 2), f"{what}: exit {result.exit_code}"
    assert "Traceback" not in result.output, what
    if result.exit_code:
        assert result.output.startswith("Error: "), f"{what}: {result.output!r}"
        assert result.output.count("Error: ") == 1, f"{what}: {result.output!r}"


def _data_rows(content: bytes) -> int:
    """How many data rows Python's csv module finds."""
    text = content.decode("utf-8-sig", "surrogateescape")
    rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    return len(rows) - 1


@pytest.mark.parametrize(("name", "content"), CORPUS, ids=[name for name, _ in CORPUS])
def test_a_bad_table_ends_in_a_clean_answer_from_train_and_predict(model, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    runner = CliRunner()
    invoke: Callable[..., Result] = runner.invoke
    trained = invoke(cli, ["train", "--data", str(path), "--out", str(tmp_path / "m.pt"), "-q"])
    _checked(trained, f"train {name}")
    out = tmp_path / "out.csv"
    predicted = invoke(cli, ["predict", str(model), "--input", str(path), "--output", str(out)])
    _checked(predicted, f"predict {name}")
    if predicted.exit_code == 0 and path.suffix == ".csv":
        # The right answer: one prediction per data row, nothing dropped or invented.
        assert _data_rows(out.read_bytes()) == _data_rows(content), name
    if path.suffix == ".csv":
        piped = invoke(cli, ["predict", str(model)], input=content)
        _checked(piped, f"predict < {name}")
        assert piped.exit_code == predicted.exit_code, name
