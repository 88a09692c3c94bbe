"""Export: checkpoint -> ONNX, behind the parity gate (torch + onnx).

Start reading at `convert.py` (`export_model`, the steps in order), then `parity.py`
(the gate that must pass on every execution provider before a file is written) and
`quiet.py` (how the exporter's own output is captured).
"""

from toolkit.defaults import ONNX_OUTPUT as DEFAULT_OUTPUT
from toolkit.defaults import OPSET as DEFAULT_OPSET
from toolkit.errors import ExportError, ParityError
from toolkit.export.convert import (
    EXPORTER,
    INPUT_NAME,
    MIN_OPSET,
    OUTPUT_NAME,
    ExportResult,
    check_opset,
    export_model,
    max_runtime_opset,
    model_card,
)

__all__ = [
    "DEFAULT_OPSET",
    "DEFAULT_OUTPUT",
    "EXPORTER",
    "INPUT_NAME",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "ExportError",
    "ExportResult",
    "ParityError",
    "check_opset",
    "export_model",
    "max_runtime_opset",
    "model_card",
]
