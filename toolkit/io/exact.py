"""Exact sums of float64 values, and the hashes of the median sketch (toolkit/io/scanner.py).

A float64 is an integer mantissa (53 bits) times a power of two. `exact_sum` splits each
mantissa into halves of at most 27 bits and sums them per exponent with numpy (the
partial sums stay below 2**53, so float64 adds them exactly), then shifts the per-exponent
sums into one Python integer: the sum of the values times 2**SHIFT, with no rounding at
all. Sums of chunks add up exactly, in any order: the mean does not depend on the
chunking, the shards or the processes.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

# The smallest float64 (2**-1074) is 2**-1126 times a 53-bit mantissa: every value is an
# integer multiple of 2**-SHIFT.
SHIFT = 1126
_MANTISSA = 53
_HALF = 26
# Values per numpy pass: 2**25 halves of at most 2**27 add up below 2**53 exactly.
_PASS = 1 << 25
_GOLDEN = 0x9E3779B97F4A7C15


def exact_sum(values: np.ndarray) -> int:
    """The sum of finite float64 `values` times 2**SHIFT, exactly, as a Python integer."""
    values = np.asarray(values, dtype=np.float64)
    total = 0
    for start in range(0, len(values), _PASS):
        part = values[start : start + _PASS]
        fraction, exponent = np.frexp(part)
        mantissa = (fraction * 2.0**_MANTISSA).astype(np.int64)  # exact: |fraction| < 1
        exponent = exponent.astype(np.int64)
        low_exponent = int(exponent.min())
        index = exponent - low_exponent
        high = mantissa >> _HALF
        low = mantissa - (high << _HALF)
        highs = np.bincount(index, weights=high)
        lows = np.bincount(index, weights=low)
        for k in np.flatnonzero((highs != 0) | (lows != 0)):
            value = (int(highs[k]) << _HALF) + int(lows[k])
            total += value << (int(k) + low_exponent - _MANTISSA + SHIFT)
    return total


def mean(total: int, count: int) -> float:
    """The mean from `exact_sum`'s total over `count` values, rounded once (NaN if none)."""
    if count == 0:
        return float("nan")
    return float(Fraction(total, count << SHIFT))


def mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (uint64, wraps)."""
    h = h.astype(np.uint64, copy=True)
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def row_hash(matrix: np.ndarray) -> np.ndarray:
    """uint64 (rows,): a hash of each row's float64 values (their bits, exactly)."""
    width = matrix.shape[1]
    odd = np.array(
        [((_GOLDEN * (2 * j + 3)) | 1) % (1 << 64) for j in range(width)], dtype=np.uint64
    )
    bits = np.ascontiguousarray(matrix, dtype=np.float64).view(np.uint64)
    with np.errstate(over="ignore"):
        return mix(bits @ odd)


def column_salt(position: int) -> np.uint64:
    """A per-column constant to mix into the row hash (so columns sample differently)."""
    return np.uint64((_GOLDEN * (position + 1)) % (1 << 64))
