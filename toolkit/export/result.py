"""What an export produces: the graph's fixed names, and `ExportResult`, the report of one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
