"""Restrictions of 1-D ``Box`` observations: some coordinates visible, the rest sampled.

:class:`CoordinateRestriction` takes coordinate indices; names (CartPole's ``x, x_dot, ...``) and the RL
Zoo's ``novel`` view (no velocities) are resolved to indices by
:func:`rlimm.envs.restrictions.names.restriction_for`, from :mod:`rlimm.envs.restrictions.known`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from rlimm.envs.restrictions.arrays import is_tensor, torch_table
from rlimm.envs.restrictions.base import Restriction
from rlimm.errors import RlimmError


class CoordinateRestriction(Restriction):
    """A 1-D ``Box`` observation of which the coordinates ``visible`` are seen (sampled induction).

    :param observation_space: the full ``Box``, 1-D.
    :param visible: indices of the visible coordinates (kept in increasing order).
    :param names: names of all coordinates, for messages (default their indices).
    """

    exact = False

    def __init__(
        self, observation_space: spaces.Box, visible: Sequence[int], names: Sequence[str] | None = None
    ) -> None:
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise RlimmError(
                f"coordinate restrictions need a 1-D Box observation space, got {observation_space}"
            )
        dim = observation_space.shape[0]
        names = tuple(str(n) for n in names) if names is not None else tuple(str(i) for i in range(dim))
        if len(names) != dim:
            raise RlimmError(f"{len(names)} coordinate names given for {dim} coordinates")
        visible = list(visible)
        bad = [
            i
            for i in visible
            if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < dim
        ]
        if bad:
            raise RlimmError(f"visible coordinate(s) {bad} out of range: indices 0..{dim - 1} accepted")
        if len(set(visible)) != len(visible):
            raise RlimmError(f"visible coordinates repeated: {visible}")
        if not visible:
            raise RlimmError("the restriction shows nothing: give at least one visible coordinate")
        if len(visible) == dim:
            raise RlimmError("the restriction hides nothing: use IdentityRestriction")
        self.observation_space = observation_space
        self.indices = np.array(sorted(int(i) for i in visible), dtype=np.int64)
        self.mask = np.zeros(dim, dtype=bool)
        self.mask[self.indices] = True
        self.names = names
        self.visible_names = tuple(names[i] for i in self.indices)
        self.hidden_names = tuple(n for i, n in enumerate(names) if not self.mask[i])
        self.visible_space = spaces.Box(
            low=observation_space.low[self.indices],
            high=observation_space.high[self.indices],
            dtype=observation_space.dtype,
        )
        self.discrete_features = np.zeros(len(self.indices), dtype=bool)

    def visible(self, obs: Any) -> Any:
        """The visible coordinates, ``(..., v)`` (works on one observation or a batch)."""
        if is_tensor(obs):
            return obs[..., torch_table(self, "indices", self.indices, obs)]
        return np.asarray(obs)[..., self.indices]

    def visible_features(self, obs: Any) -> Any:
        visible = self.visible(obs)
        return visible.float() if is_tensor(visible) else visible.astype(np.float32)

    def combine(self, visible_from: Any, hidden_from: Any) -> Any:
        if is_tensor(visible_from):
            mask = torch_table(self, "mask", self.mask, visible_from)
            return sys.modules["torch"].where(mask, visible_from, hidden_from)
        return np.where(self.mask, visible_from, hidden_from)

    def describe(self) -> str:
        return f"visible {', '.join(self.visible_names)}; hidden {', '.join(self.hidden_names)} (sampled)"
