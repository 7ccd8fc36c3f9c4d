"""Rollout buffers that also keep the teacher's view of each observation.

What the teacher sees comes from the *raw* observation the agent acted on, so that the learner's
``VecNormalize`` never changes what the teacher sees and the regulariser never reconstructs it from a
transformed observation. The buffer is given what it stores and never calls the model:

- during collection, the algorithm hands it the raw observation of each step (:meth:`add_raw`, only
  under ``VecNormalize``; otherwise the raw observations are the stored ones);
- once the rollout is collected, the algorithm computes the teacher's view of the whole rollout
  (:meth:`raw_rollout` in, :meth:`store_teacher_view` back: ``contexts``, the visible context of an
  exact restriction, and ``teacher_params``, the teacher's distribution —
  :meth:`rlimm.agents.common.on_policy.OnPolicyRegularizedMixin.collect_rollouts`);
- every sample carries those columns and its row ``indices`` in the flattened rollout (sampled
  induction draws hidden parts from the rollout);
- with the view, the buffer numbers each row's episode and step from SB3's ``episode_starts``
  (:meth:`rollout_trajectories`), counting on across rollouts, so that sampled induction can leave
  out neighbours from a state's own episode and pool several rollouts.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from rlimm.agents.imm.observations import per_key

#: Teacher-view columns by name (``contexts``, ``teacher_params``), ``(n, *shape)`` arrays.
ViewColumns = dict[str, np.ndarray]
#: The columns every sample carries (``episode`` and ``step`` are read for the whole rollout only).
VIEW_COLUMNS = ("contexts", "teacher_params")


def as_env_observations(space: spaces.Space, stored: Any) -> Any:
    """Stored observations ``(n, *obs_shape)`` (SB3 keeps them as float32, Discrete as ``(n, 1)``) back
    in the form the environment returns them, so restrictions see what they see at collection."""
    if isinstance(space, spaces.Dict):
        return {key: as_env_observations(sub, stored[key]) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Discrete):
        return stored.reshape(-1).astype(np.int64)
    if isinstance(space, (spaces.MultiDiscrete, spaces.MultiBinary)):
        return stored.astype(np.int64)
    return stored.astype(space.dtype, copy=False) if space.dtype is not None else stored


def flat_rows(values: Any, n: int) -> Any:
    """``(r, n_envs, *shape)`` → ``(r · n_envs, *shape)``, per key for Dict observations."""
    return per_key(values, lambda v: v.reshape(n, *v.shape[2:]))


class TeacherRolloutBufferSamples(NamedTuple):
    observations: th.Tensor | TensorDict
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    #: the sampled rows' positions in the flattened rollout, ``long``
    indices: th.Tensor
    #: visible context of each observation (exact restrictions), ``long``, else ``None``
    contexts: th.Tensor | None
    #: the teacher's distribution at each observation ``(n, n_params)``: probabilities, or mean ‖
    #: log-std (Gaussian teachers); ``None`` without a teacher
    teacher_params: th.Tensor | None


class TeacherViewMixin(RolloutBuffer):
    """The teacher's view, added to an SB3 rollout buffer (put it first in the bases).

    The algorithm gives the buffer the raw observations (:meth:`add_raw`) and the view
    (:meth:`store_teacher_view`); the buffer hands the view out with every sample.
    """

    observations: Any  # an array, or a dict of arrays (Dict observations)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Episodes started and steps collected before the current rollout, per env: episode ids and
        # steps run on across rollouts (an episode that continues keeps its id).
        self._episodes_before = np.zeros(self.n_envs, dtype=np.int64)
        self._steps_before = 0

    def reset(self) -> None:
        self.raw_data: dict[str | None, np.ndarray] | None = None  # kept only when they differ
        self.view_data: ViewColumns = {}
        super().reset()

    def add_raw(self, raw: Any) -> None:
        """Keep the raw version (``VecNormalize``'s original) of the observation the next :meth:`add`
        stores: call it before that ``add``, at the same position."""
        size, n_envs, pos = self.buffer_size, self.n_envs, self.pos
        items = raw.items() if isinstance(raw, dict) else [(None, raw)]
        if self.raw_data is None:
            self.raw_data = {
                key: np.zeros((size, n_envs, *np.shape(v)[1:]), dtype=np.asarray(v).dtype) for key, v in items
            }
        for key, v in items:
            self.raw_data[key][pos] = np.array(v)

    def raw_rollout(self) -> Any:
        """Every raw observation of the collected rollout, ``(buffer_size · n_envs, …)`` in (step, env)
        order, in the environment's form: the ones given to :meth:`add_raw`, else the stored ones."""
        n = self.buffer_size * self.n_envs
        if self.raw_data is not None:
            raw = self.raw_data[None] if None in self.raw_data else self.raw_data
            return flat_rows(raw, n)
        return as_env_observations(self.observation_space, flat_rows(self.observations, n))

    def raw_rows(self) -> Any:
        """The raw observations given to :meth:`add_raw` (``VecNormalize``'s originals) in
        :meth:`rollout_observations`' row order (env by env, as ``get`` flattens), or ``None`` when none
        were given."""
        if self.raw_data is None:
            return None
        n = self.buffer_size * self.n_envs
        rows = {key: v.swapaxes(0, 1).reshape(n, *v.shape[2:]) for key, v in self.raw_data.items()}
        return rows[None] if None in rows else rows

    def store_teacher_view(self, columns: ViewColumns) -> None:
        """The teacher's view of the rollout, one ``(buffer_size · n_envs, *shape)`` array per column
        in :meth:`raw_rollout`'s row order; flattened with the rest of the buffer by :meth:`get`."""
        size, n_envs = self.buffer_size, self.n_envs
        self.view_data = {name: v.reshape(size, n_envs, *v.shape[1:]) for name, v in columns.items()}
        # Each row's episode (a running count per env, made unique across envs) and step.
        started = self._episodes_before[None, :] + np.cumsum(self.episode_starts.astype(np.int64), axis=0)
        self.view_data["episode"] = started * n_envs + np.arange(n_envs)[None, :]
        self.view_data["step"] = np.broadcast_to(
            self._steps_before + np.arange(size, dtype=np.int64)[:, None], (size, n_envs)
        ).copy()
        self._episodes_before = started[-1]
        self._steps_before += size

    def get(self, batch_size: int | None = None) -> Generator[TeacherRolloutBufferSamples, None, None]:  # type: ignore[override]
        if not self.generator_ready:  # flattened as SB3 flattens its own arrays, (env, step) order
            self.view_data = {name: self.swap_and_flatten(v) for name, v in self.view_data.items()}
        yield from super().get(batch_size)  # type: ignore[misc]

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> TeacherRolloutBufferSamples:
        samples = super()._get_samples(batch_inds, env)
        extra = {
            name: self.to_torch(self.view_data[name][batch_inds])
            for name in VIEW_COLUMNS
            if name in self.view_data
        }
        contexts = extra.get("contexts")
        return TeacherRolloutBufferSamples(
            *samples,
            indices=self.to_torch(batch_inds).long(),
            contexts=None if contexts is None else contexts.reshape(-1),
            teacher_params=extra.get("teacher_params"),
        )

    def _flat(self, values: np.ndarray) -> np.ndarray:
        """``values`` in the row order of :meth:`get` (env by env), whether or not it has flattened them."""
        return values if self.generator_ready else self.swap_and_flatten(values)

    def rollout_trajectories(self) -> tuple[th.Tensor, th.Tensor]:
        """Each row's episode id and step, ``(n,)`` long tensors in :meth:`rollout_observations`' order
        (unique across the envs and the rollouts of this buffer), once a teacher's view is stored."""
        return (
            self.to_torch(self._flat(self.view_data["episode"])).long().reshape(-1),
            self.to_torch(self._flat(self.view_data["step"])).long().reshape(-1),
        )

    def rollout_observations(self) -> th.Tensor | TensorDict:
        """Every observation of the rollout as tensors, in the row order of :meth:`get` (the rows its
        samples' ``indices`` refer to): the pool sampled induction draws hidden parts from."""
        obs = self.observations
        if isinstance(obs, dict):
            return {k: self.to_torch(self._flat(v)) for k, v in obs.items()}
        return self.to_torch(self._flat(obs))


class TeacherRolloutBuffer(TeacherViewMixin):
    """:class:`RolloutBuffer` plus the teacher's view of each stored observation."""


class DictTeacherRolloutBuffer(TeacherViewMixin, DictRolloutBuffer):
    """:class:`DictRolloutBuffer` (``Dict`` observations) plus the teacher's view of each observation."""
