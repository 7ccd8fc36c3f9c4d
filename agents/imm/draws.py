"""Hidden parts for sampled induction, drawn from the rollout.

When the hidden part cannot be enumerated (Box and Dict restrictions, large Discrete ones), the
induced policy at a state with visible part x̄ averages the policy over k hidden parts h_j drawn
from the current rollout with weights that approximate π(h | x̄):

- ``knn``: the state's own hidden part plus those of its k − 1 nearest neighbours in standardised
  visible space (discrete visible features must match exactly), with Gaussian kernel weights whose
  bandwidth is the k-th distance. k = 1 is the state itself: the naive loss, exactly. Ties at the k-th
  distance are broken at random (with the induction's own generator), and neighbours from the state's
  own episode within ``exclude`` steps of it can be left out: both biases pull the estimate towards the
  naive loss (measured against the truth by ``benchmarks/induction_error.py``).
- ``marginal``: k hidden parts drawn uniformly from the rollout, whatever their visible part, with
  equal weights. Cheap; biased when the hidden part depends on the visible one, and it builds states
  the policy never visits.

The draw and the weights are constants of the loss: no gradient flows through them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from rlimm.agents.imm.observations import cat_rows, n_rows


@dataclass(frozen=True)
class Draw:
    """Hidden parts for a batch: ``index`` (B, k) rows of the pool, ``weights`` (B, k) summing to
    one per row, ``distances`` (B, k) in standardised visible space, and, when the pool's episodes are
    known, ``same_episode`` (B, k): whether each hidden part comes from the state's own episode."""

    index: torch.Tensor
    weights: torch.Tensor
    distances: torch.Tensor
    same_episode: torch.Tensor | None = None

    def rows(self, index: torch.Tensor) -> Draw:
        """The draws of some rows (of a draw made for a whole rollout)."""
        same = None if self.same_episode is None else self.same_episode[index]
        return Draw(self.index[index], self.weights[index], self.distances[index], same)

    def own_episode_share(self) -> torch.Tensor:
        """Share of the drawn neighbours (the state's own hidden part aside, weight > 0) that come from
        the state's own episode; ``nan`` when the episodes are unknown or nothing was drawn."""
        if self.same_episode is None or self.index.shape[1] < 2:
            return self.weights.new_tensor(float("nan"))
        used = self.weights[:, 1:] > 0
        if not used.any():
            return self.weights.new_tensor(float("nan"))
        return self.same_episode[:, 1:][used].float().mean()

    def fallback_share(self) -> torch.Tensor:
        """Share of the states whose induced policy fell back to their own hidden part only (no other
        hidden part with weight > 0): there, IMM is the naive loss."""
        if self.index.shape[1] < 2:
            return self.weights.new_ones(())
        return (self.weights[:, 1:] <= 0).all(dim=1).float().mean()

    def effective_sample_size(self) -> torch.Tensor:
        """Mean over the batch of 1 / Σ_j w_j² (k for equal weights, 1 for a single neighbour)."""
        return (1.0 / (self.weights**2).sum(dim=1)).mean()

    def mean_distance(self) -> torch.Tensor:
        """Mean finite distance from a state to the states its hidden parts come from."""
        finite = torch.isfinite(self.distances)
        return self.distances[finite].mean() if finite.any() else self.distances.new_zeros(())


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


@dataclass(frozen=True)
class Trajectories:
    """Where the pool's rows come from: ``episode`` (N,) an id per episode (unique within the pool) and
    ``step`` (N,) a time index along it (consecutive steps of one episode differ by one)."""

    episode: torch.Tensor
    step: torch.Tensor


@dataclass
class PoolDraws:
    """What sampled induction computes once per pool (a row's neighbours depend on the pool only, not on
    the minibatch it falls in): the pool's visible features; for knn the draw of every row the batch can
    hold and, when they fit the regulariser's cache, their synthetic states (which depend on no
    parameter); knn's :func:`hidden_spread` of the pool, once computed (a diagnostic). ``by`` is the
    regulariser that drew them: its k, restriction and generators decide them."""

    by: Any
    features: torch.Tensor
    draws: Draw | None
    synthetic: Any
    hidden_left: float | None = None


