"""The parity gate: PyTorch and ONNX Runtime must agree on every execution provider at hand.

Shapes are checked first, then values. The tolerance test is, per output element,

    |onnx - torch| <= atol + rtol * scale,    scale = |x| @ |W|^T + |b|

`scale` is the sum of the magnitudes of the terms the dot product adds up, which is what
float rounding error is proportional to; |torch| would make the test fail for outputs that
are small only because large terms cancel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

PROBE_BATCH_SIZES = (1, 2, 7, 4096)
LARGEST_PROBE = 1e6
# Remote or experimental providers that do not compute locally are not gated.
SKIPPED_PROVIDERS = ("AzureExecutionProvider",)
WORST_ROWS = 3


@dataclass
class ProviderReport:
    provider: str  # requested
    max_abs_diff: float
    max_rel_diff: float
    max_scaled_diff: float  # max of |diff| / (atol + rtol * scale): <= 1 passes
    rows_checked: int
    passed: bool
    shape_errors: list[str] = field(default_factory=list)
    worst_rows: list[dict[str, Any]] = field(default_factory=list)
    used: str = ""  # what onnxruntime really ran; differs when it fell back to CPU
    non_finite: list[str] = field(default_factory=list)  # NaN/inf outputs of finite inputs
    # `toolkit export --explain`: each further output against its float64 reference.
    outputs: dict[str, ProviderReport] = field(default_factory=dict)
    # Outputs that must equal the reference exactly (a table model's unknown_levels): the
    # probes where they did not, in words.
    mismatches: list[str] = field(default_factory=list)

    def parts(self) -> list[ProviderReport]:
        """This report (the prediction) and one per further output."""
        return [self, *self.outputs.values()]


@dataclass
class ParityReport:
    atol: float
    rtol: float
    providers: list[ProviderReport]
    # Further outputs' scales in words (toolkit.export.explain.SCALES), when there are any.
    scales: dict[str, str] = field(default_factory=dict)
    # What the prediction is checked against: PyTorch, or (table models) the float64
    # reference of the encoding and the model (toolkit.export.tables_gate).
    reference: str = "PyTorch"

    @property
    def passed(self) -> bool:
        return all(p.passed for p in self.providers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "atol": self.atol,
            "rtol": self.rtol,
            "providers": {p.provider: _provider_dict(p) for p in self.providers},
            **({"scales": self.scales} if self.scales else {}),
            **({"reference": self.reference} if self.reference != "PyTorch" else {}),
        }

    def passed_text(self) -> str:
        """What passing means, with the closest call: the difference that came nearest to
        its allowance. Differences are judged against atol + rtol * scale, not atol alone,
        so a large difference on a large output can pass."""
        names = ", ".join(p.provider for p in self.providers)
        tolerance = f"atol {self.atol:g}, rtol {self.rtol:g}"
        closest = _closest(self.providers)
        if closest is None:
            same = "PyTorch's" if self.reference == "PyTorch" else self.reference
            return (
                f"parity passed on {names}: outputs identical to {same} "
                f"(allowed: atol + rtol * scale, {tolerance})"
            )
        diff, allowed, used = closest
        return (
            f"parity passed on {names}: every difference within its allowance atol + rtol * "
            f"scale ({tolerance}, scale = the sum of the |terms| behind the output); the "
            f"closest, {diff:.2g} of an allowed {allowed:.2g}, used {used:.2g}x of it"
        )

    def breach_message(self, output: str | Path) -> str:
        explained = self.reference == "PyTorch" and any(
            _failed(sub) for p in self.providers for sub in p.outputs.values()
        )
        against = f"{self.reference} or the float64 reference of the explain outputs"
        against = against if explained else self.reference
        lines = [
            f"parity gate failed: ONNX Runtime disagrees with {against}; nothing written "
            f"to {output}."
        ]
        for report in self.providers:
            if report.passed:
                continue
            lines += _breach_lines(report, self.atol, self.rtol, self.reference)
        return "\n".join(lines)


def _breach_lines(
    provider: ProviderReport, atol: float, rtol: float, reference: str = "PyTorch"
) -> list[str]:
    """What failed on one provider: the prediction, then each explain output that failed."""
    lines = []
    for report in provider.parts():
        if not _failed(report):
            continue
        closest = _closest_row(report.worst_rows[:1])
        worst = (
            f"a difference of {closest[0]:.3g} where atol + rtol * scale allows "
            f"{closest[1]:.3g} ({closest[2]:.3g}x the allowance); "
            if closest is not None and closest[2] > 1
            else ""
        )
        label = provider.provider
        expected = "torch" if reference == "PyTorch" else "reference"
        if report is not provider:
            label, expected = f"{label}, output {report.provider!r}", "float64 reference"
        lines.append(
            f"  {label}: differs from the reference, which it must equal exactly"
            if report.mismatches
            else f"  {label}: {worst}max abs diff {report.max_abs_diff:.3g}, max rel "
            f"diff {report.max_rel_diff:.3g} (atol {atol:g}, rtol {rtol:g})"
        )
        lines += [f"    {mismatch}" for mismatch in report.mismatches]
        lines += [f"    shape: {error}" for error in report.shape_errors]
        lines += [f"    non-finite: {problem}" for problem in report.non_finite]
        for row in report.worst_rows:
            lines.append(
                f"    {row['probe']} row {row['row']}: {expected} {row['torch']:.9g}, "
                f"onnx {row['onnx']:.9g}, diff {row['diff']:.3g}"
            )
    return lines


def _failed(report: ProviderReport) -> bool:
    """Whether this part itself (not counting its further outputs) failed."""
    return bool(
        report.shape_errors
        or report.non_finite
        or report.mismatches
        or report.max_scaled_diff > 1.0
    )


def _provider_dict(report: ProviderReport) -> dict[str, Any]:
    found = {
        "passed": report.passed,
        "used": report.used,
        "max_abs_diff": report.max_abs_diff,
        "max_rel_diff": report.max_rel_diff,
        "rows_checked": report.rows_checked,
        **({"shape_errors": report.shape_errors} if report.shape_errors else {}),
        **({"non_finite": report.non_finite} if report.non_finite else {}),
        **({"mismatches": report.mismatches} if report.mismatches else {}),
    }
    if report.outputs:
        found["outputs"] = {name: _provider_dict(sub) for name, sub in report.outputs.items()}
        for sub in found["outputs"].values():
            del sub["used"]
    return found


def _closest(reports: list[ProviderReport]) -> tuple[float, float, float] | None:
    """(difference, its allowance, their ratio) of the worst row of `reports` (explain
    outputs included), by ratio; None when every difference is zero."""
    return _closest_row([row for r in reports for part in r.parts() for row in part.worst_rows[:1]])


def _closest_row(rows: list[dict[str, Any]]) -> tuple[float, float, float] | None:
    row = max(rows, key=lambda r: r["scaled"], default=None)
    if row is None or not row["diff"] or not np.isfinite(row["scaled"]):
        return None
    return row["diff"], row["diff"] / row["scaled"], row["scaled"]


def probe_batches(sample: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic inputs: the training-like sample, and batches of 1, 2, 7 and 4096 rows
    drawn around it, with some rows at magnitudes up to 1e6."""
    rng = np.random.default_rng(seed)
    center = sample.mean(axis=0)
    spread = np.where(sample.std(axis=0) > 0, sample.std(axis=0), 1.0)
    batches = {"training sample": sample}
    for size in PROBE_BATCH_SIZES:
        rows = center + spread * rng.standard_normal((size, sample.shape[1]))
        if size > 2:  # the last rows push every feature out to +-1e6
            rows[-2:] = np.sign(rng.standard_normal((2, sample.shape[1]))) * LARGEST_PROBE
        batches[f"batch of {size}"] = rows
    return batches


