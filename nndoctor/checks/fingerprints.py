"""Per-sample fingerprints (one number per sample, a fixed random projection of its input,
recorded by the probe) compared within float noise: which samples are the same."""

from __future__ import annotations

import bisect
import math


def fingerprint_tolerance(v: float) -> float:
    return 1e-5 * max(1.0, abs(v))


def near_fingerprint(sorted_values: list[float], v: float) -> bool:
    """Whether ``v`` is within float noise of a value in ``sorted_values`` (batched matmuls
    may round one sample's projection slightly differently)."""
    if not math.isfinite(v):
        return False
    i = bisect.bisect_left(sorted_values, v)
    tol = fingerprint_tolerance(v)
    return any(abs(sorted_values[j] - v) <= tol for j in (i - 1, i) if 0 <= j < len(sorted_values))


def distinct_fingerprints(fingerprints: list[float]) -> list[float]:
    """The finite fingerprints, sorted, each sample once (values within float noise of the
    one before are the same sample)."""
    finite = sorted(v for v in fingerprints if math.isfinite(v))
    return [
        b
        for a, b in zip([math.nan, *finite], finite, strict=False)
        if not b - a <= fingerprint_tolerance(b)
    ]


def distinct_rows(inputs: list[float], targets: list[float]) -> int:
    """How many distinct (input, target) rows a batch holds, from the fingerprints of both
    (parallel lists): samples of the same input are one row only where their targets agree
    too. Rows with a non-finite input fingerprint are left out."""
    pairs = sorted((x, y) for x, y in zip(inputs, targets, strict=True) if math.isfinite(x))
    count = 0
    start = 0
    for i in range(1, len(pairs) + 1):
        if i < len(pairs) and pairs[i][0] - pairs[i - 1][0] <= fingerprint_tolerance(pairs[i][0]):
            continue
        group = [y for _, y in pairs[start:i]]
        # A non-finite target (a NaN label) is its own row: it cannot be shown equal to another.
        count += len(distinct_fingerprints(group)) + sum(not math.isfinite(y) for y in group)
        start = i
    return count
