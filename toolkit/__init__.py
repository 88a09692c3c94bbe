"""toolkit: train a linear regressor exactly, export it to ONNX behind a parity gate, serve it.

This package's top level stays import-light on purpose: `toolkit --help` and the
runtime must never pay for torch. Heavy imports live inside the functions that use them.
"""

__version__ = "0.1.0"
