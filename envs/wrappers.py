"""Partial-observation wrappers: the environment as the restricted model sees it."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlimm.envs.restrictions import Restriction


def _batch_of_one(space: gym.Space, obs: Any) -> Any:
    if isinstance(space, spaces.Dict):
        return {k: _batch_of_one(sub, obs[k]) for k, sub in space.spaces.items()}
    return np.asarray(obs)[None]


def _unbatch(space: gym.Space, batch: Any) -> Any:
    if isinstance(space, spaces.Dict):
        return {k: _unbatch(sub, batch[k]) for k, sub in space.spaces.items()}
    if isinstance(space, spaces.Discrete):
        return int(np.asarray(batch).reshape(-1)[0])
    return np.asarray(batch[0], dtype=space.dtype)


class VisibleObservation(gym.ObservationWrapper):
    """The environment as the restricted model sees it: ``observation_space`` is the restriction's
    ``visible_space`` and each observation is its visible part (``restriction.visible`` of a batch of
    one): a context index for ``Discrete`` partitions, the visible coordinates of a ``Box``, the visible
    keys of a ``Dict``.

    A policy trained on this wrapper (with any SB3 algorithm) is a restricted model: it can serve as a
    teacher for the full environment through the same restriction.
    """

    def __init__(self, env: gym.Env, restriction: Restriction) -> None:
        super().__init__(env)
        restriction.check_space(env.observation_space)
        self.restriction = restriction
        self.observation_space = restriction.visible_space

    def observation(self, observation: Any) -> Any:
        full = _batch_of_one(self.env.observation_space, observation)
        return _unbatch(self.observation_space, self.restriction.visible(full))
