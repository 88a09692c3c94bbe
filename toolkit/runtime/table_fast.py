"""A table model's one-row fast path: its graph without the text inputs, run with IOBinding.

onnxruntime binds no string tensor (IOBinding and OrtValue take numeric arrays only), so
every run of a table model converts its text inputs and allocates its outputs, and each
graph input and node costs about half a microsecond: a one-row prediction cost ~3x a
numeric model's. For one row, `TableModel` runs an equivalent graph, written here from the
model file at load, in which the work that only reshuffles the raw inputs is done in
Python from the file's own attributes:

- a LabelEncoder (text -> int64, ai.onnx.ml) that alone reads a text input becomes an
  int64 input, filled by a dict of its own keys and values;
- a Reshape to (k, -1) of a Concat (axis 0) of k such 1-D values, read by nothing else,
  becomes one (k, batch) input, filled row by row;
- `unknown_levels` as a Gather from an int64 table of flags (summed over the stacked
  rows) is dropped, and the lookups keep only the keys whose row has no flag: the count
  of every row this path takes is 0 by construction.

Every other node (the Gathers, ReduceSums, the imputation, the Gemm) runs as in the file,
on the same values, so the answers are the file's. A text that is not one of the
LabelEncoder's keys (an unknown level, a text of the wrong kind), a value that is not a
plain cell, or a nonzero unknown count sends the row to the general path, which runs the
file's graph; so the lookup here only ever answers what LabelEncoder's would. The checks
and errors are table.TableInputs' (`cell`), in the same order. At load, probe rows are
run both ways and must agree bit for bit, or the fast path is not used.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import card
from toolkit.runtime import explain, graph, onnxfile
from toolkit.runtime.session import session_of
from toolkit.runtime.table_values import CELLS, NotOneRow

INT64 = 7  # TensorProto.INT64
ELEMENT = {np.dtype(np.float32): 1, np.dtype(np.float64): 11}  # TensorProto.FLOAT, DOUBLE
ENCODER = {b"keys_strings", b"values_int64s", b"default_int64"}
UNKNOWN = card.UNKNOWN_LEVELS_OUTPUT.encode()  # as the file spells it


@dataclass(frozen=True)
class Layout:
    """The rewritten graph and where each raw column's cell goes in its inputs."""

    model: bytes
    # Per raw column, in the plan's order: (input name, row in it, text -> value or None).
    slots: tuple[tuple[str, int, dict[str, int] | None], ...]
    feeds: dict[str, tuple[int, int]]  # input name -> (element type, k rows; 0: 1-D)
    counts: bool  # whether the graph still answers unknown_levels


