"""Load and run mutants in this process, one JSON line each (test_corpus.py starts it).

Usage: python corpus_worker.py LIST.json, where the file holds [[index, path], ...].
For each mutant it prints {"begin": index}, then {"index": index, "outcome": ...} once
done. A per-mutant timer (MUTANT_SECONDS) turns a slow Python-level run into
"hang"; a run stuck in C is caught by the parent, which sees a "begin" without its end.

Outcomes: "refused" (a ToolkitError at load, or on every batch), "correct" (every batch
that ran equals the seed's math), "different" (right shapes, other values: a mutant that
changed the weights), "nonfinite" (right shapes, NaN or infinity for finite inputs),
"wrong shape", "traceback" (any other exception), "hang".
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import traceback
from typing import Any

import numpy as np

from toolkit.errors import ToolkitError
from toolkit.runtime import Predictor
from toolkit.runtime.info import describe, to_lines

MUTANT_SECONDS = 10.0
MEMORY_BYTES = 8 << 30  # address space: a mutant that tries to allocate more fails visibly
ATOL = 1e-5  # the seed model's float32 tolerance (runtime_models.SEED_ATOL)
BATCHES = (1, 2, 5)


class MutantTimeout(BaseException):  # not an Exception: library code cannot swallow it
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise MutantTimeout


def run(path: str) -> dict[str, Any]:
    try:
        predictor = Predictor(path, providers="cpu", intra_op_threads=1, inter_op_threads=1)
    except ToolkitError as error:
        return {"outcome": "refused", "stage": "load", **_error(error)}
    except Exception as error:
        return {"outcome": "traceback", "stage": "load", **_error(error, trace=True)}
    try:
        to_lines(describe(predictor))
    except ToolkitError as error:
        return {"outcome": "refused", "stage": "info", **_error(error)}
    except Exception as error:
        return {"outcome": "traceback", "stage": "info", **_error(error, trace=True)}
    return _predict(predictor)


def _predict(predictor: Predictor) -> dict[str, Any]:
    batch = predictor.session.get_inputs()[0].shape[0]
    sizes = sorted({*BATCHES, batch} if isinstance(batch, int) and 0 < batch < 64 else BATCHES)
    rng = np.random.default_rng(0)
    outcomes, worst, refusals = [], 0.0, []
    comparable = (predictor.n_features, predictor.n_targets) == (2, 1)
    for rows in sizes:
        x = rng.uniform(-10, 10, (rows, predictor.n_features))
        try:
            result = predictor.predict(x)
        except ToolkitError as error:
            refusals.append(_error(error))
            continue
        except Exception as error:
            return {"outcome": "traceback", "stage": f"predict {rows}", **_error(error, trace=True)}
        if result.shape != (rows, predictor.n_targets) or result.dtype != predictor.dtype:
            return {"outcome": "wrong shape", "stage": f"predict {rows}", "shape": result.shape}
        if predictor.explain_outputs:  # a --explain model: its other outputs too
            found = _explain(predictor, x)
            if found is not None:
                return found
        if not np.isfinite(result).all():
            outcomes.append("nonfinite")
        elif comparable:
            error = float(np.abs(result[:, 0] - (x[:, 0] + x[:, 1] - 1)).max())
            worst = max(worst, error)
            outcomes.append("correct" if error <= ATOL * 4 else "different")
        else:
            outcomes.append("different")
    if not outcomes:
        return {"outcome": "refused", "stage": "predict", **refusals[0]}
    for outcome in ("nonfinite", "different", "correct"):
        if outcome in outcomes:
            return {"outcome": outcome, "max_error": worst, "refused_batches": len(refusals)}
    raise AssertionError(outcomes)


def _explain(predictor: Predictor, x: np.ndarray) -> dict[str, Any] | None:
    """None when explain() refuses cleanly or returns its documented shapes."""
    rows, targets = len(x), predictor.n_targets
    try:
        found = predictor.explain(x)
    except ToolkitError:
        return None
    except Exception as error:
        return {"outcome": "traceback", "stage": f"explain {rows}", **_error(error, trace=True)}
    shapes = {"prediction": found.prediction.shape, "contributions": found.contributions.shape}
    if found.stderr is not None:
        shapes.update(stderr=found.stderr.shape, lower=found.lower.shape, upper=found.upper.shape)
    wanted = {name: (rows, targets) for name in shapes}
    wanted["contributions"] = (rows, targets, predictor.n_features)
    if shapes != wanted:
        return {"outcome": "wrong shape", "stage": f"explain {rows}", "shape": shapes}
    return None


def _error(error: BaseException, trace: bool = False) -> dict[str, Any]:
    found = {"error": type(error).__name__, "message": str(error)[:400]}
    if trace:
        found["trace"] = traceback.format_exc()[-2000:]
    return found


def main(listing: str) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    signal.signal(signal.SIGALRM, _alarm)
    with open(listing) as handle:
        mutants = json.load(handle)
    for index, path in mutants:
        print(json.dumps({"begin": index}), flush=True)
        signal.setitimer(signal.ITIMER_REAL, MUTANT_SECONDS)
        try:
            found = run(path)
        except MutantTimeout:
            found = {"outcome": "hang", "stage": "python"}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        print(json.dumps({"index": index, **found}, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
