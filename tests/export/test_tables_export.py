"""toolkit/export/tables*.py: table models take raw columns; the encoding is in the graph.

The reference is tests/table_models.pandas_encode (pandas Categorical + get_dummies with
the reference level dropped) @ W^T + b in float64. Tolerances: float64 models 1e-12 of
the summed |terms| (a handful of additions, each rounding at 1.1e-16); float32 models
1e-5 of them (float32 rounding, 6e-8 per operation, with room for the coefficient table's
folded intercept). `unknown_levels` is compared exactly.
"""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from table_checkpoints import example_plan, pandas_encode, raw_rows, table_checkpoint, unseen

from toolkit import card
from toolkit.columns import CATEGORICAL, ColumnPlan, TablePlan
from toolkit.errors import CheckpointError, ExportError, ParityError, UsageError
from toolkit.export import export_model, tables
from toolkit.export.tables import build_graph
from toolkit.export.tables_gate import decode_sample, probe_columns, reference_encode
from toolkit.runtime import graph, onnxfile
from toolkit.training import checkpoint

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def infer(proto: onnx.ModelProto, columns: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, columns)


def feeds(plan: TablePlan, columns: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    return {
        c.name: columns[c.name].astype(str if c.kind == CATEGORICAL else dtype)
        for c in plan.columns
    }


def assert_matches_reference(plan, weight, bias, columns, dtype):
    prediction, unknown = infer(build_graph(plan, weight, bias, 18), feeds(plan, columns, dtype))
    encoded, expected_unknown = pandas_encode(plan, columns)
    x = encoded.to_numpy(np.float64)
    w = weight.astype(np.float64)
    b = np.zeros(len(w)) if bias is None else bias.astype(np.float64)
    expected = x @ w.T + b
    scale = np.abs(x) @ np.abs(w).T + np.abs(b)
    assert prediction.dtype == np.dtype(dtype) and prediction.shape == expected.shape
    assert np.all(np.abs(prediction - expected) <= TOLERANCE[dtype] * (1 + scale))
    np.testing.assert_array_equal(unknown, expected_unknown)
    assert unknown.dtype == np.int64


def test_signature_follows_the_contract():
    plan = example_plan()
    proto = build_graph(plan, np.ones((2, len(plan.encoded_names)), np.float32), None, 18)
    inputs = [
        (v.name, v.type.tensor_type.elem_type, [d.dim_param for d in v.type.tensor_type.shape.dim])
        for v in proto.graph.input
    ]
    S, F = onnx.TensorProto.STRING, onnx.TensorProto.FLOAT
    assert inputs == [
        ("firm", S, ["batch"]),
        ("value", F, ["batch"]),
        ("union", S, ["batch"]),
        ("capital", F, ["batch"]),
        ("year", S, ["batch"]),
    ]
    prediction, unknown = proto.graph.output
    assert prediction.name == "prediction" and unknown.name == "unknown_levels"
    assert [d.dim_param or d.dim_value for d in prediction.type.tensor_type.shape.dim] == [
        "batch",
        2,
    ]
    assert unknown.type.tensor_type.elem_type == onnx.TensorProto.INT64
    domains = {node.domain for node in proto.graph.node}
    assert domains == {"", "ai.onnx.ml"}
    onnx.checker.check_model(proto, full_check=True)
    onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("targets", [1, 3])
def test_example_predictions_equal_the_pandas_one_hot(dtype, targets):
    plan = example_plan()
    rng = np.random.default_rng(targets)
    weight = rng.normal(0, 3, (targets, len(plan.encoded_names))).astype(dtype)
    bias = rng.normal(0, 3, targets).astype(dtype)
    assert_matches_reference(plan, weight, bias, raw_rows(plan, 500, seed=targets), dtype)


def test_unseen_levels_take_the_reference_and_are_counted():
    plan = example_plan()
    weight = np.arange(1, len(plan.encoded_names) + 1, dtype=np.float64)[None, :]
    bias = np.array([100.0])
    firm, union, year = (plan.columns[i] for i in (0, 2, 4))
    columns = {
        "firm": np.array(["Chrysler", unseen(firm), unseen(firm), "GM"]),
        "value": np.array([0.0, 0.0, 0.0, 0.0]),
        "union": np.array(["false", "false", unseen(union), "maybe"]),
        "capital": np.array([0.0, 0.0, 0.0, 0.0]),
        "year": np.array(["1935", "1935", unseen(year), "1935"]),
    }
    prediction, unknown = infer(build_graph(plan, weight, bias, 18), columns)
    # Row 0 is the reference everywhere; rows 1-2 only differ by unknowns (reference).
    # Row 3: firm[GM] is encoded column 2 (weight 2).
    np.testing.assert_array_equal(prediction[:, 0], [100.0, 100.0, 100.0, 102.0])
    np.testing.assert_array_equal(unknown, [0, 1, 3, 1])


def test_missing_cells_take_the_fill_and_the_indicator():
    plan = example_plan()
    names = plan.encoded_names
    weight = np.zeros((1, len(names)))
    for name, value in {
        "firm[GE]": 10.0,
        "firm[(missing)]": 1000.0,
        "value": 2.0,
        "value[(missing)]": 0.5,
        "year[1936]": 7.0,
    }.items():
        weight[0, names.index(name)] = value
    columns = {
        "firm": np.array(["", "NA", "GE"]),
        "value": np.array([np.nan, 4.0, np.nan]),
        "union": np.array(["true", "true", "true"]),
        "capital": np.array([1.0, 1.0, 1.0]),
        "year": np.array(["", "1936", "NA"]),
    }
    prediction, unknown = infer(build_graph(plan, weight, None, 18), columns)
    # fill GE (10) + indicator (1000); value 1.5 * 2 + 0.5; year fill 1936 (7)
    np.testing.assert_array_equal(prediction[:, 0], [1010 + 3.5 + 7, 1010 + 8 + 7, 10 + 3.5 + 7])
    np.testing.assert_array_equal(unknown, [0, 0, 0])


def test_a_nan_in_a_numeric_column_without_a_fill_stays_nan():
    plan = example_plan()
    weight = np.ones((1, len(plan.encoded_names)), np.float32)
    columns = raw_rows(plan, 3, unknown=False)
    columns["capital"] = np.array([1.0, np.nan, 2.0])
    prediction, _ = infer(build_graph(plan, weight, None, 18), feeds(plan, columns, "float32"))
    assert np.isnan(prediction[1, 0]) and np.isfinite(prediction[[0, 2], 0]).all()


# Level texts: no NUL (the reference's own marker), at least one character ("" is missing).
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=6)


