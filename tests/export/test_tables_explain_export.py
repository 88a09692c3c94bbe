"""`toolkit export --explain` of table models (toolkit/export/tables_export.py, tables.py
`add_encoded`, tables_gate.py): the explain outputs follow `unknown_levels`, are computed
on the encoded matrix, and the gate checks them; the plain graph is left as it was.

The encoded matrix is recovered from the file's contributions, x = c / w + m (w and m from
the checkpoint and the card), and compared with tests/table_checkpoints.pandas_encode (a
pandas encoding written apart from toolkit's) of the same raw rows: in float64 the
division and the addition round to a few ulps of |x| + |m| (atol 1e-12 of it).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from table_checkpoints import example_plan, pandas_encode, raw_rows, table_checkpoint

from toolkit import card
from toolkit.columns import CATEGORICAL, ColumnPlan, TablePlan
from toolkit.errors import ExportError
from toolkit.export import export_model
from toolkit.export.tables import build_graph
from toolkit.runtime import explain
from toolkit.runtime.explain import CONTRIBUTIONS, LOWER, STDERR, UPPER
from toolkit.training import checkpoint

PLANS = {
    "mixed": example_plan(),
    "numeric with gaps": TablePlan(
        (
            ColumnPlan("a", "numeric", "float", fill=-2.0, indicator=True, missing_count=1),
            ColumnPlan("b", "numeric", "float", fill=0.25, missing_count=1),
        ),
        missing="mean",
    ),
    "one text column": TablePlan(
        (ColumnPlan("firm", CATEGORICAL, "string", ("a", "b", "c"), ("d",), fill="b"),),
        missing="mean",
    ),
}


def _feeds(plan: TablePlan, columns: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    return {
        c.name: columns[c.name].astype(str if c.kind == CATEGORICAL else dtype)
        for c in plan.columns
    }


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(PLANS))
def test_the_explain_outputs_are_on_the_encoded_matrix(tmp_path, name, dtype):
    plan = PLANS[name]
    model = table_checkpoint(tmp_path / "m.pt", plan, targets=2, dtype=dtype)
    result = export_model(model, tmp_path / "m.onnx", explain=True)
    parity = result.parity.to_dict()
    (provider,) = [p for p in result.parity.providers if p.provider == "CPUExecutionProvider"]
    assert list(provider.outputs) == ["unknown_levels", CONTRIBUTIONS, STDERR, LOWER, UPPER]
    assert all(part.passed and part.rows_checked > 4096 for part in provider.outputs.values())
    assert set(parity["scales"]) == {CONTRIBUTIONS, STDERR, LOWER, UPPER}
    values = card.decode(result.metadata)
    entry = values[card.EXPLAIN]
    assert entry["outputs"] == [CONTRIBUTIONS, STDERR, LOWER, UPPER]
    assert len(entry["feature_mean"]) == len(plan.encoded_names)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == [
        "prediction", "unknown_levels", CONTRIBUTIONS, STDERR, LOWER, UPPER
    ]  # fmt: skip
    columns = raw_rows(plan, 300, seed=5)
    prediction, unknown, contributions, *_ = session.run(None, _feeds(plan, columns, dtype))
    expected, expected_unknown = pandas_encode(plan, columns)
    np.testing.assert_array_equal(unknown, expected_unknown)
    payload = checkpoint.load(model)
    weight = payload["state_dict"]["weight"].double().numpy()
    mean = np.array(entry["feature_mean"])
    assert contributions.shape == (300, 2, len(plan.encoded_names))
    x = contributions.astype(np.float64)[:, 0, :] / weight[0] + mean
    size = np.abs(expected.to_numpy()) + np.abs(mean)
    tolerance = 1e-12 if dtype == "float64" else 1e-5  # float32: c and w round at 6e-8
    assert np.all(np.abs(x - expected.to_numpy()) <= tolerance * (1 + size))
    total = contributions.sum(axis=2, dtype=np.float64) + np.array(entry["baseline"])
    terms = np.abs(contributions).sum(axis=2, dtype=np.float64) + np.abs(entry["baseline"])
    assert np.all(np.abs(total - prediction) <= 10 * tolerance * (1 + terms))


def test_the_plain_graph_is_unchanged(tmp_path):
    plan = example_plan()
    model = table_checkpoint(tmp_path / "m.pt", plan, dtype="float32")
    export_model(model, tmp_path / "plain.onnx")
    export_model(model, tmp_path / "explained.onnx", explain=True)
    plain, explained = onnx.load(tmp_path / "plain.onnx"), onnx.load(tmp_path / "explained.onnx")
    payload = checkpoint.load(model)
    state = payload["state_dict"]
    fresh = build_graph(plan, state["weight"].numpy(), state["bias"].numpy(), 18)
    assert plain.graph.SerializeToString() == fresh.graph.SerializeToString()
    # The explain file holds the plain graph, then its own nodes; pruned to the prediction
    # and unknown_levels (what Predictor.predict runs) it is the plain graph.
    n = len(plain.graph.node)
    assert list(explained.graph.node)[:n] == list(plain.graph.node)
    assert list(explained.graph.output)[:2] == list(plain.graph.output)
    pruned = onnx.load_from_string(explain.prediction_only(explained.SerializeToString(), 2))
    assert list(pruned.graph.node) == list(plain.graph.node)
    assert sorted(i.name for i in pruned.graph.initializer) == sorted(
        i.name for i in plain.graph.initializer
    )
    assert list(pruned.graph.output) == list(plain.graph.output)


@pytest.mark.parametrize("name", ["weight", "explain_mean", "contributions"])
def test_a_column_named_like_an_explain_value_is_refused(tmp_path, name):
    plan = TablePlan((ColumnPlan(name, CATEGORICAL, "string", ("a", "b", "c")),))
    model = table_checkpoint(tmp_path / "model.pt", plan)
    export_model(model, tmp_path / "plain.onnx")  # without --explain the name is free
    with pytest.raises(ExportError, match=f"column '{name}' has the name of one of the --explain"):
        export_model(model, tmp_path / "model.onnx", explain=True)
    assert not (tmp_path / "model.onnx").exists()


def test_the_gate_checks_each_explain_output(tmp_path):
    """A file whose contributions use another mean than the reference's fails the gate on
    `contributions` (and only there: the prediction and the interval do not use it)."""
    from toolkit.export import explain as explaining
    from toolkit.export.tables_gate import check_table_parity

    plan = example_plan()
    model = table_checkpoint(tmp_path / "m.pt", plan, dtype="float64")
    export_model(model, tmp_path / "m.onnx", explain=True)
    payload = checkpoint.load(model)
    wrong = explaining.plan(payload, None)
    wrong.mean = wrong.mean + 1e-6
    state = payload["state_dict"]
    report = check_table_parity(
        plan.with_unknown_level("error"),
        state["weight"].numpy(),
        state["bias"].numpy(),
        tmp_path / "m.onnx",
        payload["parity_sample"].double().numpy(),
        (1e-12, 1e-12),
        ["CPUExecutionProvider"],
        wrong,
    )
    (provider,) = report.providers
    assert not report.passed
    assert [name for name, part in provider.outputs.items() if not part.passed] == [CONTRIBUTIONS]
    assert "contributions" in report.breach_message(tmp_path / "m.onnx")


def test_a_table_model_without_explain_outputs_says_how_to_get_them(tmp_path):
    from toolkit.errors import PredictorError
    from toolkit.runtime import Predictor

    plan = PLANS["one text column"]
    export_model(table_checkpoint(tmp_path / "m.pt", plan), tmp_path / "m.onnx")
    predictor = Predictor(tmp_path / "m.onnx")
    assert predictor.explain_outputs == ()
    with pytest.raises(PredictorError, match=r"has no explain outputs.*toolkit export --explain"):
        predictor.explain({"firm": "a"})