def rewrite(data: bytes, columns: list[tuple[str, bool]], dtype: np.dtype) -> Layout | None:
    """The graph of `data` with its text inputs' LabelEncoders and its stacking Concat and
    Reshape taken out (module docstring); None when the graph is not of that form.
    `columns`: (raw column name, categorical) in the plan's order."""
    model = onnxfile.parse_proto(data)
    body = model.graph
    nodes = list(body.node)  # one wrapper per node: `id` below tells them apart
    users: dict[bytes, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            users.setdefault(name, []).append(node)
    outputs = {value.name for value in body.output}
    sources, dropped = [], []
    for name, categorical in columns:
        found = users.get(name.encode(), [])
        if not categorical:
            sources.append((name.encode(), ELEMENT[np.dtype(dtype)], None))
            continue
        lookup = _encoder(found[0]) if len(found) == 1 else None
        if lookup is None or found[0].output[0] in outputs:
            return None
        sources.append((found[0].output[0], INT64, lookup))
        dropped.append(found[0])
    initializers = {tensor.name: tensor for tensor in body.initializer}
    placed, stacking = _stacks(users, [s[0] for s in sources], initializers, outputs)
    feeds: dict[str, tuple[int, int]] = {}
    slots = []
    for value, element, lookup in sources:
        feed, position, rows = placed.get(value, (value, 0, 0))
        feeds[feed.decode()] = (element, rows)
        slots.append((feed.decode(), position, lookup))
    counts = _counts(users, initializers, feeds)
    if counts is not None:  # a known text's row counts no unknown level: drop the count
        safe = counts[1]
        slots = [
            (feed, at, _safe(lookup, safe) if feed == counts[2] else lookup)
            for feed, at, lookup in slots
        ]
        stacking += counts[0]
        _replace(body.output, [v for v in body.output if v.name != UNKNOWN])
        outputs.discard(UNKNOWN)
    gone = {id(node) for node in dropped + stacking}
    kept = [node for node in nodes if id(node) not in gone]
    used = {name for node in kept for name in node.input} | outputs
    raw = {name.encode() for name, _ in columns}
    _replace(body.node, kept)
    _replace(body.initializer, [t for t in body.initializer if t.name in used])
    _replace(body.input, [v for v in body.input if v.name not in raw])
    for name, (element, _) in feeds.items():
        body.input.add().MergeFromString(_value_info(name.encode(), element))
    return Layout(model.SerializeToString(), tuple(slots), feeds, counts is None)


def _counts(
    users: dict[bytes, list[Any]], initializers: dict[bytes, Any], feeds: dict
) -> tuple[list[Any], np.ndarray, str] | None:
    """(nodes, flags, input) when `unknown_levels` is Gather(flags, input) of an int64
    table, summed over axis 0 (ReduceSum, keepdims 0) when the input is (k, batch) rows:
    then a row is unknown-free when every row index in it has a flag of 0."""
    producers = {out: node for nodes in users.values() for node in nodes for out in node.output}
    node = producers.get(UNKNOWN)
    chain = []
    if users.get(UNKNOWN):  # read by another node too: keep it
        return None
    if node is not None and node.op_type == b"ReduceSum":
        axes = _int64s(initializers.get(node.input[1])) if len(node.input) == 2 else None
        keep = [a.i for a in node.attribute if a.name == b"keepdims"]
        if axes != [0] or keep != [0] or len(users.get(node.input[0], [])) != 1:
            return None
        chain, node = [node], producers.get(node.input[0])
    if node is None or node.op_type != b"Gather" or node.domain not in (b"", b"ai.onnx"):
        return None
    flags = _int64s(initializers.get(node.input[0]), array=True)
    feed = node.input[1].decode()
    if flags is None or _axis(node) not in (None, 0) or feed not in feeds:
        return None
    element, rows = feeds[feed]
    if element != INT64 or bool(chain) != bool(rows):
        return None
    return [node, *chain], flags == 0, feed


def _safe(lookup: dict[str, int] | None, safe: np.ndarray) -> dict[str, int] | None:
    """`lookup` without the keys whose row is out of the flags' range or flagged."""
    if lookup is None:
        return None
    return {k: v for k, v in lookup.items() if 0 <= v < len(safe) and safe[v]}


def _encoder(node: Any) -> dict[str, int] | None:
    """A LabelEncoder from text to int64 as {key: value} (a text it lacks gets its default:
    the general path's business); None for any other node, or keys that repeat or are not
    UTF-8."""
    names = {attribute.name for attribute in node.attribute}
    if node.op_type != b"LabelEncoder" or node.domain != b"ai.onnx.ml" or names - ENCODER:
        return None
    if not {b"keys_strings", b"values_int64s"} <= names or len(node.output) != 1:
        return None
    found = {attribute.name: attribute for attribute in node.attribute}
    keys, values = found[b"keys_strings"].strings, found[b"values_int64s"].ints
    try:
        lookup = {key.decode("utf-8"): int(value) for key, value in zip(keys, values, strict=True)}
    except (ValueError, UnicodeDecodeError):
        return None
    return lookup if len(lookup) == len(keys) else None


def _stacks(
    users: dict[bytes, list[Any]], values: list[bytes], initializers: dict[bytes, Any], outputs: set
) -> tuple[dict[bytes, tuple[bytes, int, int]], list[Any]]:
    """{value: (stacked input, its row, k)} for the values that only a Concat (axis 0) and
    a Reshape to (k, -1) stack (or only a Reshape to (1, -1)), and those nodes."""
    placed: dict[bytes, tuple[bytes, int, int]] = {}
    dropped: list[Any] = []
    for value in values:
        found = users.get(value, [])
        if value in placed or len(found) != 1:
            continue
        node, parts, concat = found[0], [value], None
        if node.op_type == b"Concat" and node.domain in (b"", b"ai.onnx") and _axis(node) == 0:
            parts = list(node.input)
            if not all(p in values and len(users.get(p, [])) == 1 for p in parts):
                continue
            after = users.get(node.output[0], [])
            if len(after) != 1 or node.output[0] in outputs:
                continue
            concat, node = node, after[0]
        if node.op_type != b"Reshape" or node.domain not in (b"", b"ai.onnx"):
            continue
        shape = _int64s(initializers.get(node.input[1])) if len(node.input) == 2 else None
        if shape != [len(parts), -1] or node.output[0] in outputs:
            continue
        for position, part in enumerate(parts):
            placed[part] = (node.output[0], position, len(parts))
        dropped += [concat, node] if concat is not None else [node]
    return placed, dropped


def _axis(node: Any) -> int | None:
    axes = [a.i for a in node.attribute if a.name == b"axis"]
    return axes[0] if len(axes) == 1 else None


def _int64s(tensor: Any, array: bool = False) -> Any:
    """An int64 initializer stored as raw data, as a list (or a 1-D array); None for
    anything else."""
    if tensor is None or tensor.data_type != INT64 or not tensor.raw_data:
        return None
    if array and len(tensor.dims) != 1:
        return None
    values = np.frombuffer(tensor.raw_data, "<i8")
    return values if array else values.tolist()


def _replace(field: Any, items: list[Any]) -> None:
    copies = [item.SerializeToString() for item in items]
    del field[:]
    for copy in copies:
        field.add().MergeFromString(copy)


def _value_info(name: bytes, element: int) -> bytes:
    """A ValueInfoProto: `name`, a tensor of `element` of any shape (onnxfile declares only
    the name; protobuf keeps the type as an unknown field)."""
    tensor = b"\x08" + bytes([element])  # TypeProto.Tensor.elem_type
    kind = b"\x0a" + bytes([len(tensor)]) + tensor  # TypeProto.tensor_type
    return b"\x0a" + _varint(len(name)) + name + b"\x12" + bytes([len(kind)]) + kind


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def load(path: Path, session: Any, inputs: Any, outputs: list[str], targets: int) -> OneRow | None:
    """The one-row runner of the table model at `path` (whose Predictor session is
    `session`), or None when its graph is not of the form `rewrite` takes. The rewritten
    graph passes the file's checks (graph.check_linear, finite weights) before onnxruntime
    opens it."""
    data = onnxfile.read_model(path)
    info = onnxfile.parse(data)
    if info.external_locations or len(info.outputs) < 2:
        return None
    if len(info.outputs) > 2:  # --explain outputs: predict's graph is pruned to the first two
        data = explain.prediction_only(data, 2)
    columns = [(name, categorical) for name, categorical, _ in inputs.specs]
    layout = rewrite(data, columns, inputs.dtype)
    if layout is None:
        return None
    checked = onnxfile.parse(layout.model)  # no external data: `info` had none
    graph.check_linear(checked)
    if checked.non_finite:
        return None
    options = session.get_session_options()
    fast = session_of(path, layout.model, options, session.get_providers())
    return OneRow(fast, layout, inputs, outputs, targets)


class OneRow:
    """Runs one row through the rewritten graph: this thread's bound buffers, no allocation
    but the answer's copy. `predict` returns None where the general path must answer."""

    def __init__(
        self, session: Any, layout: Layout, inputs: Any, outputs: list[str], targets: int
    ) -> None:
        self.session, self.layout, self.inputs = session, layout, inputs
        self.outputs = outputs if layout.counts else outputs[:1]
        self.targets, self.names = targets, inputs.names
        self._local = threading.local()
        na = inputs.na
        # The texts the quick loop takes as they are: a level's own text (not missing).
        self._plain = [
            None if lookup is None else {k: v for k, v in lookup.items() if k and k not in na}
            for _, _, lookup in layout.slots
        ]
        # Python ints convert exactly to a float, then round once, as numpy's would.
        self._exact = 2**53

    def predict(self, data: Any, first_row: int, finite: bool) -> np.ndarray | None:
        """One record ({column: value}, [record]) or row's prediction (1, targets), or
        None: take the general path. A bad cell raises table.TableInputs' InputError (its
        `cell`, columns in the same order)."""
        if type(data) is list and len(data) == 1 and type(data[0]) is dict:
            data = data[0]  # one record
        names = self.names
        if type(data) is dict:
            if len(data) != len(names):
                return None
            values: Any = map(data.__getitem__, names)  # a missing name: KeyError below
        elif type(data) is list and len(data) == len(names) and type(data[0]) in CELLS:
            values = data  # one row
        else:
            return None
        try:
            run, quick, careful, prediction, unknown = self._local.state
        except AttributeError:
            run, quick, careful, prediction, unknown = self._local.state = self._state()
        limit = self._exact
        try:  # plain texts of known levels and plain numbers: no check can fail
            for (lookup, view, at), value in zip(quick, values, strict=False):
                if lookup is not None:
                    view[at] = lookup[value]
                elif (type(value) is float or type(value) is int) and -limit <= value <= limit:
                    view[at] = value
                else:
                    raise LookupError
        except (LookupError, TypeError):  # anything else: the general path's checks
            try:
                row = data if type(data) is list else [data[name] for name in names]
                self._careful(careful, row, first_row, finite)
            except (KeyError, NotOneRow):
                return None
        try:
            run()
        except Exception:  # onnxruntime's Fail/InvalidArgument/...: the general path words it
            return None
        return None if unknown is not None and unknown[0] else prediction.copy()

    def _careful(
        self, spec: list[tuple[Any, ...]], row: list[Any], first_row: int, finite: bool
    ) -> None:
        """table.TableInputs._one_row's conversions and checks, into the bound buffers;
        KeyError for a text the file's LabelEncoder does not map to a counted-free row."""
        na, cell = self.inputs.na, self.inputs.cell
        # strict=False: the callers checked the row's length.
        for (categorical, fills, limit, buffer, at, lookup, index), value in zip(
            spec, row, strict=False
        ):
            kind = type(value)
            if categorical:
                if kind is not str or not value or value in na:
                    if kind is bool:
                        value = "true" if value else "false"
                    else:
                        value = cell(value, index, first_row, finite)
                buffer[at] = lookup[value]
            elif (kind is float or kind is int) and -limit <= value <= limit:
                buffer[at] = value  # finite and within the dtype's range
            elif value is None and fills:
                buffer[at] = math.nan
            else:
                buffer[at] = cell(value, index, first_row, finite)

    def _state(self) -> tuple[Any, ...]:
        """(run, the quick loop's and the careful loop's per-column entries, the prediction
        and unknown count buffers) of this thread, bound once."""
        layout, dtype = self.layout, self.inputs.dtype
        binding = self.session.io_binding()
        buffers, views = {}, {}
        for name, (element, rows) in layout.feeds.items():
            buffer = np.zeros(max(rows, 1), np.int64 if element == INT64 else dtype)
            shape = (rows, 1) if rows else (1,)
            binding.bind_input(name, "cpu", 0, buffer.dtype.type, shape, buffer.ctypes.data)
            buffers[name] = buffer
            # A memoryview writes a Python number ~2x faster than numpy's __setitem__.
            views[name] = memoryview(buffer).cast("B").cast(buffer.dtype.char)
        prediction = np.empty((1, self.targets), dtype)
        unknown = np.zeros(1, np.int64) if layout.counts else None
        for name, buffer in zip(self.outputs, (prediction, unknown), strict=False):
            binding.bind_output(name, "cpu", 0, buffer.dtype.type, buffer.shape, buffer.ctypes.data)
        compiled, bound = getattr(self.session, "_sess", None), getattr(binding, "_iobinding", None)
        if compiled is not None and bound is not None:
            run = partial(compiled.run_with_iobinding, bound, None)
        else:
            run = partial(self.session.run_with_iobinding, binding)
        limit = float(np.finfo(dtype).max)
        quick, careful = [], []
        for index, ((_, categorical, fills), (feed, at, lookup), plain) in enumerate(
            zip(self.inputs.specs, layout.slots, self._plain, strict=True)
        ):
            quick.append((plain, views[feed], at))
            careful.append((categorical, fills, limit, buffers[feed], at, lookup, index))
        # The binding holds the buffers' addresses only: keep both for the thread's life.
        self._local.keep = (binding, buffers, views)
        return run, quick, careful, prediction, unknown
