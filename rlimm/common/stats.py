"""Summary statistics shared by every experiment's report: mean, standard error, percentiles, and
paired differences with a 95% interval (mean ± 1.96 standard errors of the per-pair differences)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Two-sided 95% normal quantile, used for every interval in rlimm's reports.
Z95 = 1.96


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
    """Paired difference ``scale · (a − b)`` of two samples aligned by pair (same seed, same data).

    :param scale: unit of the result (100 for percentage points).
    """
    d = scale * (np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(
            f"paired differences need two aligned 1-D samples of at least 2, got shape {d.shape}"
        )
    mean = d.mean()
    half = Z95 * d.std(ddof=1) / np.sqrt(len(d))
    return PairedDifference(len(d), float(mean), float(mean - half), float(mean + half))