@dataclass(eq=False)
class Pool:
    """Sampled induction's pool: the observations hidden parts are drawn from, and what is drawn from
    them, kept with them.

    :param observations: (N, …) observations (a tensor, or a dict of tensors).
    :param rows: the batch's ``indices`` are rows among the first ``rows`` (the current rollout or
        minibatch; the rest are earlier rollouts or extra replay rows, drawn from only); ``None``: all.
    :param trajectories: the episode and step of each row (:class:`Trajectories`), for
        ``induction.exclude`` and the own-episode diagnostic. A pool without them (a bare tensor given to
        :meth:`~rlimm.agents.imm.regularizer.TeacherRegularizer.compute`) treats its rows as unrelated:
        nothing is excluded.
    :param drawn: the pool's :class:`PoolDraws`, filled by the regulariser at its first use
        (:meth:`~rlimm.agents.imm.regularizer.TeacherRegularizer.pool_draws`) and kept with the pool,
        so that every minibatch drawn from one pool shares them (another regulariser draws anew).
    """

    observations: Any
    rows: int | None = None
    trajectories: Trajectories | None = None
    drawn: PoolDraws | None = field(default=None, repr=False)


@dataclass
class RolloutPools:
    """Sampled induction's pools over the rollouts of an on-policy algorithm, in one object: this
    rollout's :class:`Pool` and what the ``keep`` rollouts before it left (observations, episodes,
    steps), newest first.

    :param keep: how many earlier rollouts a pool holds (``induction.pool`` − 1).
    """

    keep: int
    current: Pool | None = None
    earlier: list[tuple[Any, torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def refill(
        self,
        observations: Any,
        trajectories: Trajectories,
        kept: Any = None,
        now: Any = None,
    ) -> Pool:
        """A new rollout's pool: its ``observations`` first (the rows its minibatches are drawn from),
        then the earlier rollouts' (each passed through ``now``, e.g. ``VecNormalize``'s current
        statistics: the policy's view of those states today). ``kept`` is what the next rollouts keep of
        this one (default: its observations)."""
        earlier = [(obs if now is None else now(obs), *rest) for obs, *rest in self.earlier]
        parts = [(observations, trajectories.episode, trajectories.step), *earlier]
        self.current = Pool(
            cat_rows([part[0] for part in parts]),
            n_rows(observations),
            Trajectories(torch.cat([part[1] for part in parts]), torch.cat([part[2] for part in parts])),
        )
        if self.keep:
            mine = (observations if kept is None else kept, trajectories.episode, trajectories.step)
            self.earlier = [mine, *self.earlier][: self.keep]
        return self.current


@torch.no_grad()
def knn(
    batch: torch.Tensor,
    pool: torch.Tensor,
    own: torch.Tensor,
    k: int,
    discrete: torch.Tensor,
    *,
    ties: torch.Generator | None = None,
    trajectories: Trajectories | None = None,
    exclude: float | None = None,
) -> Draw:
    """The ``knn`` draw.

    :param batch: (B, f) visible features of the batch's states.
    :param pool: (N, f) visible features of the pool's states.
    :param own: (B,) each batch state's row in the pool (its own hidden part comes first).
    :param k: hidden parts per state (at most N are used).
    :param discrete: (f,) bool, features that must match exactly.
    :param ties: the generator that breaks ties at the k-th distance at random (every exact match is
        equally likely to be drawn); ``None``: the lowest rows win (when every visible feature is
        discrete, all the states of a context then share the same neighbours: the pool's first rows).
    :param trajectories: the pool rows' episodes and steps (for ``exclude`` and the diagnostics).
    :param exclude: no neighbour from the state's own episode within this many steps of it
        (``inf``: none from its episode at all; ``None``: no exclusion). Their hidden part
        is nearly the state's own: they would pull the induced policy towards the naive one.
    """
    distances = _standardised_distances(batch.float(), pool.float(), discrete)
    rows = torch.arange(batch.shape[0], device=batch.device)
    if trajectories is not None and exclude is not None:
        distances.masked_fill_(_excluded(trajectories, own, exclude), float("inf"))
    distances[rows, own] = -1.0  # the state's own hidden part first, whatever its duplicates
    kk = min(k, pool.shape[0])
    dist, index = torch.topk(distances, kk, dim=1, largest=False)
    if ties is not None and kk > 1:
        index = _break_ties(distances, dist, index, ties)
    dist[:, 0] = 0.0
    finite = torch.isfinite(dist)
    # Bandwidth: the k-th (largest finite) distance; equal weights when every distance is zero.
    h = torch.where(finite, dist, torch.zeros_like(dist)).max(dim=1, keepdim=True).values
    h = torch.where(h > 0, h, torch.ones_like(h))
    weights = torch.where(finite, torch.exp(-0.5 * (dist / h) ** 2), torch.zeros_like(dist))
    same = None
    if trajectories is not None:  # only the drawn rows' episodes are compared (B × k, not B × N)
        episode = trajectories.episode.to(batch.device)
        same = episode[index] == episode[own][:, None]
    return Draw(index, weights / weights.sum(dim=1, keepdim=True), dist, same)


def _excluded(trajectories: Trajectories, own: torch.Tensor, exclude: float) -> torch.Tensor:
    """(B, N) whether pool row n is in the episode of batch row b (pool row ``own[b]``) within
    ``exclude`` steps of it.

    One comparison per entry rather than three: each row gets the key e·span + (s − s_min), with e its
    episode's rank and span larger than any step gap plus ``exclude``, so that two keys lie within
    ``exclude`` of each other exactly when their rows share an episode and lie within ``exclude``
    steps; int32 keys where they fit (half the memory traffic of int64)."""
    episode, step = trajectories.episode.to(own.device), trajectories.step.to(own.device)
    if exclude == float("inf"):
        return episode[None, :] == episode[own][:, None]
    _, rank = torch.unique(episode, return_inverse=True)
    low = step.min()
    span = int(step.max() - low) + max(int(exclude), 0) + 1
    key = rank * span + (step - low)
    if int(key.max()) + span < 2**31:
        key = key.to(torch.int32)
    return (key[None, :] - key[own][:, None]).abs() <= exclude


def _break_ties(
    distances: torch.Tensor, dist: torch.Tensor, index: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``index`` (B, k) from ``topk`` with the rows tied at the k-th distance chosen at random.

    Only the k-th distance matters: every row closer is drawn anyway. Where more rows than the draw has
    room for lie exactly at it (finite), the free places go to a uniformly random subset of them (the
    smallest of uniform keys), from ``generator`` — never from torch's global generator."""
    kth = dist[:, -1:]
    # A row is tied when more rows than the draw holds lie at or below its k-th distance.
    tied = torch.isfinite(kth[:, 0]) & ((distances <= kth).sum(dim=1) > dist.shape[1])
    if not tied.any():
        return index
    r = tied.nonzero()[:, 0]
    at_kth = distances[r] == kth[r]
    below = (dist < kth).sum(dim=1)
    keys = torch.rand(at_kth.shape, generator=generator, device=generator.device).to(distances.device)
    keys = keys.masked_fill(~at_kth, 2.0)
    pick = torch.topk(keys, dist.shape[1], dim=1, largest=False).indices  # tied rows first, at random
    place = torch.arange(dist.shape[1], device=index.device)[None, :] - below[r][:, None]
    chosen = pick.gather(1, place.clamp(min=0))
    index = index.clone()
    index[r] = torch.where(place >= 0, chosen, index[r])
    return index


@torch.no_grad()
def knn_all(
    pool: torch.Tensor,
    k: int,
    discrete: torch.Tensor,
    chunk: int = 1024,
    *,
    rows: int | None = None,
    ties: torch.Generator | None = None,
    trajectories: Trajectories | None = None,
    exclude: float | None = None,
) -> Draw:
    """The ``knn`` draw of the first ``rows`` rows of the pool (all by default; its own hidden part
    first), ``chunk`` rows at a time so that the distance matrix never holds more than chunk × N
    entries. The other arguments are :func:`knn`'s."""
    n = pool.shape[0] if rows is None else rows
    parts = [
        knn(
            pool[start : min(start + chunk, n)],
            pool,
            torch.arange(start, min(start + chunk, n), device=pool.device),
            k,
            discrete,
            ties=ties,
            trajectories=trajectories,
            exclude=exclude,
        )
        for start in range(0, n, chunk)
    ]
    same = None if parts[0].same_episode is None else torch.cat([p.same_episode for p in parts])
    return Draw(
        torch.cat([p.index for p in parts]),
        torch.cat([p.weights for p in parts]),
        torch.cat([p.distances for p in parts]),
        same,
    )


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


@torch.no_grad()
def hidden_spread(hidden: torch.Tensor, index: torch.Tensor) -> float:
    """How much of the hidden part the visible part leaves open: for ``hidden`` ``(N, d)`` features of
    the hidden part and ``index`` ``(n, k)`` each of n rows' k neighbours in visible space (rows of
    ``hidden``), the mean over features of E_i[variance among row i's neighbours] / variance over all
    N rows. About 1 when the neighbours' hidden parts are as spread as any (the visible part tells
    nothing of the hidden one), 0 when they coincide (it determines it: the induced policy is then the
    state's own, and IMM's term is naive's). ``nan`` for k < 2 or no varying feature."""
    if index.shape[1] < 2 or hidden.shape[1] == 0:
        return float("nan")
    among = hidden[index.to(hidden.device)].var(dim=1).mean(dim=0)
    return float((among / hidden.var(dim=0)).mean())
