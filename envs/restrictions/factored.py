"""Restrictions of ``Discrete`` observations, the exact (tabular) kind.

- :class:`PartitionRestriction`: ``Discrete(S)`` partitioned into contexts, with a belief over the
  members of each; the tables turn exact induction into indexing plus one batched forward pass:
  ``context_of[obs]`` ``(S,)``, ``members[c, h]`` ``(C, H)``, ``belief[c, h]`` = π(h | c) ``(C, H)``;
- :class:`FactoredRestriction`: ``Discrete(∏ sizes)`` read as named factors (the grid ``obs = y·W + x``,
  Taxi, FrozenLake, CliffWalking), some visible; exact unless the hidden part has more than
  ``max_hidden`` values;
- :func:`discrete_factors`: the named factors of a ``Discrete`` environment (given, declared by the
  environment, or known for its id in :mod:`rlimm.envs.restrictions.known`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlimm.envs.restrictions.arrays import as_index, is_tensor, torch_table
from rlimm.envs.restrictions.base import Restriction
from rlimm.envs.restrictions.known import DISCRETE_FACTORS, env_id, env_label
from rlimm.errors import RlimmError

#: Above this many hidden values per visible part, a factored restriction is induced by sampling.
DEFAULT_MAX_HIDDEN = 64


class PartitionRestriction(Restriction):
    """A restriction given by the context of every observation of a ``Discrete(S)`` space.

    The visible part is the context index; the teacher's input is that index (``Discrete(C)``).

    :param context_of: integer array ``(S,)``: the visible context ``0 … C-1`` of each observation.
        Every context must occur.
    :param belief: ``None`` for a uniform belief over each context's members, or an array ``(S,)``
        of non-negative weights, normalised within each context.
    """

    exact = True

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
        # Members of each context in increasing order; contexts with fewer members are padded with
        # their first member at belief 0 (safe to index with).
        order = np.argsort(context_of, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        position = np.arange(len(context_of)) - starts[context_of[order]]
        members = np.repeat(order[starts][:, None], n_hidden, axis=1).astype(np.int64)
        members[context_of[order], position] = order
        bel = np.zeros((n_contexts, n_hidden))
        bel[context_of[order], position] = weights[order]
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

    @property
    def observation_space(self) -> spaces.Discrete:  # type: ignore[override]
        return spaces.Discrete(self.n_observations)

    @property
    def visible_space(self) -> spaces.Discrete:  # type: ignore[override]
        return spaces.Discrete(self.n_contexts)

    @property
    def discrete_features(self) -> np.ndarray:  # type: ignore[override]
        return np.ones(1, dtype=bool)

    @property
    def visible_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("context",)

    def visible(self, obs: Any) -> Any:
        """Context index of each observation: ``(n,)`` int64 (long for a tensor; 0-d for a scalar)."""
        index = as_index(obs)
        if is_tensor(index):
            return torch_table(self, "context_of", self.context_of, index)[index]
        return self.context_of[index]

    def visible_features(self, obs: Any) -> Any:
        """The context index as one float32 feature ``(n, 1)``."""
        context = self.visible(obs)
        if is_tensor(context):
            return context.reshape(-1, 1).float()
        return context.reshape(-1, 1).astype(np.float32)

    def combine(self, visible_from: Any, hidden_from: Any) -> Any:
        raise NotImplementedError(
            "a partition without named factors has no hidden part to swap; use a FactoredRestriction"
        )

    def enumerate_hidden(self, obs: Any) -> tuple[Any, Any]:
        context = self.visible(obs)
        if is_tensor(context):
            members = torch_table(self, "members", self.members, context)[context]
            belief = torch_table(self, "belief", self.belief.astype(np.float32), context)[context]
            candidates = members.reshape(-1).to(obs.dtype)
        else:
            members, belief = self.members[context], self.belief[context].astype(np.float32)
            candidates = members.reshape(-1).astype(np.asarray(obs).dtype)
        shape = (-1,) + tuple(obs.shape[1:])
        return candidates.reshape(shape), belief

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
        if int(observation_space.n) != self.n_observations or int(observation_space.start) != 0:
            raise RlimmError(
                f"restriction covers {self.n_observations} observations but the environment has "
                f"{observation_space}"
            )

    def describe(self) -> str:
        return f"partition into {self.n_contexts} contexts of up to {self.n_hidden} members"


def _check_factors(factors: Mapping[str, int]) -> dict[str, int]:
    """``factors`` as a plain ``{str: int}``; raise unless it is a non-empty mapping of sizes >= 1."""
    if not isinstance(factors, Mapping) or not factors:
        raise RlimmError(f"factors must be a non-empty mapping name -> size, got {factors!r}")
    checked = {}
    for name, size in factors.items():
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise RlimmError(f"factor '{name}' must have an integer size >= 1, got {size!r}")
        checked[str(name)] = int(size)
    return checked


def discrete_factors(
    env: gym.Env, factors: Mapping[str, int] | None, visible: Sequence[Any]
) -> dict[str, int]:
    """The factors ``{name: size}`` of a ``Discrete`` env, slowest first: ``factors`` if given, else
    those it declares (``observation_factors``), else those known for its id; ``visible`` (the names
    asked for) only goes into the message when there are none."""
    if factors is not None:
        return _check_factors(factors)
    declared = getattr(env.unwrapped, "observation_factors", None)
    if isinstance(declared, Mapping):
        return _check_factors(declared)
    known = DISCRETE_FACTORS.get(env_id(env) or "")
    if known is not None:
        return known(env)
    raise RlimmError(
        f"{type(env.unwrapped).__name__} ({env_label(env)}) declares no observation_factors and rlimm knows "
        f"no factors for it, so a restriction by field names ({list(visible)}) cannot be built for it; "
        f"give them as factors: {{name: size, ...}} (slowest first). Known: {', '.join(DISCRETE_FACTORS)}"
    )


class FactoredRestriction(PartitionRestriction):
    """Observation ``Discrete(∏ sizes)`` read as a row-major tuple of named factors; the restricted
    model sees the factors in ``visible`` and the belief over the rest is uniform.

    The teacher's input is the index of the visible factors' values (row-major in the order given);
    ``visible_features`` are those values; ``combine`` swaps digits with ``//`` and ``%``.

    :param factors: ordered mapping name → size, slowest-varying first (the grid: ``{"y": H, "x": W}``).
    :param visible: names of the visible factors.
    :param max_hidden: above this many hidden values per context the restriction is not ``exact``
        (induction samples hidden parts); the tables are built anyway.
    """

    def __init__(
        self, factors: dict[str, int], visible: Sequence[str], max_hidden: int = DEFAULT_MAX_HIDDEN
    ) -> None:
        factors = _check_factors(factors)
        names = list(factors)
        visible = [v for v in ([visible] if isinstance(visible, str) else list(visible))]
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
        sizes = [factors[n] for n in names]
        coords = np.unravel_index(np.arange(int(np.prod(sizes))), sizes)
        vis_idx = [names.index(v) for v in visible]
        context_of = np.ravel_multi_index(tuple(coords[i] for i in vis_idx), [sizes[i] for i in vis_idx])
        super().__init__(context_of.astype(np.int64))
        self.factors = dict(factors)
        self.visible_fields = visible
        self.max_hidden = int(max_hidden)
        self.exact = self.n_hidden <= self.max_hidden
        strides = np.cumprod([1] + sizes[::-1])[:-1][::-1]  # stride of each factor, row-major
        #: (stride, size) of each visible factor, in the order of ``visible``
        self._visible_digits = [(int(strides[i]), sizes[i]) for i in vis_idx]

    @property
    def visible_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.visible_fields)

    @property
    def hidden_fields(self) -> list[str]:
        return [n for n in self.factors if n not in self.visible_fields]

    @property
    def discrete_features(self) -> np.ndarray:  # type: ignore[override]
        return np.ones(len(self.visible_fields), dtype=bool)

    @classmethod
    def for_env(
        cls,
        env: gym.Env,
        visible: Sequence[str],
        factors: dict[str, int] | None = None,
        max_hidden: int = DEFAULT_MAX_HIDDEN,
    ) -> FactoredRestriction:
        """Build from an environment's factors: ``factors`` if given, else the ``observation_factors``
        (name → size) it declares, else those rlimm knows for its id (:func:`discrete_factors`)."""
        restriction = cls(discrete_factors(env, factors, visible), visible, max_hidden)
        restriction.check_space(env.observation_space)
        return restriction

    def visible_features(self, obs: Any) -> Any:
        """The values of the visible factors, float32 ``(n, len(visible))``."""
        index = as_index(obs).reshape(-1)
        columns = [index // stride % size for stride, size in self._visible_digits]
        if is_tensor(index):
            return sys.modules["torch"].stack(columns, dim=1).float()
        return np.stack(columns, axis=1).astype(np.float32)

    def _visible_part(self, x: Any) -> Any:
        total = 0
        for stride, size in self._visible_digits:
            total = total + x // stride % size * stride
        return total

    def combine(self, visible_from: Any, hidden_from: Any) -> Any:
        """``visible digits of visible_from + (hidden_from − its visible digits)``, elementwise in the
        inputs' dtype (exact for float observations below 2²⁴)."""
        return self._visible_part(visible_from) + (hidden_from - self._visible_part(hidden_from))

    def describe(self) -> str:
        induction = "uniform belief" if self.exact else f"sampled: {self.n_hidden} hidden values"
        return f"visible {'+'.join(self.visible_fields)}, hidden {'+'.join(self.hidden_fields)} ({induction})"
