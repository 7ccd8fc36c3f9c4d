"""Rollouts whose hidden-part belief π(h | x̄) is known in closed form: the ground truth against which
sampled induction (knn, marginal) is measured (``benchmarks/induction_error.py``, the tests).

A rollout is a set of episodes of ``length`` steps. Each step has a visible part x̄ and a hidden part h,
and both move smoothly along an episode, as states of a real trajectory do, so that a state's nearest
neighbours in visible space are often its own episode's previous and next steps, whose hidden part is
nearly its own. The processes are built so that, at every step, the conditional law of h given x̄ is
a fixed, known one, whatever the temporal correlation:

- :class:`ContinuousTruth`: x̄ is a stationary Gaussian AR(1) (N(0, 1) at every step), and
  h = ``slope``·x̄ + ``noise``·z with z an independent stationary AR(1) of correlation ``rho`` (``rho = 1``:
  z fixed for the whole episode). So π(h | x̄) = N(slope·x̄, noise²) exactly; :meth:`~ContinuousTruth.nodes`
  gives Gauss–Hermite nodes and weights for it.
- :class:`DiscreteTruth`: x̄ is one of ``contexts`` values (a sticky Markov chain started from its
  uniform stationary law) and h ∈ {0, 1} is drawn once per episode with P(h = 1) = ``p_hidden``,
  independently of x̄; π(h | x̄) = Bernoulli(p_hidden). Every visible match is exact (distance 0): the
  case where knn must break ties at random.

Arrays are numpy, one episode after another, as SB3's rollout buffer hands a one-env rollout out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TruthRollout:
    """One rollout: ``visible`` (N, f) and ``hidden`` (N, g) float32 features, ``episode`` (N,) an id per
    episode, ``step`` (N,) the step within it."""

    visible: np.ndarray
    hidden: np.ndarray
    episode: np.ndarray
    step: np.ndarray

    def __len__(self) -> int:
        return len(self.visible)


def _ar1(rng: np.random.Generator, episodes: int, length: int, rho: float) -> np.ndarray:
    """(E, T) stationary AR(1) paths with N(0, 1) marginals and lag-one correlation ``rho``."""
    path = np.empty((episodes, length))
    path[:, 0] = rng.standard_normal(episodes)
    innovation = np.sqrt(max(0.0, 1.0 - rho**2))
    for t in range(1, length):
        path[:, t] = rho * path[:, t - 1] + innovation * rng.standard_normal(episodes)
    return path


def _rollout(visible: np.ndarray, hidden: np.ndarray) -> TruthRollout:
    """(E, T, f) and (E, T, g) episodes → rows, one episode after another."""
    episodes, length = visible.shape[:2]
    return TruthRollout(
        visible.reshape(episodes * length, -1).astype(np.float32),
        hidden.reshape(episodes * length, -1).astype(np.float32),
        np.repeat(np.arange(episodes), length),
        np.tile(np.arange(length), episodes),
    )


@dataclass(frozen=True)
class ContinuousTruth:
    """Continuous x̄ and h with π(h | x̄) = N(slope·x̄, noise²) at every step (module docstring).

    :param length: steps per episode.
    :param rho_visible: lag-one correlation of x̄ along an episode (smoothness of the trajectory).
    :param rho_hidden: lag-one correlation of h's noise along an episode (1: fixed per episode).
    :param slope: how h depends on x̄.
    :param noise: spread of h given x̄.
    """

    length: int = 64
    rho_visible: float = 0.97
    rho_hidden: float = 0.99
    slope: float = 0.8
    noise: float = 1.0

    def sample(self, n: int, seed: int) -> TruthRollout:
        """A rollout of ``n`` rows (whole episodes: ``n`` a multiple of ``length``)."""
        episodes = _episodes(n, self.length)
        rng = np.random.default_rng(seed)
        x = _ar1(rng, episodes, self.length, self.rho_visible)
        z = _ar1(rng, episodes, self.length, self.rho_hidden)
        h = self.slope * x + self.noise * z
        return _rollout(x[..., None], h[..., None])

    def nodes(self, visible: np.ndarray, n_nodes: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Gauss–Hermite nodes (B, n_nodes, 1) of h given each visible row (B, 1), and their weights
        (n_nodes,), summing to one: E[f(h) | x̄] ≈ Σ_i w_i f(h_i), exact for polynomials of degree
        < 2·n_nodes."""
        t, w = np.polynomial.hermite_e.hermegauss(n_nodes)  # ∫ f(t) exp(−t²/2) dt
        mean = self.slope * np.asarray(visible, dtype=np.float64)[:, :1]
        return (mean + self.noise * t[None, :])[..., None], w / w.sum()


