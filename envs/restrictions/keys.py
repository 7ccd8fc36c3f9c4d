"""Restrictions of ``Dict`` observations: some keys visible, the rest sampled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gymnasium import spaces

from rlimm.envs.restrictions.arrays import discrete_mask, flat_features
from rlimm.envs.restrictions.base import Restriction
from rlimm.errors import RlimmError


class KeyRestriction(Restriction):
    """A ``Dict`` observation of which the keys ``visible`` are seen (sampled induction).

    :param observation_space: the full ``Dict``.
    :param visible: the visible keys (kept in the space's order).
    """

    exact = False

    def __init__(self, observation_space: spaces.Dict, visible: Sequence[str]) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise RlimmError(f"key restrictions need a Dict observation space, got {observation_space}")
        keys = list(observation_space.spaces)
        visible = [visible] if isinstance(visible, str) else list(visible)
        unknown = [k for k in visible if k not in keys]
        if unknown:
            raise RlimmError(f"unknown observation key(s) {unknown}; keys: {', '.join(keys)}")
        if len(set(visible)) != len(visible):
            raise RlimmError(f"visible keys repeated: {visible}")
        if not visible:
            raise RlimmError("the restriction shows nothing: give at least one visible key")
        if len(visible) == len(keys):
            raise RlimmError("the restriction hides nothing: use IdentityRestriction")
        self.observation_space = observation_space
        self.visible_names = tuple(k for k in keys if k in visible)
        self.hidden_names = tuple(k for k in keys if k not in visible)
        self.visible_space = spaces.Dict({k: observation_space[k] for k in self.visible_names})
        self.discrete_features = discrete_mask(self.visible_space)

    def visible(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        return {k: obs[k] for k in self.visible_names}

    def visible_features(self, obs: Mapping[str, Any]) -> Any:
        """The visible values flattened per observation and concatenated in key order."""
        return flat_features(self.visible_space, obs)

    def combine(self, visible_from: Mapping[str, Any], hidden_from: Mapping[str, Any]) -> dict[str, Any]:
        """Per key: the visible keys from ``visible_from``, the others from ``hidden_from`` (not copied)."""
        keys = self.observation_space.spaces
        return {k: (visible_from[k] if k in self.visible_names else hidden_from[k]) for k in keys}

    def describe(self) -> str:
        hidden = ", ".join(self.hidden_names)
        return f"visible keys {', '.join(self.visible_names)}; hidden {hidden} (sampled)"