@st.composite
def plans(draw: st.DrawFn) -> TablePlan:
    columns = []
    for index in range(draw(st.integers(1, 5))):
        name = f"c{index}"
        fill_on = draw(st.booleans())
        if draw(st.booleans()):
            texts = draw(
                st.lists(TEXT.filter(lambda t: t != "NA"), min_size=1, max_size=8, unique=True)
            )
            split = draw(st.integers(1, len(texts)))
            levels, other = tuple(sorted(texts[:split])), tuple(texts[split:])
            fill = draw(st.sampled_from(levels + other)) if fill_on else None
            indicator = fill_on and draw(st.booleans())
            columns.append(ColumnPlan(name, CATEGORICAL, "string", levels, other, fill, indicator))
        else:
            fill = draw(st.floats(-1e3, 1e3)) if fill_on else None
            indicator = fill_on and draw(st.booleans())
            columns.append(ColumnPlan(name, "numeric", "float", fill=fill, indicator=indicator))
    plan = TablePlan(tuple(columns), missing="mean", na_values=("NA",))
    if plan.trivial:  # not a table model: give the first column a fill
        first = columns[0]
        columns[0] = ColumnPlan(first.name, first.kind, first.raw_type, fill=0.25)
        plan = TablePlan(tuple(columns), missing="mean", na_values=("NA",))
    return plan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=plans(),
    targets=st.integers(1, 3),
    dtype=st.sampled_from(["float32", "float64"]),
    seed=st.integers(0, 2**16),
    intercept=st.booleans(),
)
def test_random_plans_equal_the_pandas_one_hot(plan, targets, dtype, seed, intercept):
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 5, (targets, len(plan.encoded_names))).astype(dtype)
    bias = rng.normal(0, 5, targets).astype(dtype) if intercept else None
    assert_matches_reference(plan, weight, bias, raw_rows(plan, 40, seed=seed), dtype)


@settings(max_examples=30, deadline=None)
@given(plan=plans(), seed=st.integers(0, 2**16))
def test_the_gate_reference_equals_the_pandas_one_hot(plan, seed):
    columns = raw_rows(plan, 30, seed=seed)
    encoded, unknown = reference_encode(plan, feeds(plan, columns, "float64"))
    expected, expected_unknown = pandas_encode(plan, columns)
    np.testing.assert_array_equal(encoded, expected.to_numpy(np.float64))
    np.testing.assert_array_equal(unknown, expected_unknown)