@dataclass(frozen=True)
class DiscreteTruth:
    """x̄ in ``contexts`` values (a sticky chain), h ∈ {0, 1} fixed per episode with P(h = 1) =
    ``p_hidden`` independently of x̄ (module docstring).

    :param first_episode_hidden: if set, env 0's first episode has this hidden value (the issue's
        example: the rows knn used to pick for every tie came from there).
    """

    length: int = 64
    contexts: int = 4
    stay: float = 0.9
    p_hidden: float = 0.5
    first_episode_hidden: float | None = None

    def sample(self, n: int, seed: int) -> TruthRollout:
        episodes = _episodes(n, self.length)
        rng = np.random.default_rng(seed)
        x = np.empty((episodes, self.length))
        x[:, 0] = rng.integers(self.contexts, size=episodes)
        for t in range(1, self.length):
            move = rng.random(episodes) >= self.stay
            x[:, t] = np.where(move, rng.integers(self.contexts, size=episodes), x[:, t - 1])
        h = (rng.random(episodes) < self.p_hidden).astype(np.float64)
        if self.first_episode_hidden is not None:
            h[0] = self.first_episode_hidden
        return _rollout(x[..., None], np.repeat(h[:, None], self.length, axis=1)[..., None])

    def nodes(self, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two hidden values (B, 2, 1) and their probabilities (2,) given any visible row."""
        b = np.asarray(visible).shape[0]
        return np.tile(np.array([0.0, 1.0])[None, :, None], (b, 1, 1)), np.array(
            [1 - self.p_hidden, self.p_hidden]
        )


def _episodes(n: int, length: int) -> int:
    if n < 1 or n % length:
        raise ValueError(f"n must be a positive multiple of the episode length {length}, got {n}")
    return n // length


def kl_to_truth(
    probs: Callable[[np.ndarray, np.ndarray], np.ndarray],
    truth: ContinuousTruth | DiscreteTruth,
    rollout: TruthRollout,
    rows: np.ndarray,
    index: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """KL(exact Q̄(·|x̄) ‖ estimate) at some rows of a rollout, one value per row.

    :param probs: the full policy, ``probs(visible (M, f), hidden (M, g)) -> (M, A)`` action probabilities.
    :param rows: (B,) the rows whose induced policy is estimated.
    :param index: (B, k) rows of the rollout whose hidden parts the estimate averages over.
    :param weights: (B, k) the estimate's weights (rows summing to one).
    """
    visible = rollout.visible[rows]
    b, k = index.shape
    hidden_nodes, node_weights = truth.nodes(visible)
    n = hidden_nodes.shape[1]
    at_nodes = probs(np.repeat(visible, n, axis=0), hidden_nodes.reshape(b * n, -1)).reshape(b, n, -1)
    exact = np.einsum("n,bna->ba", node_weights, at_nodes)
    drawn = probs(np.repeat(visible, k, axis=0), rollout.hidden[index.reshape(-1)]).reshape(b, k, -1)
    estimate = np.einsum("bk,bka->ba", weights, drawn)
    return np.sum(exact * (np.log(exact) - np.log(np.maximum(estimate, 1e-300))), axis=1)
