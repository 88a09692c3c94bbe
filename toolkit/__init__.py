"""toolkit: train a linear regressor exactly, export it to ONNX behind a parity gate, serve it.

The Python API, one name per stage, each imported on first use:

    toolkit.train(...)            fit and write a checkpoint (toolkit.api.train)
    toolkit.export(...)           checkpoint -> ONNX behind the parity gate
                                  (the package toolkit.export, callable: export_model)
    toolkit.runtime.Predictor     run the ONNX file with numpy and onnxruntime only
    toolkit.LinearRegressor       all of it as a scikit-learn estimator (toolkit.estimator)

This package's top level stays import-light on purpose: `import toolkit` and `toolkit
--help` never pay for torch (tests/test_layout.py proves it). Heavy imports live inside
the functions that use them, and the names above are resolved by `__getattr__`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it, imported when the name is first used.
_LAZY = {
    "train": "toolkit.api",
    "LinearRegressor": "toolkit.estimator",
    "TrainConfig": "toolkit.training",
    "TrainResult": "toolkit.training",
    "ExportResult": "toolkit.export",
    "Predictor": "toolkit.runtime",
}
__all__ = ["ExportResult", "LinearRegressor", "Predictor", "TrainConfig", "TrainResult"]
__all__ += ["__version__", "export", "train"]


def __getattr__(name: str) -> Any:
    if name == "export":  # the subpackage, which is callable (toolkit/export/__init__.py)
        return importlib.import_module("toolkit.export")
    if name not in _LAZY:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
