"""``train/hidden_left`` of on-policy runs without sampled induction of their own (``none``, ``naive``):
the share of the hidden part the visible part leaves open on the rollout's states
(:func:`~rlimm.agents.imm.draws.hidden_spread` among each state's knn neighbours, drawn as IMM's
``knn`` would draw them: same k, same exclusion of the state's own episode). IMM with sampled induction
logs the same measure from its own pool (:mod:`rlimm.agents.imm.regularizer`). Nothing here touches
SB3's random streams or the buffer."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer

from rlimm.agents.imm.draws import Trajectories, hidden_spread, knn_all
from rlimm.agents.imm.observations import hidden_features, per_key
from rlimm.agents.imm.settings import InductionSettings


def rollout_hidden_left(
    buffer: RolloutBuffer, restriction: Any, induction: InductionSettings, generator: th.Generator
) -> float:
    """The hidden part left on ``buffer``'s rollout, before :meth:`RolloutBuffer.get` flattens it (rows
    in (step, env) order, each env's episodes numbered from its ``episode_starts``)."""
    size, n_envs = buffer.buffer_size, buffer.n_envs
    episode = np.cumsum(buffer.episode_starts.astype(np.int64), axis=0) * n_envs + np.arange(n_envs)[None, :]
    step = np.broadcast_to(np.arange(size, dtype=np.int64)[:, None], (size, n_envs)).copy()
    observations = per_key(
        buffer.observations,
        lambda v: th.as_tensor(np.asarray(v, np.float32).reshape(size * n_envs, *v.shape[2:])),
    )
    trajectories = Trajectories(th.as_tensor(episode.reshape(-1)), th.as_tensor(step.reshape(-1)))
    return hidden_left_of(restriction, observations, trajectories, induction, generator)


def hidden_left_of(
    restriction: Any,
    observations: Any,
    trajectories: Trajectories,
    induction: InductionSettings,
    generator: th.Generator,
) -> float:
    """The hidden part left on ``observations`` (tensors, one row per state, with each row's episode
    and step): each row's ``knn`` neighbours in visible space, with the induction's k and exclusion."""
    draws = knn_all(
        restriction.visible_features(observations),
        induction.k,
        th.as_tensor(restriction.discrete_features, dtype=th.bool, device=trajectories.episode.device),
        ties=generator,
        trajectories=trajectories,
        exclude=induction.exclude_window(),
    )
    return hidden_spread(hidden_features(restriction, observations), draws.index)
