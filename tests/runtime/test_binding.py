"""toolkit/runtime/binding.py: the one-row IOBinding under predict and explain.

Its input row is a buffer bound once, so each run must see the row fed just before it,
and nothing else; the reference is onnxruntime's own `InferenceSession.run` on the same
row (same graph, same kernels: bit-identical).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from runtime_models import inputs_in_range

from toolkit.runtime import Predictor
from toolkit.runtime.binding import compiled_session, row_binding


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "public"])
def test_each_run_sees_the_row_fed_before_it(seed_onnx, compiled):
    session = _session(seed_onnx)
    inner = compiled_session(session) if compiled else None
    feed, run, binding, bound = row_binding(session, inner, "features", np.dtype("float32"), 2)
    binding.bind_output("prediction", "cpu")
    for row in inputs_in_range(5, seed=3):
        x = row[None, :]
        feed(x)
        run()
        (got,) = bound.copy_outputs_to_cpu()
        (want,) = session.run(None, {"features": x})
        np.testing.assert_array_equal(got, want)


def test_without_a_shared_buffer_each_row_is_bound_afresh(seed_onnx, monkeypatch):
    # Where onnxruntime copied a CPU array into its OrtValue, rows fed into the buffer
    # would never reach the graph: the binding then binds every row itself.
    original = ort.OrtValue.ortvalue_from_numpy

    def copied(array: np.ndarray) -> ort.OrtValue:
        return original(array.copy())

    session = _session(seed_onnx)
    monkeypatch.setattr(ort.OrtValue, "ortvalue_from_numpy", staticmethod(copied))
    feed, run, binding, bound = row_binding(
        session, compiled_session(session), "features", np.dtype("float32"), 2
    )
    binding.bind_output("prediction", "cpu")
    for row in inputs_in_range(3, seed=4):
        x = row[None, :]
        feed(x)
        run()
        np.testing.assert_array_equal(
            bound.copy_outputs_to_cpu()[0], session.run(None, {"features": x})[0]
        )


def test_threads_feeding_their_own_rows_get_their_own_predictions(seed_onnx):
    predictor = Predictor(seed_onnx)
    rows = inputs_in_range(8, seed=5)
    want = _session(seed_onnx).run(None, {"features": rows})[0]
    found: dict[int, list[np.ndarray]] = {}

    def work(k: int) -> None:
        found[k] = [predictor.predict(rows[k]) for _ in range(300)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(rows))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k, results in found.items():
        for result in results:
            np.testing.assert_array_equal(result, want[k : k + 1])
