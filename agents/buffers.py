"""Rollout buffers that also keep the teacher's view of each observation.

What the teacher sees is computed when an observation is added — at collection time, from the *raw*
observation the agent acted on — and stored next to it, so that the learner's ``VecNormalize`` never
changes what the teacher sees and the regulariser never reconstructs it from a transformed
observation. Each buffer stores the columns a ``view`` function returns for a batch of raw
observations (``contexts``: the visible context of an exact restriction; ``teacher_probs``: the
teacher's action probabilities), and hands them out with every sample, together with the samples'
row ``indices`` in the flattened rollout (sampled induction draws hidden parts from the rollout).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

#: ``view(raw_observations) -> {column: (n_envs, *shape) array}``, with the columns' shapes and dtypes.
View = Callable[[Any], dict[str, np.ndarray]]


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
    #: the teacher's action probabilities at each observation, else ``None``
    teacher_probs: th.Tensor | None


class TeacherViewMixin:
    """The columns of the teacher's view, added to an SB3 rollout buffer (put it first in the bases).

    :param view: computes the columns from a batch of raw observations (one per environment).
    :param columns: name → ``(shape, dtype)`` of each column the view returns.
    :param raw_observations: returns the raw version of the observation being added (the
        ``VecNormalize`` original), or ``None`` when observations are not transformed.
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
        self.view_data = {
            name: np.zeros((self.buffer_size, self.n_envs, *shape), dtype=dtype)  # type: ignore[attr-defined]
            for name, (shape, dtype) in self.columns.items()
        }
        super().reset()  # type: ignore[misc]

    def add(self, obs: Any, *args: Any, **kwargs: Any) -> None:
        raw = self.raw_observations() if self.raw_observations is not None else None
        for name, values in self.view(obs if raw is None else raw).items():
            self.view_data[name][self.pos] = values  # type: ignore[attr-defined]
        super().add(obs, *args, **kwargs)  # type: ignore[misc]

    def get(self, batch_size: int | None = None) -> Generator[TeacherRolloutBufferSamples, None, None]:  # type: ignore[override]
        if not self.generator_ready:  # type: ignore[attr-defined]
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
