"""Partial-observation wrappers: the environment as the restricted model sees it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlimm.envs.restriction import PartitionRestriction


class VisibleObservation(gym.ObservationWrapper):
    """Replace each observation by its visible context, ``Discrete(C)``.

    A policy trained on this wrapper is a restricted model: it can serve as a teacher for the full
    environment through the same restriction.
    """

    def __init__(self, env: gym.Env, restriction: PartitionRestriction) -> None:
        super().__init__(env)
        restriction.check_space(env.observation_space)
        self.restriction = restriction
        self.observation_space = spaces.Discrete(restriction.n_contexts)

    def observation(self, observation: int) -> int:
        return int(self.restriction.visible(np.int64(observation)))
