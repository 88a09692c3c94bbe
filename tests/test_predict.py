"""toolkit/predict.py, toolkit/info.py and their commands: `toolkit predict`, `toolkit info`."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from toolkit.cli import cli
from toolkit.predict import predict_file
from toolkit.runtime import Predictor


@pytest.fixture(scope="module")
def model(seed_onnx: Path) -> Path:
    """The seed model: y = x1 + x2 - 1, float32."""
    return seed_onnx


def invoke(*args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=True)


def test_csv_file_to_stdout_with_id_passed_through(model, write_csv):
    path = write_csv("in.csv", "id,x2,x1,extra\nr1,1,1,zz\nr2,2,1,zz\nr3,20,10,zz\n")
    result = invoke("predict", str(model), "--input", str(path), "--id", "id")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "id,y"
    assert [line.split(",")[0] for line in lines[1:]] == ['"r1"', '"r2"', '"r3"']
    # float32 sums of small integers are exact.
    assert [float(line.split(",")[1]) for line in lines[1:]] == [1.0, 2.0, 29.0]


def test_stdin_to_file_is_atomic_and_reported(model):
    result = invoke("predict", str(model), "--output", "out.csv", stdin="x1,x2\n1,1\n2,3\n")
    assert result.exit_code == 0, result.output
    assert Path("out.csv").read_text().split() == ["y", "1", "4"]
    assert result.stderr.strip() == "predicted 2 rows with CPUExecutionProvider -> out.csv"


def test_json_lines(model):
    result = invoke("predict", str(model), "--json", stdin="x1,x2\n1,1\n2,3\n")
    assert [json.loads(line) for line in result.stdout.splitlines()] == [{"y": 1.0}, {"y": 4.0}]


def test_parquet_in_and_out(model, tmp_path):
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"key": [7, 8], "x1": [1.0, 2.0], "x2": [1.0, 3.0]}), source)
    result = invoke(
        "predict", str(model), "--input", str(source), "--output", "out.parquet", "--id", "key"
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table("out.parquet")
    assert table.column_names == ["key", "y"]
    assert table.column("key").to_pylist() == ["7", "8"] or table.column("key").to_pylist() == [
        7,
        8,
    ]
    assert table.column("y").to_pylist() == [1.0, 4.0]


def test_streams_in_chunks_and_matches_the_predictor(model, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-100, 100, (10_000, 2))
    source = tmp_path / "big.csv"
    pa_csv.write_csv(pa.table({"x1": x[:, 0], "x2": x[:, 1]}), source)
    predictor = Predictor(model)
    batch_sizes: list[int] = []
    original = predictor.predict

    def counting(data, **kwargs):
        batch_sizes.append(len(data))
        return original(data, **kwargs)

    predictor.predict = counting  # type: ignore[method-assign]
    summary = predict_file(predictor, str(source), str(tmp_path / "out.csv"), chunk_rows=999)
    assert summary.rows == 10_000
    # Bounded memory: the model never sees more than --chunk-rows rows at once.
    assert max(batch_sizes) <= 999 and sum(batch_sizes) == 10_000
    predictor.predict = original  # type: ignore[method-assign]
    # The CSV holds float32's shortest round-trip text: read back as float32, it is exact.
    options = pa_csv.ConvertOptions(column_types={"y": pa.float32()})
    got = pa_csv.read_csv(tmp_path / "out.csv", convert_options=options).column("y").to_numpy()
    np.testing.assert_array_equal(got, predictor.predict(x)[:, 0])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("x1,x2\n1,2\n3,\n", "Error: {src}, row 3, column 'x2': blank cell; expected a number."),
        (
            "x1,x2\n1,2\n\n3,abc\n",
            "Error: {src}, row 4, column 'x2': expected a number, got 'abc'.",
        ),
        (
            "x1,x2\n1,2\n3,inf\n",
            "Error: {src}, row 3, column 'x2': expected a finite number, got inf",
        ),
    ],
)
def test_bad_rows_are_named_by_file_row(model, write_csv, content, message):
    path = write_csv("bad.csv", content)
    result = invoke("predict", str(model), "--input", str(path), "--output", "out.csv")
    assert result.exit_code == 1
    assert message.format(src=path) in result.output
    assert "Traceback" not in result.output
    assert not Path("out.csv").exists()  # no partial output


# The same bad file read by training and by `toolkit predict` (features x1, x2): the
# same file, row as seen in the file, column and value. Training's reader refuses NaN and
# infinity itself and the Predictor does for predict, so only the remedy after ";" differs.
SAME_WORDING_CSV = [
    ("x1,x2,y\n1,2,3\n\n4,,6\n", "row 4, column 'x2': blank cell; expected a number."),
    ("x1,x2,y\n1,2,3\n\n4,abc,6\n", "row 4, column 'x2': expected a number, got 'abc'."),
    ('x1,x2,y\n1,2,3\n"4,5,6\n7,8,9\n', "row 3: found 1 value, expected 3 (one per header column"),
    ("x1,x2,y\n1,2,3\n\n\n4,inf,6\n", "row 5, column 'x2': expected a finite number, got inf"),
]
SAME_WORDING_PARQUET = [
    (pa.array([1.0, None, 3.0]), "row 2, column 'x2': blank cell; expected a number."),
    (pa.array([1.0, 2.0, float("nan")]), "row 3, column 'x2': expected a finite number, got nan"),
    (pa.array(["1", "b", "c"]), "column 'x2': has type string; expected a numeric column"),
]


def _training_error(path: Path) -> str:
    from toolkit.errors import DataError
    from toolkit.io import open_source

    with pytest.raises(DataError) as caught:
        list(open_source(path).blocks())
    return str(caught.value)


def _predict_error(model: Path, path: Path) -> str:
    result = invoke("predict", str(model), "--input", str(path), "--output", "out.csv")
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    return line.removeprefix("Error: ")


@pytest.mark.parametrize(("content", "message"), SAME_WORDING_CSV)
def test_a_bad_csv_gets_the_same_words_from_training_and_predict(
    model, write_csv, content, message
):
    path = write_csv("bad.csv", content)
    training, predicting = _training_error(path), _predict_error(model, path)
    assert training.startswith(f"{path}, {message}"), training
    # Training may add what only training can do (read the column with --categorical).
    told = training.split(" If ", 1)[0]
    assert predicting.split(";")[0] == told.split(";")[0]


@pytest.mark.parametrize(("column", "message"), SAME_WORDING_PARQUET)
def test_a_bad_parquet_gets_the_same_words_from_training_and_predict(
    model, tmp_path, column, message
):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"x1": [1.0, 2.0, 3.0], "x2": column, "y": [1.0, 2.0, 3.0]}), path)
    training, predicting = _training_error(path), _predict_error(model, path)
    assert training.startswith(f"{path}, {message}"), training
    assert predicting.split(";")[0] == training.split(";")[0]


def test_parquet_without_its_suffix_is_found_by_magic_bytes(model, tmp_path):
    source = tmp_path / "features-export"  # no .parquet suffix
    pq.write_table(pa.table({"x1": [1.0, 2.0], "x2": [1.0, 3.0]}), source)
    result = invoke("predict", str(model), "--input", str(source))
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["y", "1", "4"]


def test_stdin_errors_name_the_row_as_a_file_would(model):
    result = invoke("predict", str(model), stdin="x1,x2\n1,2\n\n3,abc\n")
    assert result.exit_code == 1
    assert "Error: <stdin>, row 4, column 'x2': expected a number, got 'abc'." in result.output


def test_failed_run_keeps_an_existing_output(model, write_csv):
    Path("out.csv").write_text("old\n")
    bad = write_csv("bad.csv", "x1,x2\n1,\n")
    assert invoke("predict", str(model), "--input", str(bad), "--output", "out.csv").exit_code == 1
    assert Path("out.csv").read_text() == "old\n"


def test_missing_feature_column_is_a_usage_error_without_the_usage_banner(model):
    result = invoke("predict", str(model), stdin="x1,x3\n1,2\n")
    assert result.exit_code == 2
    assert result.output == "Error: <stdin> lacks column 'x2'; it has x1, x3.\n"


def test_non_finite_allowed_on_request(model):
    result = invoke("predict", str(model), "--allow-non-finite", stdin="x1,x2\n1,nan\n")
    assert result.exit_code == 0
    assert result.stdout.split() == ["y", "nan"]


def test_header_only_input_gives_a_header_only_output(model):
    result = invoke("predict", str(model), stdin="x1,x2\n")
    assert result.exit_code == 0
    assert result.stdout.split() == ["y"]


def test_missing_model_is_a_clean_error():
    result = invoke("predict", "nope.onnx", stdin="x1,x2\n1,2\n")
    assert result.exit_code == 1
    assert "Error: model 'nope.onnx' does not exist." in result.output


def test_info_shows_signature_card_opset_size_and_providers(model):
    result = invoke("info", str(model))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"model:      {model} ({model.stat().st_size:,} bytes)" in out
    assert "input:      features tensor(float) ['batch', 2]" in out
    assert "output:     prediction tensor(float) ['batch', 1]" in out
    assert "features:   x1, x2" in out and "targets:    y" in out
    assert "opset:      ai.onnx 18" in out
    assert "providers:  using CPUExecutionProvider; available " in out
    assert "training_data_sha256" in out


def test_info_json(model):
    details = json.loads(invoke("info", str(model), "--json").stdout)
    assert details["input"] == {"name": "features", "type": "tensor(float)", "shape": ["batch", 2]}
    assert details["opsets"] == {"": 18}
    assert details["provider"] == "CPUExecutionProvider"
    assert details["size_bytes"] == model.stat().st_size
    assert json.loads(details["metadata"]["feature_names"]) == ["x1", "x2"]


# -- Hardening: everyday inputs and outputs ------------------------------------------------


def test_a_header_with_spaces_after_the_commas_is_read_by_its_stripped_names(model):
    result = invoke("predict", str(model), stdin="x1, x2\n1,1\n2,3\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["y", "1", "4"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "folder"], "Error: input file 'folder' is a folder; expected a file.\n"),
        (["--output", "folder"], "Error: --output 'folder' is a folder; expected a file path.\n"),
        (
            ["--output", "p.txt"],
            "Error: cannot tell the format to write from the suffix of --output 'p.txt'; use "
            "one of .csv (csv), .tsv (tsv), .jsonl (jsonl), .ndjson (jsonl), .parquet (parquet), "
            ".pq (parquet), or - for CSV on stdout.\n",
        ),
    ],
)
def test_a_wrong_path_is_a_plain_usage_error(model, args, message):
    Path("folder").mkdir()
    result = invoke("predict", str(model), *args, stdin="x1,x2\n1,1\n")
    assert (result.exit_code, result.output) == (2, message)
    assert not Path("p.txt").exists()


def test_tsv_output_is_separated_by_tabs(model):
    result = invoke(
        "predict", str(model), "--output", "p.tsv", "--id", "id", stdin="id,x1,x2\na,1,1\n"
    )
    assert result.exit_code == 0, result.output
    assert Path("p.tsv").read_text().splitlines() == ["id\ty", '"a"\t1']


def test_the_non_finite_hint_names_the_command_line_flag(model):
    result = invoke("predict", str(model), stdin="x1,x2\n1,2\n3,nan\n")
    assert result.exit_code == 1
    assert result.output == (
        "Error: <stdin>, row 3, column 'x2': expected a finite number, got nan; NaN and "
        "infinity are refused (--allow-non-finite accepts them)\n"
    )


def test_a_full_disk_is_a_clean_error_and_leaves_no_file(model, full_disk):
    target = full_disk / "out.csv"
    rows = "".join(f"{i},{i}\n" for i in range(20_000))
    result = invoke("predict", str(model), "--output", str(target), stdin="x1,x2\n" + rows)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: cannot write {str(target)!r}: No space left on device [ENOSPC]; free some "
        "space or write somewhere else. Nothing was written.\n"
    )
    assert sorted(os.listdir(full_disk)) == ["filler"]


def _limit_file_size() -> None:
    # The write then fails with EFBIG instead of the process dying of SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_a_file_size_limit_is_a_clean_error_and_leaves_no_file(model, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("x1,x2\n" + "".join(f"{i},{i}\n" for i in range(20_000)))
    command = [sys.executable, "-m", "toolkit", "predict", str(model), "--input", str(source)]
    done = subprocess.run(
        [*command, "--output", "out.csv"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        "Error: cannot write 'out.csv': File too large [EFBIG]; the file is larger than the "
        "file system or the file-size limit (ulimit -f) allows; write somewhere else. "
        "Nothing was written.\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["in.csv"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_stdout_is_a_clean_error(model, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("x1,x2\n" + "".join(f"{i},{i}\n" for i in range(20_000)))
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "toolkit", "predict", str(model), "--input", str(source)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert done.stderr == (
        "Error: cannot write predictions to stdout: No space left on device [ENOSPC]; "
        "the output is incomplete.\n"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"x\xff1,x2\n1,2\n", "Error: <stdin>, row 1, header cell 1: is not UTF-8 text"),
        (b"x1,x2\n1,2\n3,\xe94\n", "Error: <stdin>, row 3, column 'x2': is not UTF-8 text"),
        (b'x1,x2\n1,2\n"3,4\n5,6\n', "Error: <stdin>, row 3: found 1 value, expected 2"),
    ],
)
def test_bad_bytes_on_stdin_are_named_by_row(model, content, message):
    result = CliRunner().invoke(cli, ["predict", str(model)], input=content)
    assert result.exit_code == 1
    assert result.output.startswith(message), result.output


# --explain: the columns of a model exported with --explain (tests/explain_models.py).


@pytest.fixture(scope="module")
def explain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from explain_models import exported, make_data, trained

    x, y = make_data(rows=30, features=2, seed=9)
    return exported(trained(tmp_path_factory.mktemp("explain"), x, y))


EXPLAIN_COLUMNS = ["y", "y_lower", "y_upper", "y_stderr", "y:x1", "y:x2"]


def test_explain_adds_the_interval_and_contribution_columns(explain_model, write_csv):
    path = write_csv("in.csv", "id,x1,x2\na,1,2\nb,-3,0.5\nc,100,7\n")
    result = invoke("predict", str(explain_model), "--input", str(path), "--id", "id", "--explain")
    assert result.exit_code == 0, result.output
    table = pa_csv.read_csv(pa.BufferReader(result.stdout_bytes))
    assert table.column_names == ["id", *EXPLAIN_COLUMNS]
    columns = Predictor(explain_model).explain([[1, 2], [-3, 0.5], [100, 7]]).columns()
    for name in EXPLAIN_COLUMNS:  # CSV keeps float64's shortest round-trip text
        assert table.column(name).to_pylist() == columns[name].tolist(), name


def test_explain_writes_json_lines_and_parquet(explain_model, tmp_path):
    result = invoke("predict", str(explain_model), "--json", "--explain", stdin="x1,x2\n1,2\n")
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert list(record) == EXPLAIN_COLUMNS
    assert record["y_lower"] < record["y"] < record["y_upper"]
    output = tmp_path / "out.parquet"
    result = invoke(
        "predict", str(explain_model), "--output", str(output), "--explain", stdin="x1,x2\n1,2\n"
    )
    assert result.exit_code == 0, result.output
    assert pq.read_table(output).to_pylist() == [record]


def test_explain_needs_a_model_exported_with_explain(model):
    result = invoke("predict", str(model), "--explain", stdin="x1,x2\n1,2\n")
    assert result.exit_code == 2
    assert "has no explain outputs (only 'prediction'); export it with `toolkit export " in (
        result.output
    )


def test_explain_refuses_an_id_column_named_like_an_output_column(explain_model, write_csv):
    path = write_csv("in.csv", "y_lower,x1,x2\na,1,2\n")
    result = invoke(
        "predict", str(explain_model), "--input", str(path), "--id", "y_lower", "--explain"
    )
    assert result.exit_code == 2
    assert "--explain cannot name its columns: 'y_lower' would appear twice" in result.output
