"""The teacher regulariser: the teacher's view of a batch and the policy's distribution → the divergence R.

Each algorithm's ``train()`` adds ``λ · R`` to its loss on its own loss line (λ, ``teacher_coef``, is the
algorithm's: a number, a schedule of training progress or the trust rule), where R is

- ``none``:  0 (the plain algorithm);
- ``naive``: mean over the batch of KL(P̄(·|x̄) ‖ π(·|x))    — pointwise, at each visited state;
- ``imm``:   mean over the batch of KL(P̄(·|x̄) ‖ π̄(·|x̄))  — π̄ is the policy induced over the
  hidden part: exactly (``method="exact"``: one batched forward over the members of the contexts that
  occur in the batch, with the restriction's belief), or from k hidden parts drawn from a pool of
  observations (``"knn"``, ``"marginal"``: :mod:`rlimm.agents.imm.draws`; one batched forward over
  batch × k synthetic states).

:meth:`TeacherRegularizer.compute` receives everything as arguments: the teacher's parameters at the
batch's states (computed from the raw observations once per rollout, by the algorithm), the policy's
parameters there, a callable that evaluates the policy's parameters at other observations, and, as the
induction needs them, the batch's contexts, observations, row indices and the pool of observations.
Nothing here imports stable-baselines3 (the SB3 glue is :mod:`rlimm.agents.common`). The divergences
are the core's — :mod:`rlimm.losses` for categorical actions, :mod:`rlimm.gaussian_kl` for Box actions,
chosen by the action space (:mod:`rlimm.agents.imm.families`). Both KLs are computed as diagnostics
whichever one is optimised, so IMM and naive runs can be compared on one TensorBoard view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlimm.agents.imm import draws as draws_
from rlimm.agents.imm.draws import Pool, PoolDraws
from rlimm.agents.imm.families import Family, Params, family_for
from rlimm.agents.imm.observations import hidden_features, nbytes, per_key
from rlimm.agents.imm.settings import InductionSettings
from rlimm.envs.restrictions import PartitionRestriction, Restriction
from rlimm.errors import RlimmError

REGULARIZERS = ("none", "naive", "imm")

#: Observations: a tensor, or a dict of tensors (Dict observation spaces).
Obs = Any
#: ``evaluate(observations) -> params``: the policy's distribution parameters at a batch of
#: observations — raw logits (not normalised) for categorical actions, ``(mean, log_std)`` for Gaussians.
Evaluate = Callable[[Obs], Params]


@dataclass
class RegularizerOutput:
    """What one evaluation of the regulariser gives.

    :param divergence: R, the optimised divergence (not weighted by λ), with gradient; a zero tensor
        for ``none`` or when not optimised (λ = 0).
    :param imm_kl: batch mean of KL(teacher ‖ induced policy), no gradient (``nan`` if not computed).
    :param naive_kl: batch mean of KL(teacher ‖ policy at the full state), no gradient.
    :param ess: sampled induction: mean effective sample size of the weights (``nan`` otherwise).
    :param distance: sampled induction: mean standardised distance to the neighbours (``nan`` otherwise).
    :param own_episode: sampled induction: share of the drawn neighbours that come from the state's own
        episode (``nan`` when the pool's episodes are unknown).
    :param fallback: sampled induction: share of the states whose induced policy is their own policy
        alone (no other hidden part drawn): IMM is naive there.
    :param own_kl: sampled induction: batch mean of KL(policy at the state ‖ its induced policy); near 0
        means the induced policy is the state's own, i.e. IMM has become naive.
    :param hidden_left: ``knn``: the share of the hidden part its neighbours leave open on the pool
        (:func:`~rlimm.agents.imm.draws.hidden_spread`; near 0: IMM's term is naive's), once per pool.
    :param teacher: with ``keep``: the teacher's distribution at the batch's states (the family's form).
    :param induced: with ``keep`` and an induced policy computed: ``(components, weights, rows)``
        without gradient, for :meth:`Family.induced_log_prob` (the trust signal, :mod:`rlimm.trust`).
    """

    divergence: torch.Tensor
    imm_kl: float
    naive_kl: float
    ess: float = float("nan")
    distance: float = float("nan")
    own_episode: float = float("nan")
    fallback: float = float("nan")
    own_kl: float = float("nan")
    hidden_left: float = float("nan")
    teacher: Any = None
    induced: tuple | None = None


def check_regularizer(kind: str) -> str:
    """``kind`` if it is one of :data:`REGULARIZERS`, else a one-line :class:`RlimmError`."""
    if kind not in REGULARIZERS:
        raise RlimmError(f"unknown regularizer '{kind}'; accepted: {', '.join(REGULARIZERS)}")
    return kind


#: Largest pool's synthetic states (N × (k − 1) observations) kept for the whole pool.
SYNTHETIC_CACHE_BYTES = 64 * 2**20


class TeacherRegularizer:
    """The divergence between a restricted teacher and the policy (the algorithm weighs it by λ).

    :param kind: ``none``, ``naive`` or ``imm``.
    :param restriction: what the teacher sees of an observation; ``None`` when there is no teacher:
        the regulariser is then off (:attr:`enabled` is false) and cannot compute.
    :param action_space: decides the divergence (:mod:`rlimm.agents.imm.families`): categorical for
        ``Discrete`` (also when ``None``), per-dimension categorical for ``MultiDiscrete``, diagonal
        Gaussian for ``Box``.
    :param induction: the induction settings (:class:`~rlimm.agents.imm.settings.InductionSettings`, a
        dict with some of its keys, or ``None`` for the defaults).
    :param seed: seed of the induction's own generators — the ``marginal`` draws and the ``mc``
        actions, knn's tie-breaking, the diagnostics' ``mc`` actions, the extra rows of a replay pool
        (four streams, so that one never shifts another) — which never move SB3's random streams.
    :param device: where the lookup tables live (the policy's device).
    """

    def __init__(
        self,
        kind: str,
        restriction: Restriction | None = None,
        action_space: spaces.Space | None = None,
        induction: InductionSettings | Mapping[str, Any] | None = None,
        seed: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.kind = check_regularizer(kind)
        self.induction = InductionSettings.of(induction)
        self.restriction = restriction
        #: the resolved induction method (``exact``, ``knn`` or ``marginal``), ``None`` when off
        self.method: str | None = None
        self.family: Family | None = None
        if restriction is None:
            return
        method = self.induction.method_for(restriction)
        self.method = method
        dev = torch.device(device)
        base = 0 if seed is None else int(seed)
        self._generator = torch.Generator(device=dev).manual_seed(base)
        self._ties = torch.Generator(device=dev).manual_seed(base + TIES_STREAM)
        self._diagnostic = torch.Generator(device=dev).manual_seed(base + DIAGNOSTIC_STREAM)
        #: draws of extra pool rows (SAC's replay rows), never numpy's global generator
        self.pool_rng = np.random.default_rng(base + POOL_STREAM)
        #: the trust signal's action draws (SAC's critic evidence, :mod:`rlimm.trust`)
        self.trust_generator = torch.Generator(device=dev).manual_seed(base + TRUST_STREAM)
        self.family = family_for(action_space, self.induction, self._generator)
        self._tables = method == "exact" and isinstance(restriction, PartitionRestriction)
        if isinstance(restriction, PartitionRestriction) and self._tables:
            self._members = torch.as_tensor(restriction.members, device=dev)
            self._fixed_belief = torch.as_tensor(restriction.belief, dtype=torch.float32, device=dev)
            self._belief = self._fixed_belief
        else:
            self._discrete = torch.as_tensor(restriction.discrete_features, dtype=torch.bool, device=dev)
        if self.induction.belief == "on_policy" and not self._tables:
            raise RlimmError(
                "'induction.belief: on_policy' needs exact induction over a table restriction (a factored "
                f"Discrete observation); {restriction.describe()} with method '{method}' has no table: "
                "use belief 'fixed'"
            )

    @property
    def enabled(self) -> bool:
        """Whether there is a teacher's view to compare with (a restriction was given)."""
        return self.restriction is not None

    @property
    def on_policy_belief(self) -> bool:
        """Whether exact induction weighs the hidden values by the rollout's visits
        (:meth:`observe_rollout`) rather than the restriction's fixed belief."""
        return self._tables and self.induction.belief == "on_policy"

    def observe_rollout(self, observations: Any) -> None:
        """``belief: on_policy``: the belief of each context becomes how often the rollout visited each of
        its members (full states), smoothed by one pseudo-visit spread as the fixed belief:
        b(h | c) = (n(c, h) + b₀(h | c)) / (n(c) + 1). Called once per rollout, with its observations
        (Discrete state indices)."""
        if not self.on_policy_belief:
            return
        states = torch.as_tensor(observations, device=self._members.device).long().reshape(-1)
        counts = torch.bincount(states, minlength=int(self._members.max()) + 1).to(torch.float32)
        visits = counts[self._members]  # (C, H)
        self._belief = (visits + self._fixed_belief) / (visits.sum(dim=1, keepdim=True) + 1.0)

    @property
    def belief(self) -> torch.Tensor | None:
        """Exact induction over a table: the ``(contexts, hidden values)`` weights in use."""
        return self._belief if self._tables else None

    @property
    def sampled(self) -> bool:
        """Whether the induced policy is estimated from draws (``knn``, ``marginal``): then
        :meth:`compute` needs the batch's ``indices`` and a ``pool``."""
        return self.method in ("knn", "marginal")

    def compute(
        self,
        teacher_params: torch.Tensor,
        params: Params,
        evaluate: Evaluate,
        *,
        optimise: bool = True,
        contexts: torch.Tensor | None = None,
        observations: Obs = None,
        indices: torch.Tensor | None = None,
        pool: Obs = None,
        diagnostics: bool = True,
        keep: bool = False,
    ) -> RegularizerOutput:
        """Evaluate the regulariser on a batch of B states.

        :param teacher_params: ``(B, n_params)`` the teacher's distribution at the batch's states
            (probabilities, or mean ‖ log-std), computed from the raw observations.
        :param params: the policy's distribution parameters at the batch's states (normalised logits
            or ``(mean, log_std)``, :meth:`Family.params_of`), with gradient.
        :param evaluate: the policy's parameters at other observations (the induced policy's members).
        :param optimise: compute ``kind``'s divergence with gradient; ``False`` (λ = 0 now): no
            gradient, and no forward beyond the ``diagnostics``.
        :param contexts: ``(B,)`` visible contexts (exact induction with a table restriction).
        :param observations: the batch's observations (enumerated and sampled induction).
        :param indices: ``(B,)`` the batch's rows in ``pool`` (sampled induction).
        :param pool: sampled induction: the :class:`Pool` hidden parts are drawn from (or its bare
            observations).
        :param diagnostics: also compute the KL that is not optimised (without gradient) and, for
            sampled induction, the draws' statistics; ``nan`` otherwise.
        :param keep: also return the teacher's distribution and the induced policy's components
            (``teacher``, ``induced``), detached.
        """
        family = self.family
        if family is None:
            raise RlimmError("the regulariser has no teacher (no restriction was given): it cannot compute")
        if pool is not None and not isinstance(pool, Pool):
            pool = Pool(pool)  # bare observations: drawn from for this call only
        device = (params[0] if family.continuous else params).device
        teacher = family.teacher(teacher_params.to(device))
        use_imm = self.kind == "imm" and optimise
        use_naive = self.kind == "naive" and optimise

        naive = None
        if use_naive or diagnostics:
            with torch.set_grad_enabled(torch.is_grad_enabled() and use_naive):
                naive = family.naive(teacher, params)
        imm, ess, distance = None, float("nan"), float("nan")
        own_episode = fallback = own_kl = hidden_left = float("nan")
        induced = None
        if use_imm or diagnostics:
            with torch.set_grad_enabled(torch.is_grad_enabled() and use_imm):
                if self._tables:
                    if contexts is None:
                        raise RlimmError(
                            "exact induction with a table restriction needs the batch's contexts"
                        )
                    imm, induced = self._exact_imm(evaluate, contexts, teacher)
                elif self.method == "exact":
                    imm, induced = self._enumerated_imm(evaluate, observations, teacher)
                else:
                    imm, draw, components = self._sampled_imm(
                        evaluate, observations, indices, teacher, pool, params
                    )
                    induced = (components, draw.weights, None)
                    if diagnostics:
                        ess, distance = draw.effective_sample_size().item(), draw.mean_distance().item()
                        own_episode = draw.own_episode_share().item()
                        fallback = draw.fallback_share().item()
                        own_kl = self._own_kl(params, components, draw.weights)
                        hidden_left = self._hidden_left(pool)

        divergence = torch.zeros((), device=device)
        if use_imm:
            divergence = imm
        elif use_naive:
            divergence = naive
        imm_kl = float("nan") if imm is None else imm.item()
        naive_kl = float("nan") if naive is None else naive.item()
        out = RegularizerOutput(
            divergence, imm_kl, naive_kl, ess, distance, own_episode, fallback, own_kl, hidden_left
        )
        if keep:
            out.teacher = teacher
            if induced is not None:
                components, weights, rows = induced
                out.induced = (_detached(components), weights, rows)
        return out

    def _hidden_left(self, pool: Pool) -> float:
        """knn: the pool's hidden spread among the draws' neighbours, computed once per pool."""
        cached = self.pool_draws(pool)
        if cached.draws is None:
            return float("nan")
        if cached.hidden_left is None:
            hidden = hidden_features(self.restriction, pool.observations)
            cached.hidden_left = draws_.hidden_spread(hidden, cached.draws.index)
        return cached.hidden_left

    @torch.no_grad()
    def _own_kl(self, params: Params, components: Params, weights: torch.Tensor) -> float:
        """Batch mean of KL(policy at the state ‖ induced policy), the diagnostic of IMM turning naive."""
        assert self.family is not None
        own = self.family.as_teacher(params)
        if self.family.continuous:
            return self.family.imm(own, components, weights, generator=self._diagnostic).item()
        return self.family.imm(own, components, weights).item()

    def _members_params(self, evaluate: Evaluate, obs: Obs) -> Params:
        """The policy's normalised parameters at the members of an exact induction."""
        assert self.family is not None
        return self.family.normalise(evaluate(obs))

    def _exact_imm(
        self, evaluate: Evaluate, contexts: torch.Tensor, teacher: Any
    ) -> tuple[torch.Tensor, tuple]:
        # Induce once per distinct context in the batch: one forward over its members.
        assert self.family is not None
        contexts = contexts.long().reshape(-1).to(self._members.device)
        unique, rows = torch.unique(contexts, return_inverse=True)
        members = self._members[unique]  # (U, H) observations
        params = self._members_params(evaluate, members.reshape(-1).to(torch.float32))
        components = self.family.reshape(params, members.shape[0], members.shape[1])
        belief = self._belief[unique]
        return self.family.imm(teacher, components, belief, rows=rows), (components, belief, rows)

    def _enumerated_imm(self, evaluate: Evaluate, obs: Obs, teacher: Any) -> tuple[torch.Tensor, tuple]:
        # An exact restriction without lookup tables enumerates each state's hidden values itself.
        assert self.family is not None and self.restriction is not None
        candidates, belief = self.restriction.enumerate_hidden(obs)
        params = self._members_params(evaluate, candidates)
        components = self.family.reshape(params, belief.shape[0], belief.shape[1])
        return self.family.imm(teacher, components, belief), (components, belief, None)

    def _sampled_imm(
        self,
        evaluate: Evaluate,
        observations: Obs,
        indices: torch.Tensor | None,
        teacher: Any,
        pool: Pool | None,
        params: Params,
    ) -> tuple[torch.Tensor, draws_.Draw, Params]:
        family = self.family
        assert family is not None
        if pool is None or indices is None:
            raise RlimmError("sampled induction needs the pool of observations and the batch's rows in it")
        cached = self.pool_draws(pool)
        if self.method == "knn":
            assert cached.draws is not None
            rows = indices.to(cached.draws.index.device)
            draw = cached.draws.rows(rows)
            # knn's first hidden part is the state's own: that synthetic state is the state itself,
            # whose distribution the algorithm's forward already gave. Only the k − 1 others are evaluated.
            b, k = draw.index.shape[0], draw.index.shape[1] - 1
            own = family.own(params)
            synthetic = per_key(cached.synthetic, lambda v: v[rows]) if cached.synthetic is not None else None
            if synthetic is None and k:
                synthetic = self._synthetic(pool.observations, observations, draw.index[:, 1:])
        else:
            # The batch's rows of the pool: their visible features were computed with the pool's.
            features = cached.features[indices.to(cached.features.device)]
            draw = draws_.marginal(
                features, cached.features, self.induction.k, self._discrete, self._generator
            )
            if pool.trajectories is not None:  # for the own-episode diagnostic
                episode = pool.trajectories.episode.to(draw.index.device)
                same = episode[draw.index] == episode[indices.to(draw.index.device)][:, None]
                draw = draws_.Draw(draw.index, draw.weights, draw.distances, same)
            (b, k), own = draw.index.shape, None
            synthetic = self._synthetic(pool.observations, observations, draw.index)
        # One forward over the batch × k synthetic states (x̄_i, h_j).
        others = None
        if k:
            flat = per_key(synthetic, lambda v: v.reshape(-1, *v.shape[2:]))
            others = family.reshape(evaluate(flat), b, k)
        components = others if own is None else family.stack(own, others)
        return family.imm(teacher, components, draw.weights), draw, components

    def _synthetic(self, pool: Obs, observations: Obs, index: torch.Tensor) -> Obs:
        """(B, k, …) synthetic states: each observation's visible part with the hidden parts of the
        pool rows ``index`` (B, k)."""
        assert self.restriction is not None
        b, k = index.shape
        flat = index.reshape(-1)
        states = self.restriction.combine(
            per_key(observations, lambda v: v.repeat_interleave(k, dim=0)), per_key(pool, lambda v: v[flat])
        )
        return per_key(states, lambda v: v.reshape(b, k, *v.shape[1:]))

    def pool_draws(self, pool: Pool) -> PoolDraws:
        """The pool's features and draws (:class:`~rlimm.agents.imm.draws.PoolDraws`), computed at the
        pool's first use by this regulariser and kept with it (``pool.drawn``)."""
        if pool.drawn is not None and pool.drawn.by is self:
            return pool.drawn
        assert self.restriction is not None
        features = self.restriction.visible_features(pool.observations)
        draws = synthetic = None
        if self.method == "knn":
            draws = draws_.knn_all(
                features,
                self.induction.k,
                self._discrete,
                rows=pool.rows,
                ties=self._ties,
                trajectories=pool.trajectories,
                exclude=None if pool.trajectories is None else self.induction.exclude_window(),
            )
            n, k = draws.index.shape
            batch = pool.observations if pool.rows is None else per_key(pool.observations, lambda v: v[:n])
            if k > 1 and nbytes(batch) * (k - 1) <= SYNTHETIC_CACHE_BYTES:
                synthetic = self._synthetic(pool.observations, batch, draws.index[:, 1:])
        pool.drawn = PoolDraws(self, features, draws, synthetic)
        return pool.drawn


#: Offsets of the tie-breaking, diagnostic, pool and trust generators' seeds from the induction's seed.
TIES_STREAM, DIAGNOSTIC_STREAM, POOL_STREAM, TRUST_STREAM = 7919, 104729, 1299709, 15485863


def _detached(params: Params) -> Params:
    return tuple(p.detach() for p in params) if isinstance(params, tuple) else params.detach()