def test_the_gate_probes_cover_every_key_and_miss_only_where_filled():
    plan = example_plan()
    sample, _ = pandas_encode(plan, raw_rows(plan, 20, unknown=False))
    probes = probe_columns(plan, sample.to_numpy(), np.dtype(np.float32))
    every = probes["every level"]
    for column in plan.categorical:
        seen = set(every[column.name])
        known = set(column.levels) | set(column.other)
        assert known <= seen
        unseen_levels = seen - known - {"", *plan.na_values}
        assert len(unseen_levels) == (0 if column.raw_type == "bool" else 1)  # both are known
        assert ("" in seen) == (column.fill is not None)
    for column in plan.columns:
        if column.kind != CATEGORICAL:
            holes = any(np.isnan(batch[column.name]).any() for batch in probes.values())
            assert holes == (column.fill is not None)
    assert probes["batch of 4096"]["capital"].dtype == np.float32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table")
    model = table_checkpoint(folder / "model.pt", example_plan(), targets=2, dtype="float32")
    result = export_model(model, folder / "model.onnx")
    return model, folder / "model.onnx", result


def test_export_writes_the_card_and_passes_the_gate(exported):
    _, path, result = exported
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    metadata = {p.key: p.value for p in proto.metadata_props}
    values = card.decode(metadata)
    plan = example_plan()
    assert TablePlan.from_dict(values[card.TABLE]) == plan.with_unknown_level("error")
    assert values[card.FEATURE_NAMES] == plan.encoded_names
    assert card.INPUT_NAME not in values
    assert values[card.PARITY]["passed"] is True
    assert "float64 reference" in values[card.PARITY]["reference"]
    assert "unknown_levels" in values[card.PARITY]["providers"]["CPUExecutionProvider"]["outputs"]
    assert "taking 5 raw columns (unknown levels: error)" in result.summary()
    assert result.to_json()["input"] == plan.raw_names


def test_the_runtime_safety_checks_accept_the_file(exported):
    _, path, _ = exported
    info = onnxfile.parse(path.read_bytes())
    onnxfile.check_safe(path, info)
    graph.check_linear(info)
    assert not info.non_finite


