"""Which graphs the runtime runs: the operators a linear model needs, and nothing that loops.

A linear regressor is y = x W^T + b. toolkit's exports are one Gemm (with a bias, or
without one for `--no-intercept`); other exporters write MatMul + Add, put a Cast, a
Reshape or a scaler (Sub, Div) in front, or use ai.onnx.ml's LinearRegressor;
`toolkit export --explain` adds elementwise Sub and Mul, an Unsqueeze, Gemms and a
ReduceL2 (toolkit/export/explain.py; its earlier files used MatMul, Add and Sqrt); a
table model (raw columns in, toolkit/export/tables.py) adds LabelEncoder, Gather,
ReduceSum, Concat, IsNaN, And, Where and, without text columns, Shape and
ConstantOfShape. Only the operators in LINEAR_OPERATORS are run; anything else is refused
before onnxruntime opens the file.
That rules out, by construction:

- unbounded work: Loop, Scan and If carry subgraphs (a Loop's trip count can be 2**62),
  and no allowed operator has one;
- local functions (a file could define its own operator under any name);
- an output that does not depend on the input (a constant answers NaN, or 5 rows, with
  the same single row);
- an output that is the input itself (onnxruntime then leaves a bound output untouched).

The allowed operators can still compute a wrong number of rows (a Reshape to a fixed
shape): the Predictor compares the output's row count with the input's on every call.
"""

from __future__ import annotations

from toolkit.errors import UnsafeModelError
from toolkit.runtime.onnxfile import ModelFile

# Operators by domain ("ai.onnx" is the default domain's other name). None has a subgraph.
LINEAR_OPERATORS = {
    "": frozenset(
        {
            "Gemm",
            "MatMul",
            "Add",
            "Sub",
            "Mul",
            "Div",
            "Sqrt",  # the standard error of `toolkit export --explain` models (earlier files)
            "ReduceL2",  # ... and of those written now: the norm of a row's leverage terms
            "Identity",
            "Cast",
            "Reshape",
            "Flatten",
            "Squeeze",
            "Unsqueeze",
            "Constant",
            # Table models (toolkit/export/tables.py): each encodes raw columns with no
            # loop or subgraph, in work linear in the input's size.
            "Gather",  # a categorical column's coefficients by row; unknown-value flags
            "ReduceSum",  # adds the categorical columns' rows; counts unknown values
            "Concat",  # stacks the 1-D column inputs into one matrix
            "IsNaN",  # missing numeric cells
            "And",  # ... in columns that have a fill
            "Where",  # imputes the fill
            "Shape",  # with ConstantOfShape: unknown_levels' zeros when no column is text
            "ConstantOfShape",  # sized by an input's Shape, so it depends on the input
        }
    ),
    # LabelEncoder: a lookup of a text (level) to a table row; unknown texts get a default.
    "ai.onnx.ml": frozenset({"LinearRegressor", "LabelEncoder"}),
}
_ALIASES = {"ai.onnx": ""}
ML_OPERATORS = sorted(LINEAR_OPERATORS["ai.onnx.ml"])


def allowed(domain: str, op_type: str) -> bool:
    return op_type in LINEAR_OPERATORS.get(_ALIASES.get(domain, domain), frozenset())


def check_linear(info: ModelFile) -> None:
    """UnsafeModelError unless every operator is allowed and every output uses the input."""
    remedy = "toolkit runs linear models only; re-export it with `toolkit export`"
    if info.functions:
        raise UnsafeModelError(
            f"it defines {info.functions} local function{'s' if info.functions > 1 else ''}; "
            f"{remedy}"
        )
    refused = sorted(
        f"{op_type} ({domain})" if domain not in ("", "ai.onnx") else op_type
        for domain, op_type in info.operators
        if not allowed(domain, op_type)
    )
    if refused:
        shown = ", ".join(
            [*sorted(LINEAR_OPERATORS[""]), *(f"{op} (ai.onnx.ml)" for op in ML_OPERATORS)]
        )
        raise UnsafeModelError(
            f"it uses operator{'s' if len(refused) > 1 else ''} {', '.join(refused)}, which a "
            f"linear model does not need (allowed: {shown}); {remedy}"
        )
    for output in info.outputs:
        if output in info.inputs:
            raise UnsafeModelError(
                f"its output {output!r} is its input, passed through by no operator; {remedy}"
            )
        if not _depends_on(output, set(info.inputs), info):
            raise UnsafeModelError(
                f"its output {output!r} does not depend on its input "
                f"{', '.join(repr(i) for i in info.inputs) or '(none)'}; {remedy}"
            )


def _depends_on(output: str, inputs: set[str], info: ModelFile) -> bool:
    """Whether `output` is computed from one of `inputs` (a walk back through producers)."""
    producers = {name: node for node in info.nodes for name in node.outputs if name}
    seen: set[str] = set()
    stack = [output]
    while stack:
        name = stack.pop()
        if name in inputs:
            return True
        if name in seen:
            continue
        seen.add(name)
        node = producers.get(name)
        if node is not None:
            stack.extend(value for value in node.inputs if value)
    return False
