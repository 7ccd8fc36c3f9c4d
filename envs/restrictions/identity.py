"""The identity restriction: nothing hidden, any space (IMM and naive coincide with it).

:class:`IdentityRestriction` works on every space; on ``Discrete(S)`` it builds a
:class:`DiscreteIdentityRestriction`, the partition into ``S`` singleton contexts, so the tabular
teachers find their tables.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlimm.envs.restrictions.arrays import discrete_mask, flat_features, is_tensor
from rlimm.envs.restrictions.base import Restriction
from rlimm.envs.restrictions.factored import PartitionRestriction
from rlimm.errors import RlimmError


class IdentityRestriction(Restriction):
    """Nothing hidden, any space: the teacher sees the whole observation and ``combine(a, b)`` is ``a``.

    Exact with one hidden value. On a ``Discrete`` space the instance is also a
    :class:`PartitionRestriction` in which every observation is its own context (the tables exist).
    """

    exact = True
    n_hidden = 1

    def __new__(cls, *args: Any, **kwargs: Any) -> IdentityRestriction:
        space = args[0] if args else kwargs.get("observation_space")
        if cls is IdentityRestriction and isinstance(space, spaces.Discrete):
            cls = DiscreteIdentityRestriction
        return super().__new__(cls)

    def __init__(self, observation_space: gym.Space) -> None:
        self.observation_space = observation_space
        self.visible_space = observation_space
        self.discrete_features = discrete_mask(observation_space)
        self.visible_names = ("all",)

    def visible(self, obs: Any) -> Any:
        return dict(obs) if isinstance(obs, Mapping) else obs

    def visible_features(self, obs: Any) -> Any:
        return flat_features(self.observation_space, obs)

    def combine(self, visible_from: Any, hidden_from: Any) -> Any:
        return visible_from

    def enumerate_hidden(self, obs: Any) -> tuple[Any, Any]:
        first = next(iter(obs.values())) if isinstance(obs, Mapping) else obs
        if is_tensor(first):
            torch = sys.modules["torch"]
            return obs, torch.ones((len(first), 1), dtype=torch.float32, device=first.device)
        return obs, np.ones((len(first), 1), dtype=np.float32)

    def describe(self) -> str:
        return "everything visible (identity: IMM and naive coincide)"


class DiscreteIdentityRestriction(PartitionRestriction, IdentityRestriction):
    """The identity on ``Discrete(S)``: the partition into ``S`` singleton contexts."""

    def __init__(self, observation_space: spaces.Discrete) -> None:
        if int(observation_space.start) != 0:
            raise RlimmError(f"Discrete observation spaces must start at 0, got {observation_space}")
        PartitionRestriction.__init__(self, np.arange(int(observation_space.n), dtype=np.int64))

    @property
    def visible_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("all",)

    # visible, visible_features, enumerate_hidden, check_space: the partition's (first in the MRO)

    def combine(self, visible_from: Any, hidden_from: Any) -> Any:
        return visible_from

    def describe(self) -> str:
        return IdentityRestriction.describe(self)