def test_the_exported_file_predicts_as_the_checkpoint(exported):
    model, path, _ = exported
    state = checkpoint.load(model)["state_dict"]
    plan = example_plan()
    columns = raw_rows(plan, 200, seed=7)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    prediction, unknown = session.run(None, feeds(plan, columns, "float32"))
    encoded, expected_unknown = pandas_encode(plan, columns)
    expected = (
        encoded.to_numpy() @ state["weight"].double().numpy().T + state["bias"].double().numpy()
    )
    np.testing.assert_allclose(prediction, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(unknown, expected_unknown)


def test_unknown_level_reference_is_recorded(tmp_path, exported):
    model, _, _ = exported
    result = export_model(model, tmp_path / "ref.onnx", unknown_level="reference")
    table = card.decode(result.metadata)[card.TABLE]
    assert TablePlan.from_dict(table) == example_plan().with_unknown_level("reference")


def test_a_corrupted_table_fails_the_gate_and_writes_nothing(tmp_path, exported, monkeypatch):
    model, _, _ = exported
    real = tables.coefficient_table

    def corrupted(plan, weight, bias):
        table, flags = real(plan, weight, bias)
        table[3] += 0.01  # one level's coefficients
        return table, flags

    monkeypatch.setattr(tables, "coefficient_table", corrupted)
    with pytest.raises(ParityError, match="float64 reference of the encoding") as caught:
        export_model(model, tmp_path / "bad.onnx")
    assert "every level" in str(caught.value) or "batch of" in str(caught.value)
    assert not (tmp_path / "bad.onnx").exists()


def test_wrong_unknown_counts_fail_the_gate(tmp_path, exported, monkeypatch):
    model, _, _ = exported
    real = tables.coefficient_table

    def miscounted(plan, weight, bias):
        table, flags = real(plan, weight, bias)
        return table, np.zeros_like(flags)

    monkeypatch.setattr(tables, "coefficient_table", miscounted)
    with pytest.raises(ParityError, match="output 'unknown_levels': differs") as caught:
        export_model(model, tmp_path / "bad.onnx")
    assert re.search(
        r"every level: \d+ of \d+ rows differ \(row \d+: reference 1, onnx 0", str(caught.value)
    )
    assert not (tmp_path / "bad.onnx").exists()


def test_a_column_named_like_an_output_is_refused(tmp_path):
    plan = TablePlan((ColumnPlan("prediction", CATEGORICAL, "string", ("a", "b")),))
    model = table_checkpoint(tmp_path / "model.pt", plan)
    with pytest.raises(ExportError, match="column 'prediction' has the name of the model's output"):
        export_model(model, tmp_path / "model.onnx")


def test_options_that_do_not_apply_are_usage_errors(tmp_path, exported):
    model, _, _ = exported
    with pytest.raises(UsageError, match="--unknown-level 'maybe' is not one of error, reference"):
        export_model(model, tmp_path / "x.onnx", unknown_level="maybe")
    plain = checkpoint.load(model)
    del plain["table"]
    numeric = checkpoint.save(tmp_path / "numeric.pt", plain)
    with pytest.raises(UsageError, match="--unknown-level applies to models with categorical"):
        export_model(numeric, tmp_path / "x.onnx", unknown_level="reference")
    assert not (tmp_path / "x.onnx").exists()


def test_a_trivial_plan_keeps_the_numeric_graph(tmp_path, exported):
    model, _, _ = exported
    payload = checkpoint.load(model)
    names = payload["spec"]["feature_names"]
    payload["table"] = TablePlan(tuple(ColumnPlan(n, "numeric", "float") for n in names)).to_dict()
    path = checkpoint.save(tmp_path / "trivial.pt", payload)
    export_model(path, tmp_path / "trivial.onnx")
    proto = onnx.load(tmp_path / "trivial.onnx")
    assert [n.op_type for n in proto.graph.node] == ["Gemm"]
    assert [i.name for i in proto.graph.input] == ["features"]
    assert card.TABLE not in {p.key for p in proto.metadata_props}


def test_float64_models_pass_the_gate_at_its_tolerance(tmp_path):
    model = table_checkpoint(tmp_path / "model.pt", example_plan(), targets=1, dtype="float64")
    result = export_model(model, tmp_path / "model.onnx")
    assert result.parity is not None and result.parity.passed
    assert result.parity.atol == 1e-12
    proto = onnx.load(tmp_path / "model.onnx")
    assert proto.graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


def test_cli_export_unknown_level(tmp_path, exported, run):
    model, _, _ = exported
    out = tmp_path / "cli.onnx"
    result = run(
        "export", str(out), "--checkpoint", str(model), "--unknown-level", "reference", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert json.loads(report["metadata"]["table"])["unknown_level"] == "reference"
    bad = run("export", str(out), "--checkpoint", str(model), "--unknown-level", "x")
    assert bad.exit_code == 2 and "'x' is not one of 'error', 'reference'" in bad.output


def test_no_validate_skips_the_gate(tmp_path, exported):
    model, _, _ = exported
    result = export_model(model, tmp_path / "nv.onnx", validate=False)
    assert result.parity is None
    assert card.decode(result.metadata)[card.PARITY] == {"skipped": True, "reason": "--no-validate"}


def test_a_missing_cell_without_a_fill_is_the_reference_not_unknown():
    # As toolkit.io.encode leaves it (and toolkit's runtime refuses it before the graph).
    plan = example_plan()  # 'union' (bool) has no fill
    weight = np.arange(1, len(plan.encoded_names) + 1, dtype=np.float64)[None, :]
    columns = raw_rows(plan, 4, unknown=False)
    columns["union"] = np.array(["", "NA", "true", "false"])
    prediction, unknown = infer(
        build_graph(plan, weight, None, 18), feeds(plan, columns, "float64")
    )
    encoded, expected_unknown = reference_encode(plan, feeds(plan, columns, "float64"))
    np.testing.assert_allclose(prediction[:, 0], encoded @ weight[0], rtol=1e-12)
    np.testing.assert_array_equal(unknown, expected_unknown)
    assert encoded[:2, plan.encoded_names.index("union[true]")].tolist() == [0.0, 0.0]


def test_feature_names_that_are_not_the_plans_encoding_are_refused(tmp_path, exported):
    model, _, _ = exported
    payload = checkpoint.load(model)
    payload["spec"]["feature_names"][1] = "firm[Ford]"
    broken = checkpoint.save(tmp_path / "broken.pt", payload)
    # Refused when the checkpoint is loaded (tables-train's checkpoint check) or, failing
    # that, by the export itself, which names the first difference.
    with pytest.raises(CheckpointError, match=r"feature[ _]names") as caught:
        export_model(broken, tmp_path / "x.onnx")
    message = str(caught.value)
    assert "column 2 is 'firm[Ford]', the plan's 'firm[GM]'" in message or "firm[GE]" in message
    assert not (tmp_path / "x.onnx").exists()


@settings(max_examples=30, deadline=None)
@given(plan=plans(), seed=st.integers(0, 2**16))
def test_the_training_sample_decodes_to_raw_rows_that_encode_the_same(plan, seed):
    # The gate feeds the checkpoint's encoded training rows back as raw values.
    columns = feeds(plan, raw_rows(plan, 25, seed=seed, unknown=False), "float64")
    encoded, _ = reference_encode(plan, columns)
    decoded = decode_sample(plan, encoded)
    again, unknown = reference_encode(plan, feeds(plan, decoded, "float64"))
    np.testing.assert_array_equal(again, encoded)
    assert not unknown.any()
