"""Rollout buffers that also keep the teacher's view of each observation.

What the teacher sees comes from the *raw* observation the agent acted on, kept at collection time,
so that the learner's ``VecNormalize`` never changes what the teacher sees and the regulariser never
reconstructs it from a transformed observation. Each buffer stores the columns a ``view`` function
returns for a batch of raw observations (``contexts``: the visible context of an exact restriction;
``teacher_probs``: the teacher's action probabilities), and hands them out with every sample,
together with the samples' row ``indices`` in the flattened rollout (sampled induction draws hidden
parts from the rollout).

The teacher is frozen, so its view of a rollout is computed once, in one batch, when the rollout is
first read (:meth:`TeacherViewMixin.get`), not one environment step at a time: a neural teacher's
forward per step cost as much as the policy's own. Only when observations are transformed
(``VecNormalize``) does the buffer keep a copy of the raw ones; otherwise they are the stored ones.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

#: ``view(raw_observations) -> {column: (n, *shape) array}`` for a batch of n raw observations.
View = Callable[[Any], dict[str, np.ndarray]]

#: Rows of the rollout the view is computed on at once (bounds the teacher's batch).
VIEW_CHUNK = 4096


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
    if isinstance(values, dict):
        return {key: v.reshape(n, *v.shape[2:]) for key, v in values.items()}
    return values.reshape(n, *values.shape[2:])


def slice_rows(values: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop``, per key for Dict observations."""
    if isinstance(values, dict):
        return {key: v[start:stop] for key, v in values.items()}
    return values[start:stop]


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
    #: the teacher's action probabilities at each observation (Discrete actions), else ``None``
    teacher_probs: th.Tensor | None
    #: the teacher's Gaussian at each observation, ``(n, 2d)``: mean then log-std (Box actions), else ``None``
    teacher_gaussian: th.Tensor | None = None


class TeacherViewMixin:
    """The columns of the teacher's view, added to an SB3 rollout buffer (put it first in the bases).

    :param view: computes the columns from a batch of raw observations.
    :param columns: name → ``(shape, dtype)`` of each column the view returns.
    :param raw_observations: called once per added step; returns the raw version of the observation
        being added (the ``VecNormalize`` original), or ``None`` when observations are not transformed.
    """

    columns: dict[str, tuple[tuple[int, ...], Any]]

    def __init__(
        self,
        *args: Any,
        view: View,
        columns: dict[str, tuple[tuple[int, ...], Any]],
        raw_observations: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.view = view
        self.columns = dict(columns)
        self.raw_observations = raw_observations
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        self._pool: th.Tensor | TensorDict | None = None
        self.raw_data: Any = None  # the raw observations, kept only when they differ from the stored
        self.view_data: dict[str, np.ndarray] = {}
        super().reset()  # type: ignore[misc]

    def add(self, obs: Any, *args: Any, **kwargs: Any) -> None:
        raw = self.raw_observations() if self.raw_observations is not None else None
        if raw is not None:
            self._keep_raw(raw)
        super().add(obs, *args, **kwargs)  # type: ignore[misc]

    def _keep_raw(self, raw: Any) -> None:
        size, n_envs, pos = self.buffer_size, self.n_envs, self.pos  # type: ignore[attr-defined]
        items = raw.items() if isinstance(raw, dict) else [(None, raw)]
        if self.raw_data is None:
            self.raw_data = {
                key: np.zeros((size, n_envs, *np.shape(v)[1:]), dtype=np.asarray(v).dtype) for key, v in items
            }
        for key, v in items:
            self.raw_data[key][pos] = np.array(v)

    def _compute_view(self) -> None:
        """The columns for every step of the rollout, ``(buffer_size, n_envs, *shape)``, in one batch
        per :data:`VIEW_CHUNK` rows."""
        size, n_envs = self.buffer_size, self.n_envs  # type: ignore[attr-defined]
        n = size * n_envs
        if self.raw_data is not None:
            raw = self.raw_data[None] if None in self.raw_data else self.raw_data
            rows = flat_rows(raw, n)
        else:
            rows = as_env_observations(self.observation_space, flat_rows(self.observations, n))  # type: ignore[attr-defined]
        self.view_data = {
            name: np.zeros((n, *shape), dtype=dtype) for name, (shape, dtype) in self.columns.items()
        }
        for start in range(0, n, VIEW_CHUNK):
            stop = min(start + VIEW_CHUNK, n)
            for name, values in self.view(slice_rows(rows, start, stop)).items():
                self.view_data[name][start:stop] = np.asarray(values).reshape(
                    stop - start, *self.columns[name][0]
                )
        self.view_data = {name: v.reshape(size, n_envs, *v.shape[1:]) for name, v in self.view_data.items()}

    def get(self, batch_size: int | None = None) -> Generator[TeacherRolloutBufferSamples, None, None]:  # type: ignore[override]
        if not self.generator_ready:  # type: ignore[attr-defined]
            self._compute_view()  # before SB3 flattens the observations: rows in (step, env) order
            for name in self.view_data:
                self.view_data[name] = self.swap_and_flatten(self.view_data[name])  # type: ignore[attr-defined]
        yield from super().get(batch_size)  # type: ignore[misc]

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> TeacherRolloutBufferSamples:
        samples = super()._get_samples(batch_inds, env)  # type: ignore[misc]
        extra = {name: self.to_torch(self.view_data[name][batch_inds]) for name in self.view_data}  # type: ignore[attr-defined]
        contexts = extra.get("contexts")
        return TeacherRolloutBufferSamples(
            *samples,
            indices=self.to_torch(batch_inds).long(),  # type: ignore[attr-defined]
            contexts=None if contexts is None else contexts.reshape(-1),
            teacher_probs=extra.get("teacher_probs"),
            teacher_gaussian=extra.get("teacher_gaussian"),
        )

    def rollout_observations(self) -> th.Tensor | TensorDict:
        """Every observation of the (flattened) rollout, as tensors: the pool sampled induction draws
        hidden parts from. Only valid once :meth:`get` has flattened the buffer; converted once per
        rollout, not once per minibatch."""
        if self._pool is None:
            obs = self.observations  # type: ignore[attr-defined]
            if isinstance(obs, dict):
                self._pool = {k: self.to_torch(v) for k, v in obs.items()}  # type: ignore[attr-defined]
            else:
                self._pool = self.to_torch(obs)  # type: ignore[attr-defined]
        return self._pool


class TeacherRolloutBuffer(TeacherViewMixin, RolloutBuffer):
    """:class:`RolloutBuffer` plus the teacher's view of each stored observation."""


class DictTeacherRolloutBuffer(TeacherViewMixin, DictRolloutBuffer):
    """:class:`DictRolloutBuffer` (``Dict`` observations) plus the teacher's view of each observation."""
