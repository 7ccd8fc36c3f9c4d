"""Restricted models P̄(y = 1 | x1): the exact one, by quadrature, and estimated ones of lower quality.

The exact restricted model integrates the two hidden features out of the true model,

    P̄(y=1 | x1) = ¼ ∫∫_{[-1,1]²} σ(bias + w1·x1 + w2·u + w3·v) du dv,

which is the Bayes-optimal predictor for a learner that sees only x1. The integrand is analytic, so a
tensor-product Gauss–Legendre rule converges exponentially; we evaluate it once on a fine grid of x1
and interpolate linearly (error ≤ h²/8 · max|P̄''| ≈ 2e-7 on the default grid), which keeps teacher
look-ups for hundreds of thousands of training contexts cheap.

A lower-quality teacher is a one-feature logistic regression σ(c0 + c1·x1) fitted to a *restricted
sample* of (x1, y) pairs: the quality is set by the size of that sample, and every run gets its own
sample, so the teacher's own estimation noise shows up in the spread of the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rlimm.logreg.data import TrueModel, sample_features, sigmoid


class Teacher(Protocol):
    """A restricted model: ``prob(x1)`` is P̄(y = 1 | x1).

    ``x1`` may be ``(runs, k)`` (each run's own contexts) or ``(k,)`` (points shared by all runs, such
    as the test set); the result broadcasts against ``(runs, k)``.
    """

    #: Short description for tables, e.g. ``exact`` or ``logistic, 100 samples``.
    label: str

    def prob(self, x1: np.ndarray) -> np.ndarray: ...


def quadrature_restricted_prob(model: TrueModel, x1: np.ndarray, nodes: int = 64) -> np.ndarray:
    """P̄(y = 1 | x1) by Gauss–Legendre quadrature over (x2, x3), directly at the points ``x1``.

    :param model: the true full model.
    :param x1: values of the visible feature, any shape.
    :param nodes: Gauss–Legendre nodes per hidden dimension (``nodes²`` evaluations per point).
    """
    g, gw = np.polynomial.legendre.leggauss(nodes)
    w1, w2, w3 = model.weights
    hidden = (w2 * g[:, None] + w3 * g[None, :]).ravel()
    # The weights sum to 2 per dimension on [-1, 1]; the uniform density is 1/2 per dimension.
    weight = (gw[:, None] * gw[None, :]).ravel() / 4.0
    x1 = np.asarray(x1, dtype=np.float64)
    z = model.bias + w1 * x1.reshape(-1, 1) + hidden[None, :]
    return (sigmoid(z) @ weight).reshape(x1.shape)


def monte_carlo_restricted_prob(
    model: TrueModel, x1: np.ndarray, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """P̄(y = 1 | x1) estimated by averaging the true model over ``samples`` uniform hidden draws
    (the same draws for every point); standard error ≤ 0.5 / √samples."""
    hidden = sample_features(rng, (samples,))[:, 1:]
    w1, w2, w3 = model.weights
    s = hidden @ np.array([w2, w3])
    x1 = np.asarray(x1, dtype=np.float64)
    return sigmoid(model.bias + w1 * x1.reshape(-1, 1) + s[None, :]).mean(axis=1).reshape(x1.shape)


@dataclass(frozen=True)
class ExactTeacher:
    """The Bayes-optimal restricted model, tabulated by quadrature on a grid of x1 in [-1, 1]."""

    grid: np.ndarray
    table: np.ndarray
    label: str = "exact"

    @classmethod
    def build(cls, model: TrueModel, nodes: int = 64, grid_points: int = 2049) -> ExactTeacher:
        """Tabulate P̄ for ``model`` with ``nodes`` Gauss–Legendre nodes per hidden dimension on
        ``grid_points`` equally spaced values of x1."""
        grid = np.linspace(-1.0, 1.0, grid_points)
        return cls(grid, quadrature_restricted_prob(model, grid, nodes))

    def prob(self, x1: np.ndarray) -> np.ndarray:
        x1 = np.asarray(x1, dtype=np.float64)
        return np.interp(x1, self.grid, self.table)


@dataclass(frozen=True)
class LogisticTeacher:
    """Per-run one-feature logistic models ``σ(c0 + c1·x1)``; ``coef`` has shape ``(runs, 2)``."""

    coef: np.ndarray
    label: str = "logistic"

    def prob(self, x1: np.ndarray) -> np.ndarray:
        x1 = np.asarray(x1, dtype=np.float64)
        c0, c1 = self.coef[:, :1], self.coef[:, 1:]
        return sigmoid(c0 + c1 * (x1 if x1.ndim == 2 else x1[None, :]))


def fit_logistic_teacher(
    model: TrueModel,
    runs: int,
    samples: int,
    rng: np.random.Generator,
    ridge: float = 1e-3,
    iterations: int = 30,
) -> LogisticTeacher:
    """Fit one restricted logistic model per run, each to its own restricted sample.

    Newton's method on the mean log-loss plus ``ridge/2 · |c|²``; the small ridge keeps the fit finite
    when a tiny sample happens to be separable, and is negligible otherwise. All runs are solved
    together (batched 2×2 systems).

    :param model: the true model the restricted samples are drawn from.
    :param runs: number of teachers (one per run).
    :param samples: size of each restricted sample (x1, y): the teacher's quality.
    :param rng: random source for the samples.
    :param ridge: L2 penalty on (c0, c1).
    :param iterations: Newton steps (the problem is 2-dimensional and strictly convex).
    """
    x = sample_features(rng, (runs, samples))
    y = (rng.random((runs, samples)) < model.prob(x)).astype(np.float64)
    design = np.stack([np.ones((runs, samples)), x[..., 0]], axis=-1)  # (runs, samples, 2)
    coef = np.zeros((runs, 2))
    eye = np.eye(2)
    design_t = design.transpose(0, 2, 1)  # (runs, 2, samples)
    for _ in range(iterations):
        p = sigmoid((design @ coef[..., None])[..., 0])
        grad = (design_t @ (p - y)[..., None])[..., 0] / samples + ridge * coef
        hess = (design_t * (p * (1 - p))[:, None, :]) @ design / samples + ridge * eye
        coef = coef - np.linalg.solve(hess, grad[..., None])[..., 0]
    return LogisticTeacher(coef, f"logistic, {samples} samples")
