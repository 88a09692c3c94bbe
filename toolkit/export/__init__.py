"""Export: checkpoint -> ONNX, behind the parity gate (torch + onnx).

The package is also the stage's function: `toolkit.export(checkpoint, output, ...)` is
`toolkit.export.export_model(checkpoint, output, ...)`, what `toolkit export` runs.

Start reading at `convert.py` (`export_model`, the steps in order; what it returns is in
`result.py`), then `parity.py` (the gate that must pass on every execution provider
before a file is written) and `quiet.py` (how the exporter's own output is captured).
"""

import sys
import types
from typing import Any

from toolkit.defaults import ONNX_OUTPUT as DEFAULT_OUTPUT
from toolkit.defaults import OPSET as DEFAULT_OPSET
from toolkit.errors import ExportError, ParityError
from toolkit.export.arguments import check_opset, max_runtime_opset
from toolkit.export.convert import (
    EXPORTER,
    INPUT_NAME,
    MIN_OPSET,
    OUTPUT_NAME,
    ExportResult,
    export_model,
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


class _ExportPackage(types.ModuleType):
    """`toolkit.export` is this package and, called, its one function: `export_model`.

    (A function named `toolkit.export` could not coexist with the package: importing
    `toolkit.export.convert` sets the attribute `toolkit.export` to the package.)
    """

    def __call__(self, *args: Any, **kwargs: Any) -> ExportResult:
        return export_model(*args, **kwargs)


sys.modules[__name__].__class__ = _ExportPackage
