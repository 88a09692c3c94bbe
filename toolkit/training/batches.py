"""The iterative solvers' batches: mini-batches in a seeded order, and their squared residuals
(weighted, for weighted least squares)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from toolkit.training.rows import Rows


def squares(predicted: Any, targets: Any, weights: list[Any]) -> Any:
    """Squared residuals, times the rows' (relative) weights when there are any."""
    squared = (predicted - targets) ** 2
    return squared * weights[0] if weights else squared


def shuffled_batches(
    rows: Rows,
    tensors: Callable[[np.ndarray], tuple[Any, ...]],
    batch: int,
    generator: Any,
    device: Any,
) -> Iterator[tuple[Any, ...]]:
    """Mini-batches of `batch` rows: chunks in a seeded order, rows shuffled within each.

    The rows left over at the end of a chunk open the next batch, so every batch but the
    epoch's last is full whatever --chunk-rows is.
    """
    import torch

    ids = rows.chunk_ids()
    order = torch.randperm(len(ids), generator=generator).tolist()
    carry: tuple[Any, ...] | None = None
    for block in rows.blocks([ids[i] for i in order]):
        parts = tensors(block)
        shuffle = torch.randperm(len(parts[0]), generator=generator).to(device)
        parts = tuple(part[shuffle] for part in parts)
        if carry is not None:
            parts = tuple(torch.cat([old, new]) for old, new in zip(carry, parts, strict=True))
        size = len(parts[0])
        full = size - size % batch
        for begin in range(0, full, batch):
            yield tuple(part[begin : begin + batch] for part in parts)
        carry = tuple(part[full:] for part in parts) if full < size else None
    if carry is not None:
        yield carry