def available_providers() -> list[str]:
    import onnxruntime as ort

    return [p for p in ort.get_available_providers() if p not in SKIPPED_PROVIDERS]


def check_parity(
    model: torch.nn.Linear,
    onnx_path: str | Path,
    sample: np.ndarray,
    atol: float,
    rtol: float,
    input_name: str,
    providers: list[str] | None = None,
    explain: Any = None,
) -> ParityReport:
    """Run every probe through `model` and through ONNX Runtime on each provider.

    `explain` (toolkit.export.explain.ExplainPlan) has the graph's further outputs:
    `explain.reference(rows)` gives each by name as (float64 values, scale), and they are
    checked as the prediction is, each on its own scale (`explain.scales`, in words).
    """
    probes = _probes(model, sample, None if explain is None else explain.reference)
    reports = [
        _check_provider(provider, onnx_path, input_name, probes, atol, rtol)
        for provider in providers or available_providers()
    ]
    scales = {} if explain is None else dict(explain.scales)
    return ParityReport(atol=atol, rtol=rtol, providers=reports, scales=scales)


Reference = Callable[[np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]


@dataclass
class _Probe:
    name: str
    rows: np.ndarray  # in the model's dtype
    expected: np.ndarray  # PyTorch's output (float64 for further outputs)
    scale: np.ndarray  # |x| @ |W|^T + |b| in float64: what rounding error is proportional to
    further: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _probes(
    model: torch.nn.Linear, sample: np.ndarray, reference: Reference | None = None
) -> list[_Probe]:
    """Each probe batch with PyTorch's answer and the scale of the terms it sums."""
    import torch

    numpy_dtype = np.float64 if model.weight.dtype == torch.float64 else np.float32
    weight = model.weight.detach().double().cpu().numpy()
    bias = model.bias.detach().double().cpu().numpy() if model.bias is not None else 0.0
    probes = []
    for name, batch in probe_batches(sample).items():
        rows = batch.astype(numpy_dtype)
        with torch.no_grad():
            expected = model(torch.from_numpy(rows)).numpy()
        with np.errstate(invalid="ignore"):  # inf weights: the finiteness check reports them
            scale = np.abs(rows.astype(np.float64)) @ np.abs(weight).T + np.abs(bias)
        further = reference(rows) if reference is not None else {}
        probes.append(_Probe(name, rows, expected, scale, further))
    return probes


def _check_provider(
    provider: str,
    onnx_path: str | Path,
    input_name: str,
    probes: list[_Probe],
    atol: float,
    rtol: float,
) -> ProviderReport:
    """Shapes first, then values; every mismatch is gathered, not only the first."""
    session = _session(onnx_path, provider)
    report = ProviderReport(provider, 0.0, 0.0, 0.0, 0, True, used=session.get_providers()[0])
    names = [value.name for value in session.get_outputs()]
    runs = [session.run(None, {input_name: probe.rows}) for probe in probes]
    _check_output(report, probes, [run[0] for run in runs], atol, rtol)
    for index, name in enumerate(names[1:], start=1):
        part = report.outputs[name] = ProviderReport(name, 0.0, 0.0, 0.0, 0, True)
        further = [
            _Probe(probe.name, probe.rows, *probe.further.get(name, (np.empty(0), np.empty(0))))
            for probe in probes
        ]
        _check_output(part, further, [run[index] for run in runs], atol, rtol)
    report.passed = not _failed(report) and all(p.passed for p in report.outputs.values())
    return report


def _check_output(
    report: ProviderReport,
    probes: list[_Probe],
    outputs: list[np.ndarray],
    atol: float,
    rtol: float,
) -> None:
    """One output on every probe: shapes first, then values."""
    # 1. Shapes and dtypes: a frozen batch axis or a wrong width shows up here.
    shapes = [_shape_error(probe, got) for probe, got in zip(probes, outputs, strict=True)]
    report.shape_errors = [error for error in shapes if error]
    # 2. Values, on every probe whose shape matched.
    worst: list[dict[str, Any]] = []
    for probe, got, shape_error in zip(probes, outputs, shapes, strict=True):
        if not shape_error:
            worst += _compare_values(report, probe, got, atol, rtol)
    report.passed = not _failed(report)
    report.worst_rows = sorted(worst, key=lambda r: -r["scaled"])[:WORST_ROWS]


def _session(onnx_path: str | Path, provider: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings go to the report, not the terminal
    chain = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    return ort.InferenceSession(str(onnx_path), options, providers=chain)


def _shape_error(probe: _Probe, got: np.ndarray) -> str:
    # Every output is in the model's dtype (the inputs'); further outputs' references are
    # float64.
    shape, dtype = probe.expected.shape, probe.rows.dtype
    if got.shape == shape and got.dtype == dtype:
        return ""
    return f"{probe.name}: expected {shape} {dtype}, got {got.shape} {got.dtype}"


def _compare_values(
    report: ProviderReport, probe: _Probe, got: np.ndarray, atol: float, rtol: float
) -> list[dict[str, Any]]:
    """Fold one probe's differences into `report`; return its worst rows.

    The probes' inputs are finite, so a NaN or infinity in either output is a failure of
    its own (a NaN would otherwise slip through every comparison and maximum).
    """
    n = len(probe.rows)  # contributions are 3-D: compare (rows, everything else)
    expected, scale, got = (a.reshape(n, -1) for a in (probe.expected, probe.scale, got))
    want = expected.astype(np.float64)
    _check_finite(report, probe.name, got, expected)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite values become inf here
        diff = np.abs(got.astype(np.float64) - want)
        diff = np.where(np.isfinite(diff), diff, np.inf)
        scaled = diff / (atol + rtol * scale)
        scaled = np.where(np.isnan(scaled), np.inf, scaled)  # a NaN would pass every max()
        relative = diff / np.maximum(np.abs(want), np.finfo(np.float64).tiny)
    report.max_abs_diff = max(report.max_abs_diff, float(diff.max(initial=0.0)))
    report.max_rel_diff = max(report.max_rel_diff, float(relative.max(initial=0.0)))
    report.max_scaled_diff = max(report.max_scaled_diff, float(scaled.max(initial=0.0)))
    report.rows_checked += len(probe.rows)
    worst = []
    for row in np.argsort(-scaled.max(axis=1))[:WORST_ROWS]:
        column = int(np.argmax(scaled[row]))
        worst.append(
            {
                "probe": probe.name,
                "row": int(row),
                "torch": float(expected[row, column]),
                "onnx": float(got[row, column]),
                "diff": float(diff[row, column]),
                "scaled": float(scaled[row, column]),
            }
        )
    return worst


def _check_finite(
    report: ProviderReport, probe: str, got: np.ndarray, expected: np.ndarray
) -> None:
    for side, values in (("onnx", got), ("torch", expected)):
        bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
        if len(bad):
            rows = ", ".join(str(int(r)) for r in bad[:5]) + (" ..." if len(bad) > 5 else "")
            first = values[bad[0]][~np.isfinite(values[bad[0]])][0]
            report.non_finite.append(
                f"{probe}: {side} output is {float(first)} for finite inputs in "
                f"{len(bad)} row{'s' if len(bad) > 1 else ''} ({rows})"
            )
