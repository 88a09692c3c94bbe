"""The parity gate of table models: raw rows through ONNX Runtime and a float64 reference.

The rows cover every kept level, every folded level, the missing tokens of columns with a
fill, and an unseen level, in every categorical column; numeric values are drawn at the
training rows' scale (mean and spread of the checkpoint's parity sample), NaN in columns
that have a fill (and never in columns without one, whose missing cells the model cannot
encode). The reference encodes them with toolkit.io.encode, the encoder training used
(written apart from the graph's fused tables), then computes x @ W^T + b in float64;
`unknown_levels` must match exactly. The tolerance test is the
numeric gate's: |onnx - reference| <= atol + rtol * (|x| @ |W|^T + |b|).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.card import UNKNOWN_LEVELS_OUTPUT
from toolkit.columns import CATEGORICAL, ColumnPlan, TablePlan
from toolkit.export.parity import (
    PROBE_BATCH_SIZES,
    WORST_ROWS,
    ParityReport,
    ProviderReport,
    _check_output,
    _Probe,
    _session,
    available_providers,
)
from toolkit.export.tables import column_slices

Columns = dict[str, np.ndarray]
REFERENCE = "the float64 reference of the encoding and the model"
MISSING_SHARE = 0.1  # of the drawn rows, per column with a fill


def reference_encode(
    plan: TablePlan, columns: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Raw columns -> (encoded float64 (rows, encoded columns), unknown counts int64 (rows,)),
    by toolkit.io.encode: the encoder the model was trained with. The graph's texts are
    handed to it in the column's raw type (integers, booleans; None where missing), as
    training read them."""
    from toolkit.io import encode

    encoded = encode({c.name: _natural(c, columns[c.name], plan) for c in plan.columns}, plan)
    return encoded.block, encoded.unknown


def _natural(column: ColumnPlan, values: np.ndarray, plan: TablePlan) -> Any:
    """A graph input as training read the column: texts of int and bool columns in their
    raw type, missing tokens as None."""
    if column.kind != CATEGORICAL or column.raw_type == "string":
        return values
    code, tokens = column.code(), {"", *plan.na_values}
    parse = int if column.raw_type == "int" else (lambda text: text == "true")
    return [None if t in tokens and t not in code else parse(t) for t in map(str, values)]


def decode_sample(plan: TablePlan, sample: np.ndarray) -> Columns:
    """The checkpoint's encoded training rows back as raw columns (a missing cell where an
    indicator says so; the first folded level for `(other)`)."""
    slices, columns = column_slices(plan), {}
    for column in plan.columns:
        part = sample[:, slices[column.name]]
        # Missing (NaN, "") only where the graph can encode it: the column has a fill.
        filled = column.indicator and column.fill is not None
        missing = part[:, -1] == 1 if filled else np.zeros(len(sample), bool)
        if column.kind != CATEGORICAL:
            columns[column.name] = np.where(missing, np.nan, part[:, 0])
            continue
        names = list(column.levels[1:]) + ([column.other[0]] if column.other else [])
        kept = part[:, : len(names)]
        texts = [
            names[int(np.argmax(row))] if row.size and row.max() == 1 else column.levels[0]
            for row in kept
        ]
        columns[column.name] = np.array(
            ["" if m else t for m, t in zip(missing, texts, strict=True)], dtype=object
        )
    return columns


def probe_columns(
    plan: TablePlan, sample: np.ndarray, dtype: np.dtype, seed: int = 0
) -> dict[str, Columns]:
    """The gate's batches of raw columns: the training sample, every key of every
    categorical column, and draws of 1, 2, 7 and 4096 rows."""
    rng = np.random.default_rng(seed)
    keys = {c.name: _keys(plan, c.name) for c in plan.categorical}
    longest = max((len(k) for k in keys.values()), default=1)
    batches = {"training sample": decode_sample(plan, sample)}
    sizes = {"every level": max(longest, 8), **{f"batch of {s}": s for s in PROBE_BATCH_SIZES}}
    slices = column_slices(plan)
    for name, size in sizes.items():
        batch: Columns = {}
        for column in plan.columns:
            if column.kind == CATEGORICAL:
                pool = keys[column.name]
                picks = (
                    np.arange(size) % len(pool)
                    if name == "every level"
                    else rng.integers(0, len(pool), size)
                )
                batch[column.name] = np.array([pool[i] for i in picks], dtype=object)
                continue
            values = sample[:, slices[column.name].start]
            spread = values.std() if values.std() > 0 else 1.0
            drawn = values.mean() + spread * rng.standard_normal(size)
            if column.fill is not None:
                drawn[rng.random(size) < MISSING_SHARE] = np.nan
                drawn[0 if size < 3 else 2] = np.nan  # every batch has a missing cell
            batch[column.name] = drawn
        batches[name] = batch
    return {name: _typed(plan, batch, dtype) for name, batch in batches.items()}


