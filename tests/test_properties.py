"""Property tests over generated tables: train, export, and compare with the ONNX model.

For any generated table (rows, features, targets, scales, offsets, collinearity, dtype,
solver, intercept, l2, chunk size) a run either succeeds, with a finite model whose
reported training metrics equal those recomputed from the exported ONNX model's own
predictions on the same rows, or stops with a typed ToolkitError (never another
exception). Seeded (derandomized) and bounded for CI: TOOLKIT_PROPERTY_EXAMPLES sets how
many examples (default 40, about a minute; 500 for a long run).

Tolerance: the reported metrics come from numpy's predictions in the model's dtype, the
recomputed ones from onnxruntime's; the two predictions differ by at most the summation
order's rounding, bounded per row by 4 * d * eps * (|x| @ |W|^T + |b|) (the parity gate's
scale). By the triangle inequality the RMSEs then differ by at most the RMS of that bound.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from conftest import write_table_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.errors import ToolkitError
from toolkit.export import export_model
from toolkit.runtime import Predictor
from toolkit.training import TrainConfig, train

EXAMPLES = int(os.environ.get("TOOLKIT_PROPERTY_EXAMPLES", "40"))


@st.composite
def tables(draw: st.DrawFn) -> dict:
    rows = draw(st.integers(3, 200))
    d = draw(st.integers(1, 4))
    t = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scales = 10.0 ** np.array(draw(st.lists(st.floats(-3, 3), min_size=d, max_size=d)))
    offsets = 10.0 ** np.array(draw(st.lists(st.floats(0, 6), min_size=d, max_size=d)))
    x = rng.standard_normal((rows, d)) * scales + offsets * draw(st.sampled_from([0.0, 1.0]))
    collinear = draw(st.sampled_from([None, 0.0, 1e-9, 1e-3])) if d > 1 else None
    if collinear is not None:
        x[:, -1] = x[:, 0] * 2 + collinear * scales[0] * rng.standard_normal(rows)
    y = x @ (rng.standard_normal((d, t)) / scales[:, None]) + rng.standard_normal((rows, t))
    columns = {**{f"x{i}": x[:, i] for i in range(d)}, **{f"y{k}": y[:, k] for k in range(t)}}
    return {
        "columns": columns,
        "targets": tuple(f"y{k}" for k in range(t)),
        "dtype": draw(st.sampled_from(["float32", "float64"])),
        "solver": draw(st.sampled_from(["exact", "exact", "sgd", "adam", "lbfgs"])),
        "intercept": draw(st.booleans()),
        "l2": draw(st.sampled_from([0.0, 0.0, 0.1, 10.0])),
        "chunk_rows": draw(st.sampled_from([7, 64, 65_536])),
    }


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(table=tables())
def test_a_run_succeeds_with_honest_metrics_or_fails_with_a_typed_error(tmp_path, table):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # hypothesis may replay an example
    path = write_table_csv(folder / "t.csv", table["columns"])
    config = TrainConfig(
        data=path,
        targets=table["targets"],
        solver=table["solver"],
        dtype=table["dtype"],
        intercept=table["intercept"],
        l2=table["l2"],
        chunk_rows=table["chunk_rows"],
        val_fraction=0.0,
        out=folder / "m.pt",
    )
    try:
        result = train(config)
        export_model(folder / "m.pt", folder / "m.onnx")
    except ToolkitError:
        return  # a typed refusal with its message (collinear, too few rows, diverged, ...)
    assert np.isfinite(result.weight).all() and np.isfinite(result.bias).all()
    names = [n for n in table["columns"] if n.startswith("x")]
    x = np.column_stack([table["columns"][n] for n in names])
    y = np.column_stack([table["columns"][n] for n in table["targets"]])
    predicted = Predictor(folder / "m.onnx").predict(x).astype(np.float64)
    rmse = np.sqrt(np.mean((y - predicted) ** 2))
    eps = float(np.finfo(table["dtype"]).eps)
    terms = np.abs(x) @ np.abs(result.weight).T + np.abs(result.bias)
    bound = 4 * (x.shape[1] + 1) * eps * terms
    allowed = np.sqrt(np.mean(bound**2)) + 1e-9 * rmse
    assert abs(result.metrics["train"]["rmse"] - rmse) <= allowed
    assert result.metrics["train"]["rows"] == len(x)
