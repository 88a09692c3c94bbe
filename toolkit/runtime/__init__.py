"""The embeddable runtime: load an exported ONNX model and predict, with numpy and onnxruntime only.

This tier never imports torch, onnx, pyarrow or click (tests/test_layout.py proves it),
so an app can `pip install toolkit` and `from toolkit.runtime import Predictor` alone.

Start reading at `predictor.py` (the Predictor), then `inputs.py` (the input guard),
`providers.py` (which execution provider runs, honestly reported), `onnxfile.py` (the
safety checks made before onnxruntime opens a file), `graph.py` (the operators a linear
model needs: the only ones run), `weights.py` (a linear model's weights, read from the
file) and `info.py` (`toolkit info`). Table models (raw columns in): `table_model.py`
(signature, run, unknown levels), `table.py` (input forms and checks) and
`table_values.py` (one column's values).
"""

from toolkit.errors import (
    InputError,
    ModelLoadError,
    ModelRunError,
    PredictorError,
    ProviderError,
    UnknownLevelWarning,
)
from toolkit.runtime.predictor import Predictor
from toolkit.runtime.providers import PROVIDER_ALIASES, PROVIDER_ORDER, available_providers

__all__ = [
    "PROVIDER_ALIASES",
    "PROVIDER_ORDER",
    "InputError",
    "ModelLoadError",
    "ModelRunError",
    "Predictor",
    "PredictorError",
    "ProviderError",
    "UnknownLevelWarning",
    "available_providers",
]
