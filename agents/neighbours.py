"""Hidden parts for sampled induction, drawn from the rollout.

When the hidden part cannot be enumerated (Box and Dict restrictions, large Discrete ones), the
induced policy at a state with visible part x̄ averages the policy over k hidden parts h_j drawn
from the current rollout with weights that approximate π(h | x̄) (design brief §7):

- ``knn``: the state's own hidden part plus those of its k − 1 nearest neighbours in standardised
  visible space (discrete visible features must match exactly), with Gaussian kernel weights whose
  bandwidth is the k-th distance. k = 1 is the state itself: the naive loss, exactly.
- ``marginal``: k hidden parts drawn uniformly from the rollout, whatever their visible part, with
  equal weights. Cheap; biased when the hidden part depends on the visible one, and it builds states
  the policy never visits.

The draw and the weights are constants of the loss: no gradient flows through them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlimm.errors import RlimmError

INDUCTION_METHODS = ("exact", "knn", "marginal")


@dataclass(frozen=True)
class Draw:
    """Hidden parts for a batch: ``index`` (B, k) rows of the rollout, ``weights`` (B, k) summing to
    one per row, ``distances`` (B, k) in standardised visible space."""

    index: torch.Tensor
    weights: torch.Tensor
    distances: torch.Tensor

    def rows(self, index: torch.Tensor) -> Draw:
        """The draws of some rows (of a draw made for a whole rollout)."""
        return Draw(self.index[index], self.weights[index], self.distances[index])

    def effective_sample_size(self) -> torch.Tensor:
        """Mean over the batch of 1 / Σ_j w_j² (k for equal weights, 1 for a single neighbour)."""
        return (1.0 / (self.weights**2).sum(dim=1)).mean()

    def mean_distance(self) -> torch.Tensor:
        """Mean finite distance from a state to the states its hidden parts come from."""
        finite = torch.isfinite(self.distances)
        return self.distances[finite].mean() if finite.any() else self.distances.new_zeros(())


def check_induction(method: str, k: int) -> None:
    if method not in INDUCTION_METHODS:
        raise RlimmError(f"unknown induction method '{method}'; accepted: {', '.join(INDUCTION_METHODS)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise RlimmError(f"induction k must be a whole number >= 1, got {k!r}")


def _standardised_distances(batch: torch.Tensor, pool: torch.Tensor, discrete: torch.Tensor) -> torch.Tensor:
    """(B, N) Euclidean distances over the continuous features, standardised by the pool's spread;
    +inf where a discrete feature differs."""
    continuous = ~discrete
    distances = batch.new_zeros((batch.shape[0], pool.shape[0]))
    if continuous.any():
        p = pool[:, continuous]
        mean, std = p.mean(dim=0), p.std(dim=0).clamp_min(1e-8)
        distances = torch.cdist((batch[:, continuous] - mean) / std, (p - mean) / std)
    if discrete.any():
        mismatch = (batch[:, None, discrete] != pool[None, :, discrete]).any(dim=-1)
        distances = distances.masked_fill(mismatch, float("inf"))
    return distances


@torch.no_grad()
def knn(batch: torch.Tensor, pool: torch.Tensor, own: torch.Tensor, k: int, discrete: torch.Tensor) -> Draw:
    """The ``knn`` draw.

    :param batch: (B, f) visible features of the batch's states.
    :param pool: (N, f) visible features of the rollout's states.
    :param own: (B,) each batch state's row in the pool (its own hidden part comes first).
    :param k: hidden parts per state (at most N are used).
    :param discrete: (f,) bool, features that must match exactly.
    """
    distances = _standardised_distances(batch.float(), pool.float(), discrete)
    rows = torch.arange(batch.shape[0], device=batch.device)
    distances[rows, own] = -1.0  # the state's own hidden part first, whatever its duplicates
    dist, index = torch.topk(distances, min(k, pool.shape[0]), dim=1, largest=False)
    dist[:, 0] = 0.0
    finite = torch.isfinite(dist)
    # Bandwidth: the k-th (largest finite) distance; equal weights when every distance is zero.
    h = torch.where(finite, dist, torch.zeros_like(dist)).max(dim=1, keepdim=True).values
    h = torch.where(h > 0, h, torch.ones_like(h))
    weights = torch.where(finite, torch.exp(-0.5 * (dist / h) ** 2), torch.zeros_like(dist))
    return Draw(index, weights / weights.sum(dim=1, keepdim=True), dist)


@torch.no_grad()
def knn_all(pool: torch.Tensor, k: int, discrete: torch.Tensor, chunk: int = 1024) -> Draw:
    """The ``knn`` draw of every row of the pool (its own hidden part first), ``chunk`` rows at a time
    so that the distance matrix never holds more than chunk × N entries."""
    n = pool.shape[0]
    parts = [
        knn(
            pool[start : start + chunk],
            pool,
            torch.arange(start, min(start + chunk, n), device=pool.device),
            k,
            discrete,
        )
        for start in range(0, n, chunk)
    ]
    return Draw(*(torch.cat([getattr(p, f) for p in parts]) for f in ("index", "weights", "distances")))


@torch.no_grad()
def marginal(
    batch: torch.Tensor, pool: torch.Tensor, k: int, discrete: torch.Tensor, generator: torch.Generator
) -> Draw:
    """The ``marginal`` draw: k rows of the rollout uniformly at random, equal weights."""
    index = torch.randint(
        pool.shape[0], (batch.shape[0], k), generator=generator, device=generator.device
    ).to(batch.device)
    distances = _standardised_distances(batch.float(), pool.float(), discrete).gather(1, index)
    weights = torch.full(index.shape, 1.0 / k, device=batch.device)
    return Draw(index, weights, distances)
