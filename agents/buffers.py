"""A rollout buffer that also keeps the teacher's view of each observation.

The visible context of every observation is computed when the observation is added — at collection
time, from the observation the agent acted on — and stored next to it, so that the regulariser never
has to reconstruct what the teacher saw from a (possibly transformed) stored observation. Restrictions
are defined on ``Discrete`` observation spaces, which SB3's ``VecNormalize`` refuses to normalise, so
the observation handed to ``add`` is the raw one.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.vec_env import VecNormalize


class ContextRolloutBufferSamples(NamedTuple):
    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    #: visible context (restriction index) of each observation, ``long``
    contexts: th.Tensor


class ContextRolloutBuffer(RolloutBuffer):
    """:class:`RolloutBuffer` plus the visible context of each stored observation.

    :param context_of: ``(S,)`` table from a ``Discrete(S)`` observation to its visible context
        (``restriction.context_of``).
    Other parameters are those of :class:`RolloutBuffer`.
    """

    contexts: np.ndarray

    def __init__(self, *args: Any, context_of: np.ndarray, **kwargs: Any) -> None:
        self.context_of = np.asarray(context_of, dtype=np.int64)
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        self.contexts = np.zeros((self.buffer_size, self.n_envs), dtype=np.int64)
        super().reset()

    def add(self, obs: np.ndarray, *args: Any, **kwargs: Any) -> None:
        self.contexts[self.pos] = self.context_of[np.asarray(obs, dtype=np.int64).reshape(self.n_envs)]
        super().add(obs, *args, **kwargs)

    def get(self, batch_size: int | None = None) -> Generator[ContextRolloutBufferSamples, None, None]:  # type: ignore[override]
        if not self.generator_ready:
            self.contexts = self.swap_and_flatten(self.contexts)
        yield from super().get(batch_size)  # type: ignore[misc]

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> ContextRolloutBufferSamples:
        samples = super()._get_samples(batch_inds, env)
        return ContextRolloutBufferSamples(
            *samples, contexts=self.to_torch(self.contexts[batch_inds].flatten())
        )
