"""The one-row fast path under `predict` and `explain`: onnxruntime's compiled session and
a per-thread IOBinding whose input row is bound once.

A one-row call is mostly fixed cost, so each piece of onnxruntime's Python layer that can
be settled once is: the wrapper's checks (`compiled_session`), the output buffers (the
callers'), and the input, a (1, n_features) buffer bound once as an OrtValue over its own
memory, into which each call copies its row. Binding each row afresh made an OrtValue per
call: measured 1.2 us of a 5.9 us run of the one-node model, 0.5-1.5 us of the 11-13 us
run of an --explain model.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import onnxruntime as ort


def compiled_session(session: Any) -> Any:
    """The compiled session inside onnxruntime's Python wrapper, or None.

    The wrapper's run() spends about 1 us a call (a fifth of a 1-row run) validating input
    names and provider fallbacks the Predictor has already settled; the compiled session it
    wraps takes the same arguments. A run-time provider failure then raises, which the
    Predictor reports, instead of the wrapper's silent retry on the CPU. Builds without it
    get the public calls.
    """
    compiled = getattr(session, "_sess", None)
    usable = all(hasattr(compiled, name) for name in ("run", "run_with_iobinding"))
    return compiled if usable else None


def row_binding(
    session: Any, compiled: Any, input_name: str, dtype: np.dtype, width: int
) -> tuple[Callable[[np.ndarray], None], Callable[[], None], Any, Any]:
    """One thread's binding for one-row runs: (feed, run, binding, bound).

    `feed(row)` puts a (1, width) row of `dtype` in place for the next `run()`; bind the
    outputs on `binding` (onnxruntime's wrapper) and read them from `bound` (what `run`
    runs: the compiled binding inside the wrapper, or the wrapper itself for builds
    without one, or where `compiled` is None). The row's buffer is bound once where
    onnxruntime holds CPU arrays without a copy, as it documents and as is checked here;
    otherwise each row is bound afresh, and the caller holds it for the run.
    """
    binding = session.io_binding()
    inner = getattr(binding, "_iobinding", None)
    if compiled is not None and inner is not None:
        bound, run = inner, partial(compiled.run_with_iobinding, inner, None)
        bind_row = partial(inner.bind_input, input_name)
    else:
        bound, run = binding, partial(session.run_with_iobinding, binding)
        bind_row = partial(binding.bind_cpu_input, input_name)
    row = np.zeros((1, width), dtype=dtype)
    value = ort.OrtValue.ortvalue_from_numpy(row)
    if value.data_ptr() != row.ctypes.data:  # a copy would not see the rows fed later
        return bind_row, run, binding, bound
    binding.bind_ortvalue_input(input_name, value)
    return partial(_copy_into, row, value), run, binding, bound


def _copy_into(row: np.ndarray, value: Any, new: np.ndarray) -> None:
    """Copy `new` into the bound `row` (`value`, its OrtValue, is passed to live as long)."""
    row[...] = new
