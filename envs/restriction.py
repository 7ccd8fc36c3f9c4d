"""Restrictions: which part of an observation a restricted model sees.

For a discrete observation space a restriction is a partition of the observations into *contexts*
(the visible part x̄) together with a belief π(h | x̄) over the members of each context (the hidden
part). Everything IMM needs is then three lookup tables, which turn exact induction into tensor
indexing plus one batched forward pass:

- ``context_of[obs]``           the visible context of each observation, shape ``(S,)``;
- ``members[c, h]``              the observation made of context ``c`` and hidden value ``h``,
                                 shape ``(C, H)``;
- ``belief[c, h]``               π(h | c), rows sum to one, shape ``(C, H)``.

:class:`FactoredRestriction` builds them for an observation that is a product of named factors
(the grid: ``obs = y·W + x``, visible ``x``); :class:`PartitionRestriction` for any mapping.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlimm.errors import RlimmError


class PartitionRestriction:
    """A restriction given by the context of every observation of a ``Discrete(S)`` space.

    :param context_of: integer array ``(S,)``: the visible context ``0 … C-1`` of each observation.
        Every context must occur.
    :param belief: ``None`` for a uniform belief over each context's members, or an array ``(S,)``
        of non-negative weights, normalised within each context.
    """

    def __init__(self, context_of: np.ndarray, belief: np.ndarray | None = None) -> None:
        context_of = np.asarray(context_of)
        if context_of.ndim != 1 or not np.issubdtype(context_of.dtype, np.integer):
            raise RlimmError("context_of must be a 1-D integer array, one context per observation")
        n_contexts = int(context_of.max()) + 1
        counts = np.bincount(context_of.clip(min=0), minlength=n_contexts)
        if context_of.min() < 0 or (counts == 0).any():
            raise RlimmError(f"contexts must be 0..{n_contexts - 1} and each must occur")
        weights = np.ones(len(context_of)) if belief is None else np.asarray(belief, float)
        if weights.shape != context_of.shape or (weights < 0).any():
            raise RlimmError("belief must be non-negative weights, one per observation")
        n_hidden = int(counts.max())
        # Contexts with fewer members are padded with their first member at belief 0.
        members = np.zeros((n_contexts, n_hidden), dtype=np.int64)
        bel = np.zeros((n_contexts, n_hidden))
        for c in range(n_contexts):
            obs = np.flatnonzero(context_of == c)
            members[c, :] = obs[0]
            members[c, : len(obs)] = obs
            bel[c, : len(obs)] = weights[obs]
        totals = bel.sum(axis=1, keepdims=True)
        if (totals <= 0).any():
            raise RlimmError("belief gives zero weight to every member of some context")
        self.context_of = context_of.astype(np.int64)
        self.members = members
        self.belief = bel / totals

    @property
    def n_observations(self) -> int:
        return len(self.context_of)

    @property
    def n_contexts(self) -> int:
        return self.members.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.members.shape[1]

    def visible(self, obs: np.ndarray | int) -> np.ndarray:
        """Context index of each observation."""
        return self.context_of[np.asarray(obs, dtype=np.int64)]

    def state_belief(self) -> np.ndarray:
        """π as a ``(C, S)`` matrix: the belief over observations of each context."""
        b = np.zeros((self.n_contexts, self.n_observations))
        rows = np.repeat(np.arange(self.n_contexts), self.n_hidden)
        np.add.at(b, (rows, self.members.reshape(-1)), self.belief.reshape(-1))
        return b

    def check_space(self, observation_space: gym.Space) -> None:
        """Raise unless ``observation_space`` is the ``Discrete(S)`` this restriction partitions."""
        if not isinstance(observation_space, spaces.Discrete):
            raise RlimmError(f"this restriction needs a Discrete observation space, got {observation_space}")
        if int(observation_space.n) != self.n_observations:
            raise RlimmError(
                f"restriction covers {self.n_observations} observations but the environment has "
                f"Discrete({int(observation_space.n)})"
            )

    def describe(self) -> str:
        return f"partition into {self.n_contexts} contexts of up to {self.n_hidden} members"


class FactoredRestriction(PartitionRestriction):
    """Observation ``Discrete(∏ sizes)`` read as a row-major tuple of named factors; the restricted
    model sees the factors in ``visible`` and the belief over the rest is uniform.

    :param factors: ordered mapping name → size, slowest-varying first (the grid: ``{"y": H, "x": W}``).
    :param visible: names of the visible factors.
    """

    def __init__(self, factors: dict[str, int], visible: Sequence[str]) -> None:
        names = list(factors)
        visible = list(visible)
        unknown = [v for v in visible if v not in factors]
        if unknown or not visible:
            raise RlimmError(
                f"restriction names field(s) {unknown or visible} that the observation lacks; "
                f"fields: {', '.join(names)}"
            )
        if len(set(visible)) != len(visible) or len(visible) == len(names):
            raise RlimmError(
                f"visible fields must be distinct and leave something hidden, got {visible} of {names}"
            )
        sizes = [int(factors[n]) for n in names]
        coords = np.unravel_index(np.arange(int(np.prod(sizes))), sizes)
        vis_idx = [names.index(v) for v in visible]
        context_of = np.ravel_multi_index(tuple(coords[i] for i in vis_idx), [sizes[i] for i in vis_idx])
        super().__init__(context_of.astype(np.int64))
        self.factors = dict(factors)
        self.visible_fields = visible

    @classmethod
    def for_env(cls, env: gym.Env, visible: Sequence[str]) -> FactoredRestriction:
        """Build from an environment that declares ``observation_factors`` (name → size)."""
        base = env.unwrapped
        factors = getattr(base, "observation_factors", None)
        if not isinstance(factors, dict):
            raise RlimmError(
                f"{type(base).__name__} declares no observation_factors, so a restriction by field "
                f"names ({list(visible)}) cannot be built for it"
            )
        restriction = cls(factors, visible)
        restriction.check_space(env.observation_space)
        return restriction

    def describe(self) -> str:
        hidden = [n for n in self.factors if n not in self.visible_fields]
        return f"visible {'+'.join(self.visible_fields)}, hidden {'+'.join(hidden)} (uniform belief)"
