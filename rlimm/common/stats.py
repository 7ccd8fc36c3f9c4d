"""Summary statistics shared by every experiment's report: mean, standard error, percentiles, and
paired differences with a 95% interval (mean ± t(0.975, n − 1) standard errors of the n per-pair
differences: Student's t, not the normal 1.96, since n is a handful of seeds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Coverage of the paired intervals.
CONFIDENCE = 0.95


def t95(n: int) -> float:
    """Two-sided 95% quantile of Student's t with ``n − 1`` degrees of freedom, the multiplier of the
    standard error in a 95% interval over ``n`` pairs (12.706 for n = 2, 2.262 for n = 10, → 1.96)."""
    if n < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {n}")
    from scipy.stats import t  # imported here: scipy.stats takes a while and few commands need it

    return float(t.ppf(0.5 + CONFIDENCE / 2, n - 1))


@dataclass(frozen=True)
class Summary:
    """Of a sample of per-run values: size, mean, standard error of the mean, 10th/90th percentiles."""

    n: int
    mean: float
    sem: float
    p10: float
    p90: float


def summarize(values: np.ndarray) -> Summary:
    """:class:`Summary` of a 1-D sample (``sem`` uses the ``n − 1`` standard deviation; nan for n < 2)."""
    v = np.asarray(values, dtype=float)
    sem = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    p10, p90 = np.quantile(v, [0.1, 0.9])
    return Summary(len(v), float(v.mean()), sem, float(p10), float(p90))


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a − b`` over pairs and its 95% interval ``[low, high]``."""

    n: int
    mean: float
    low: float
    high: float


def paired_difference(a: np.ndarray, b: np.ndarray, scale: float = 1.0) -> PairedDifference:
    """Paired difference ``scale · (a − b)`` of two samples aligned by pair (same seed, same data), with
    its 95% interval mean ± :func:`t95` (n) · sd / √n (sd of the n differences, ``n − 1`` in its
    denominator).

    :param scale: unit of the result (100 for percentage points).
    """
    d = scale * (np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(
            f"paired differences need two aligned 1-D samples of at least 2, got shape {d.shape}"
        )
    mean = d.mean()
    half = t95(len(d)) * d.std(ddof=1) / np.sqrt(len(d))
    return PairedDifference(len(d), float(mean), float(mean - half), float(mean + half))
