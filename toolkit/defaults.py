"""Every default the command line shows, in one place, importable without numpy or torch.

The CLI's options, the library's signatures and the README read these names; a default
changes here and nowhere else (tests/test_defaults.py checks that `--help` shows them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Files
CHECKPOINT = Path("models") / "model.pt"
ONNX_OUTPUT = Path("models") / "model.onnx"
RESUME_SUFFIX = ".resume"  # an interrupted iterative run's state: OUT + this suffix

# Data
DEFAULT_TARGET = "y"  # the target when --target is not given (else the last column)
# Rows per chunk handed to the solvers and to predict: big enough for BLAS to run at full
# speed, small enough (about 50 MB at 100 float64 columns) to stay out of memory trouble.
CHUNK_ROWS = 65_536
VAL_FRACTION = 0.2
# Tables (toolkit/columns.py has the rules): what a missing value does, which texts besides
# blank cells are missing, and how many levels a categorical column keeps before the
# rarest share one "other" level (R and statsmodels keep all; past ~100 a one-hot column
# per level costs more than it explains).
MISSING_POLICIES = ("error", "drop", "mean", "median")
MISSING = "error"
NA_VALUES: tuple[str, ...] = ()
MAX_LEVELS = 100
# Distinct values a categorical column may show before the scan stops with an error (an
# identifier column, not a category); the Gram matrix grows with their square.
MAX_DISTINCT_LEVELS = 10_000
UNKNOWN_LEVELS = ("error", "reference")
UNKNOWN_LEVEL = "error"  # scikit-learn's OneHotEncoder default: an unseen level is refused
STDIO = "-"  # --input/--output: standard input or output

# Training
SOLVERS = ("exact", "sgd", "adam", "lbfgs")
SOLVER = "exact"  # closed form; the others are ITERATIVE_SOLVERS
ITERATIVE_SOLVERS = ("sgd", "adam", "lbfgs")
DTYPES = ("float32", "float64")
DTYPE = "float32"
DEVICE = "auto"
SEED = 0
# --seed's range: numpy's generators take no negative seed, torch's take at most 64 bits.
SEED_MIN, SEED_MAX = 0, 2**64 - 1
L2 = 0.0
# Significance level of the inference's confidence intervals (1 - ALPHA = 95%): the
# statsmodels and R default.
ALPHA = 0.05
# Tuned so that each solver with its defaults reaches the exact solution's R^2 within
# 1e-4 on the seed data and on features spanning 1 to 100 in scale (tests/training).
SOLVER_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.1, "epochs": 300, "batch_size": 256, "patience": 20},
    "adam": {"lr": 0.01, "epochs": 300, "batch_size": 256, "patience": 20},
    "lbfgs": {"lr": 1.0, "epochs": 50, "batch_size": 0, "patience": 5},
}

# Export
# 18 is the opset the dynamo exporter writes natively (others go through onnx's version
# converter) and onnxruntime has run it since 1.14.
OPSET = 18
# Parity gate (atol, rtol) per dtype. float32: Optimum and Polygraphy validate exports at
# 1e-5; torch's assert_close uses atol 1e-5 with rtol 1.3e-6 on |expected|. Ours is
# relative to the terms' magnitude, so 1e-5 allows for the summation order of ~100-term
# dot products (about sqrt(d) * 6e-8). float64 has 2^29 times finer rounding: 1e-12
# leaves the same kind of margin.
PARITY_TOLERANCES = {"float32": (1e-5, 1e-5), "float64": (1e-12, 1e-12)}

# Report
REPORT_OUTPUT = Path("models") / "report.html"  # --format html; json and text go to stdout
REPORT_FORMATS = ("html", "json", "text")
REPORT_FORMAT = "html"
# Rows the residual plots are drawn from (a seeded uniform sample of --data): enough to
# show a scatter's shape and a Q-Q plot's tails, few enough for a page of ~1 MB.
REPORT_SAMPLE_ROWS = 10_000

# Runtime, predict, info and serve
PROVIDERS = "auto"
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8000
SERVE_WORKERS = 1
SERVE_MAX_BODY_BYTES = 8 << 20
SERVE_MAX_ROWS = 100_000
SERVE_BODY_TIMEOUT = 30.0  # seconds a client may take to send its body
SERVE_HEADER_TIMEOUT = 10.0  # seconds a client may take to send a request's headers
SERVE_MAX_CONCURRENCY = 1000  # requests in progress per worker; more get 503

# `toolkit train --weight COLUMN`: no weight column, so every row weighs 1 (ordinary least
# squares); the help shows WEIGHT_TEXT.
WEIGHT: str | None = None
WEIGHT_TEXT = "none: every row weighs 1"
