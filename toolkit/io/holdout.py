"""The validation split: a seeded hash of each row's values decides its side."""

from __future__ import annotations

import functools

import numpy as np


def holdout_mask(block: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for the rows of `block` held out for validation: a seeded hash of each row's values.

    A row lands on the same side whatever the chunking, the shard order or the number of
    processes, so the split needs no row count and no second pass, and exact duplicate
    rows never straddle it. About `fraction` of the rows are held out (binomially).
    """
    n, width = block.shape
    if fraction <= 0 or n == 0:
        return np.zeros(n, dtype=bool)
    odd = _odd_multipliers(seed, width)
    # A weighted sum of the values' bits (exact modular arithmetic: no rounding, no order
    # effects), then splitmix64's finaliser so that every bit moves the result.
    h = np.ascontiguousarray(block, dtype=np.float64).view(np.uint64) @ odd
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h < np.uint64(int(fraction * 2.0**64))


@functools.lru_cache(maxsize=16)
def _odd_multipliers(seed: int, width: int) -> np.ndarray:
    """One seeded odd 64-bit multiplier per column (drawn once per run, not per block)."""
    rng = np.random.default_rng([seed, width])
    odd = rng.integers(0, 1 << 63, size=width, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    odd.flags.writeable = False
    return odd
