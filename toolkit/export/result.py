"""What an export produces: the graph's fixed names, `ExportResult` (the report of one), and
`gated`, the parity gate run on the file as it will be written."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import OutputError, ParityError
from toolkit.files import cause_of

if TYPE_CHECKING:
    from toolkit.columns import TablePlan
    from toolkit.export.explain import ExplainPlan
    from toolkit.export.parity import ParityReport

# The oldest opset toolkit writes (Gemm-13, with its optional bias, runs from there on).
MIN_OPSET = 13
INPUT_NAME = "features"
OUTPUT_NAME = "prediction"
EXPORTER = "toolkit: one ONNX Gemm node (onnx.helper), checked against PyTorch"


@dataclass
class ExportResult:
    """What `toolkit.export` wrote: the file, its opset, dtype and size, the parity
    report (None when the gate was skipped), the model card, the seconds it took, and
    the plan of the --explain outputs (None without them), and the table plan of a model
    taking raw columns (None for a numeric model's one matrix input)."""

    output: Path
    opset: int
    dtype: str
    size_bytes: int
    parity: ParityReport | None
    metadata: dict[str, str]
    seconds: float
    explain: ExplainPlan | None = None
    table: TablePlan | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "opset": self.opset,
            "dtype": self.dtype,
            "size_bytes": self.size_bytes,
            "input": INPUT_NAME if self.table is None else self.table.raw_names,
            "output_name": OUTPUT_NAME,
            "exporter": EXPORTER,
            "parity": self.parity.to_dict() if self.parity is not None else None,
            "metadata": self.metadata,
            "seconds": self.seconds,
            **({"explain": self.explain.card()} if self.explain is not None else {}),
        }

    def summary(self) -> str:
        """The one status line `toolkit export` prints."""
        status = (
            f"exported {self.output} (opset {self.opset}, {self.dtype}, {self.size_bytes:,} bytes)"
        )
        if self.explain is not None:
            status += f" with {self.explain.describe()}"
        if self.table is not None:
            status += (
                f" taking {len(self.table.columns)} raw columns "
                f"(unknown levels: {self.table.unknown_level})"
            )
        if self.parity is None:
            return status
        return f"{status}; {self.parity.passed_text()}"


def gated(proto: Any, output: Path, check: Callable[[Path], ParityReport]) -> ParityReport:
    """Run the parity gate `check` on `proto` saved as it will be written (a temporary
    copy); ParityError naming `output` when it fails, OutputError when no copy fits."""
    import onnx

    with tempfile.TemporaryDirectory() as folder:
        candidate = Path(folder) / "candidate.onnx"
        try:
            onnx.save_model(proto, candidate)
        except OSError as error:  # a full $TMPDIR, a file-size limit
            raise OutputError(
                f"cannot write the parity gate's copy of the model, {str(candidate)!r}: "
                f"{cause_of(error)}; point TMPDIR at a folder with room. Nothing was written "
                f"to {str(output)!r}.",
                error,
            ) from error
        report = check(candidate)
    if not report.passed:
        raise ParityError(report.breach_message(output))
    return report
