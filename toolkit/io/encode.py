"""The one encoder: raw Arrow columns to the model's float64 columns, per a `TablePlan`.

Training's blocks and the export's parity gate (its float64 reference) both use `encode`,
so the graph is checked against the very code the model was fitted with. Vectorised
throughout (pyarrow.compute for the level lookup, numpy fancy indexing for the one-hot):
no Python per row.

Raw values: numeric columns any integer or floating type (nulls are missing; NaN and
infinity only when "nan"/"inf" are among the plan's na_values); categorical ones strings
(large, dictionary-encoded), booleans or integers, compared by `columns.level_text`
(blank, "" and the na_values tokens are missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from toolkit.columns import TablePlan


@dataclass
class Encoded:
    """What `encode` made of some rows."""

    block: np.ndarray  # float64 (rows, len(plan.encoded_names)), C order
    missing: np.ndarray  # bool (rows, len(plan.columns)): the raw cell was missing
    unknown: np.ndarray  # int64 (rows,): categorical cells holding an unknown value

    @property
    def missing_rows(self) -> np.ndarray:
        """bool (rows,): rows with at least one missing cell."""
        return self.missing.any(axis=1)


def encode(data: Any, plan: TablePlan, out: np.ndarray | None = None) -> Encoded:
    """Encode `data` (a pyarrow RecordBatch or Table, or a mapping of column name to
    array, holding at least the plan's raw columns) per `plan`.

    Missing cells take the column's fill (when it has one; else a numeric cell is NaN and
    a categorical one all zeros, and `missing` says which); unknown levels encode as the
    reference (all zeros) and are counted in `unknown`. `out`: a C-ordered float64 array
    of the block's shape to write into (a block with targets after the features: pass
    its left part through `out=block[:, :width]` is not C order, so pass a fresh one).
    """
    raise NotImplementedError