def _keys(plan: TablePlan, name: str) -> list[str]:
    """Every text a column's probes use: kept and folded levels, missing tokens (with a
    fill), and one level seen nowhere."""
    column = next(c for c in plan.columns if c.name == name)
    known = list(column.levels) + list(column.other)
    if column.fill is not None:
        known += [""] + [t for t in plan.na_values if t not in known]
    if column.raw_type == "int":
        return [*known, str(max(int(level) for level in column.levels + column.other) + 1)]
    if column.raw_type == "bool":  # unseen: only a value training never saw, if any
        return known + sorted({"false", "true"} - set(known))
    unseen = "(unseen level)"
    while unseen in known:
        unseen += "'"
    return [*known, unseen]


def _typed(plan: TablePlan, batch: Columns, dtype: np.dtype) -> Columns:
    return {
        c.name: (
            np.asarray(batch[c.name], dtype=object).astype(str)
            if c.kind == CATEGORICAL
            else np.asarray(batch[c.name], dtype)
        )
        for c in plan.columns
    }


def check_table_parity(
    plan: TablePlan,
    weight: np.ndarray,
    bias: np.ndarray | None,
    onnx_path: str | Path,
    sample: np.ndarray,
    tolerances: tuple[float, float],
    providers: list[str] | None = None,
    explain: Any = None,
) -> ParityReport:
    """The raw probes through the file on every provider against the float64 reference;
    with `explain` (toolkit.export.explain.ExplainPlan) each explain output too, against
    `explain.reference` of the same rows encoded by toolkit.io.encode."""
    dtype = np.dtype(weight.dtype)
    w = weight.astype(np.float64)
    b = np.zeros(w.shape[0]) if bias is None else bias.astype(np.float64)
    probes = []
    for name, columns in probe_columns(plan, sample, dtype).items():
        encoded, unknown = reference_encode(plan, columns)
        with np.errstate(invalid="ignore"):
            scale = np.abs(encoded) @ np.abs(w).T + np.abs(b)
        rows = np.empty((len(encoded), 0), dtype)  # carries the row count and the dtype
        further = explain.reference(encoded) if explain is not None else {}
        probe = _Probe(name, rows, encoded @ w.T + b, scale, further)
        probes.append((columns, probe, unknown))
    reports = [
        _check_provider(provider, onnx_path, probes, tolerances)
        for provider in providers or available_providers()
    ]
    scales = {} if explain is None else dict(explain.scales)
    return ParityReport(*tolerances, reports, scales=scales, reference=REFERENCE)


def _check_provider(
    provider: str,
    onnx_path: str | Path,
    probes: list[tuple[Columns, _Probe, np.ndarray]],
    tolerances: tuple[float, float],
) -> ProviderReport:
    session = _session(onnx_path, provider)
    report = ProviderReport(provider, 0.0, 0.0, 0.0, 0, True, used=session.get_providers()[0])
    runs = [session.run(None, columns) for columns, _, _ in probes]
    _check_output(report, [probe for _, probe, _ in probes], [run[0] for run in runs], *tolerances)
    counts = report.outputs[UNKNOWN_LEVELS_OUTPUT] = ProviderReport(
        UNKNOWN_LEVELS_OUTPUT, 0.0, 0.0, 0.0, 0, True
    )
    for (_, probe, expected), run in zip(probes, runs, strict=True):
        _check_counts(counts, probe.name, expected, run[1])
    for index, output in enumerate(session.get_outputs()[2:], start=2):  # --explain
        part = report.outputs[output.name] = ProviderReport(output.name, 0.0, 0.0, 0.0, 0, True)
        further = [
            _Probe(p.name, p.rows, *p.further.get(output.name, (np.empty(0), np.empty(0))))
            for _, p, _ in probes
        ]
        _check_output(part, further, [run[index] for run in runs], *tolerances)
    report.passed = report.passed and all(p.passed for p in report.outputs.values())
    return report


def _check_counts(
    report: ProviderReport, probe: str, expected: np.ndarray, got: np.ndarray
) -> None:
    """unknown_levels: int64, one per row, equal to the reference's counts exactly."""
    report.rows_checked += len(expected)
    if got.shape != expected.shape or got.dtype != np.int64:
        report.shape_errors.append(
            f"{probe}: expected {expected.shape} int64, got {got.shape} {got.dtype}"
        )
    else:
        wrong = np.flatnonzero(got != expected)
        report.max_abs_diff = max(report.max_abs_diff, float(np.abs(got - expected).max(initial=0)))
        if len(wrong):
            shown = "; ".join(
                f"row {r}: reference {expected[r]}, onnx {got[r]}" for r in wrong[:WORST_ROWS]
            )
            more = f" and {len(wrong) - WORST_ROWS} more" if len(wrong) > WORST_ROWS else ""
            report.mismatches.append(
                f"{probe}: {len(wrong)} of {len(expected)} rows differ ({shown}{more})"
            )
    report.passed = not (report.shape_errors or report.mismatches)
