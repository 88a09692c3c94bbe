"""The parity gate: PyTorch and ONNX Runtime must agree on every execution provider at hand.

Shapes are checked first, then values. The tolerance test is, per output element,

    |onnx - torch| <= atol + rtol * scale,    scale = |x| @ |W|^T + |b|

`scale` is the sum of the magnitudes of the terms the dot product adds up, which is what
float rounding error is proportional to; |torch| would make the test fail for outputs that
are small only because large terms cancel.
"""

from __future__ import annotations

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


@dataclass
class ParityReport:
    atol: float
    rtol: float
    providers: list[ProviderReport]

    @property
    def passed(self) -> bool:
        return all(p.passed for p in self.providers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "atol": self.atol,
            "rtol": self.rtol,
            "providers": {
                p.provider: {
                    "passed": p.passed,
                    "used": p.used,
                    "max_abs_diff": p.max_abs_diff,
                    "max_rel_diff": p.max_rel_diff,
                    "rows_checked": p.rows_checked,
                    **({"shape_errors": p.shape_errors} if p.shape_errors else {}),
                }
                for p in self.providers
            },
        }

    def breach_message(self, output: str | Path) -> str:
        lines = [
            f"parity gate failed: ONNX Runtime disagrees with PyTorch; nothing written to {output}."
        ]
        for report in self.providers:
            if report.passed:
                continue
            lines.append(
                f"  {report.provider}: max abs diff {report.max_abs_diff:.3g}, max rel diff "
                f"{report.max_rel_diff:.3g} (atol {self.atol:g}, rtol {self.rtol:g})"
            )
            lines += [f"    shape: {error}" for error in report.shape_errors]
            for row in report.worst_rows:
                lines.append(
                    f"    {row['probe']} row {row['row']}: torch {row['torch']:.9g}, "
                    f"onnx {row['onnx']:.9g}, diff {row['diff']:.3g}"
                )
        return "\n".join(lines)


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
) -> ParityReport:
    """Run every probe through `model` and through ONNX Runtime on each provider."""
    import onnxruntime as ort
    import torch

    dtype = model.weight.dtype
    numpy_dtype = np.float64 if dtype == torch.float64 else np.float32
    weight = model.weight.detach().double().cpu().numpy()
    bias = model.bias.detach().double().cpu().numpy() if model.bias is not None else 0.0
    probes = {name: rows.astype(numpy_dtype) for name, rows in probe_batches(sample).items()}
    with torch.no_grad():
        expected = {name: model(torch.from_numpy(rows)).numpy() for name, rows in probes.items()}
    scales = {
        name: np.abs(rows.astype(np.float64)) @ np.abs(weight).T + np.abs(bias)
        for name, rows in probes.items()
    }

    reports = []
    for provider in providers or available_providers():
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: warnings go to the report, not the terminal
        chain = (
            [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
        )
        session = ort.InferenceSession(str(onnx_path), options, providers=chain)
        report = ProviderReport(provider, 0.0, 0.0, 0.0, 0, True, used=session.get_providers()[0])
        worst: list[dict[str, Any]] = []
        for name, rows in probes.items():
            (got,) = session.run(None, {input_name: rows})
            want = expected[name]
            if got.shape != want.shape or got.dtype != want.dtype:
                report.shape_errors.append(
                    f"{name}: expected {want.shape} {want.dtype}, got {got.shape} {got.dtype}"
                )
                continue
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            allowed = atol + rtol * scales[name]
            scaled = diff / allowed
            report.max_abs_diff = max(report.max_abs_diff, float(diff.max(initial=0.0)))
            relative = diff / np.maximum(np.abs(want.astype(np.float64)), np.finfo(np.float64).tiny)
            report.max_rel_diff = max(report.max_rel_diff, float(relative.max(initial=0.0)))
            report.max_scaled_diff = max(report.max_scaled_diff, float(scaled.max(initial=0.0)))
            report.rows_checked += len(rows)
            for row in np.argsort(-scaled.max(axis=1))[:WORST_ROWS]:
                column = int(np.argmax(scaled[row]))
                worst.append(
                    {
                        "probe": name,
                        "row": int(row),
                        "torch": float(want[row, column]),
                        "onnx": float(got[row, column]),
                        "diff": float(diff[row, column]),
                        "scaled": float(scaled[row, column]),
                    }
                )
        report.passed = not report.shape_errors and report.max_scaled_diff <= 1.0
        report.worst_rows = sorted(worst, key=lambda r: -r["scaled"])[:WORST_ROWS]
        reports.append(report)
    return ParityReport(atol=atol, rtol=rtol, providers=reports)
