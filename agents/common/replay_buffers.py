"""Replay buffers that also keep the teacher's view of each transition (off-policy algorithms: SAC).

SB3's off-policy algorithms store the *unnormalised* observation in the replay buffer (``VecNormalize``'s
original, ``_last_original_obs``) and normalise only when sampling. The teacher's view is therefore
computed from the stored observation itself, the raw one the agent acted on: the learner's
``VecNormalize`` never changes what the teacher sees, and nothing is reconstructed from a normalised
observation.

Each transition's columns (``contexts``: the visible context of an exact restriction;
``teacher_params``: the teacher's distribution, probabilities or mean ‖ log-std) are stored with it, in
arrays shaped like SB3's ``(buffer_size, n_envs, …)``. The buffer never calls the model: it marks the
transitions added since their view was stored (:meth:`~TeacherReplayViewMixin.pending_rows`), and the
algorithm computes their view in one batch before its update samples
(:meth:`rlimm.agents.sac.SAC.train`) — the same numbers as one teacher call per environment step, at
the cost of one call per update.

Samples are :class:`TeacherReplayBufferSamples`: SB3's replay samples plus the columns of the sampled
transitions, ``indices`` (each sample's row in the *minibatch*, ``arange(batch_size)``: SAC's sampled
induction draws hidden parts from the minibatch) and ``env_indices`` (the environment each sample was
drawn from). The environment of each sample is drawn here, by the same NumPy call SB3 makes first in
``_get_samples`` (so the random stream and the samples are SB3's, number for number), and kept with the
samples.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples, TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from rlimm.agents.common.rollout_buffers import ViewColumns, as_env_observations, flat_rows
from rlimm.agents.imm.observations import per_key
from rlimm.errors import RlimmError


class TeacherReplayBufferSamples(NamedTuple):
    """SB3's ``ReplayBufferSamples`` (or ``DictReplayBufferSamples``) plus the teacher's view."""

    observations: th.Tensor | TensorDict
    actions: th.Tensor
    next_observations: th.Tensor | TensorDict
    dones: th.Tensor
    rewards: th.Tensor
    #: n-step replay: the discount of the bootstrapped value, else ``None`` (as SB3's)
    discounts: th.Tensor | None = None
    #: each sample's row in the minibatch, ``arange(batch_size)``, ``long``: the minibatch is the pool
    #: of sampled induction
    indices: th.Tensor | None = None
    #: the environment each sample comes from, ``(batch_size,)`` int64 (numpy)
    env_indices: np.ndarray | None = None
    #: each sample's position in the buffer, ``(batch_size,)`` (numpy)
    positions: np.ndarray | None = None
    #: visible context of each observation (exact restrictions), ``long``, else ``None``
    contexts: th.Tensor | None = None
    #: the teacher's distribution at each observation, ``(n, n_params)``, else ``None``
    teacher_params: th.Tensor | None = None


class TeacherReplayViewMixin(ReplayBuffer):
    """The teacher's view, added to an SB3 replay buffer (put it first in the bases).

    :param columns: name → ``(shape, dtype)`` of each column of the view (``contexts``,
        ``teacher_params``).
    """

    observations: Any  # an array, or a dict of arrays (Dict observations)

    def __init__(self, *args: Any, columns: dict[str, tuple[tuple[int, ...], Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_columns(columns)

    def set_columns(self, columns: dict[str, tuple[tuple[int, ...], Any]]) -> None:
        """Set the view's columns (after construction, or for a loaded buffer) and mark every stored
        transition as pending: their view is stored again before the next sample."""
        self.columns = dict(columns)
        size, n_envs = self.buffer_size, self.n_envs
        self.view_data: dict[str, np.ndarray] = {
            name: np.zeros((size, n_envs, *shape), dtype=dtype)
            for name, (shape, dtype) in self.columns.items()
        }
        self._pending = np.zeros(size, dtype=bool)
        stored = size if self.full else self.pos
        self._pending[:stored] = True
        # Each transition's episode (a running count per env, unique across envs) and step, recorded
        # as it is added. Transitions stored before (a loaded buffer) get ids of their own: unrelated.
        self.episode_data = -1 - np.arange(size * n_envs, dtype=np.int64).reshape(size, n_envs)
        self.step_data = np.zeros((size, n_envs), dtype=np.int64)
        self._episode_now = np.zeros(n_envs, dtype=np.int64)
        self._steps_now = 0

    def reset(self) -> None:
        super().reset()
        self._pending[:] = False

    def add(self, obs: Any, *args: Any, **kwargs: Any) -> None:
        pos = self.pos
        super().add(obs, *args, **kwargs)
        self._pending[pos] = True
        self.episode_data[pos] = self._episode_now * self.n_envs + np.arange(self.n_envs)
        self.step_data[pos] = self._steps_now
        done = np.asarray(args[3] if len(args) > 3 else kwargs["done"]).reshape(-1)
        self._episode_now = self._episode_now + done.astype(np.int64)
        self._steps_now += 1

    def trajectories_at(self, positions: np.ndarray, env_indices: np.ndarray) -> tuple[th.Tensor, th.Tensor]:
        """The episode ids and steps of the transitions at ``(positions, env_indices)``, long tensors."""
        return (
            self.to_torch(self.episode_data[positions, env_indices]).long(),
            self.to_torch(self.step_data[positions, env_indices]).long(),
        )

    def random_rows(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` stored transitions drawn uniformly with ``rng`` (not numpy's global generator, which
        SB3's own sampling uses): their positions and environments."""
        upper = self.buffer_size if self.full else self.pos
        return rng.integers(0, upper, size=n), rng.integers(0, self.n_envs, size=n)

    def observations_at(
        self, positions: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None = None
    ) -> th.Tensor | TensorDict:
        """The observations at ``(positions, env_indices)`` as the minibatches give them (normalised by
        ``env``'s ``VecNormalize``), as tensors."""
        if isinstance(self.observations, dict):
            obs = {key: v[positions, env_indices] for key, v in self.observations.items()}
            return {key: self.to_torch(v) for key, v in self._normalize_obs(obs, env).items()}
        return self.to_torch(self._normalize_obs(self.observations[positions, env_indices], env))

    def pending_rows(self) -> np.ndarray:
        """Buffer positions whose view is not stored yet (each holds ``n_envs`` transitions)."""
        return np.flatnonzero(self._pending)

    def raw_observations(self, rows: np.ndarray) -> Any:
        """The stored (raw) observations at buffer positions ``rows``, ``(len(rows) · n_envs, …)`` in
        (position, env) order, in the environment's form."""
        stored = flat_rows(per_key(self.observations, lambda v: v[rows]), rows.size * self.n_envs)
        return as_env_observations(self.observation_space, stored)

    def store_teacher_view(self, rows: np.ndarray, columns: ViewColumns) -> None:
        """The view of the transitions at positions ``rows`` (arrays in :meth:`raw_observations`'s row
        order); they are no longer pending."""
        for name, column in columns.items():
            self.view_data[name][rows] = column.reshape(rows.size, self.n_envs, *column.shape[1:])
        self._pending[rows] = False

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> TeacherReplayBufferSamples:
        if self.columns and self._pending.any():
            raise RlimmError(
                "the replay buffer holds transitions without the teacher's view: the algorithm stores it "
                "before sampling (SAC.train)"
            )
        # SB3's first draw of ``_get_samples`` (ReplayBuffer, DictReplayBuffer and NStepReplayBuffer
        # alike), made here so that the environment of each sample is known.
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        samples = self._samples_at(batch_inds, env_indices, env)
        extra = {
            name: self.to_torch(column[batch_inds, env_indices]) for name, column in self.view_data.items()
        }
        contexts = extra.get("contexts")
        return TeacherReplayBufferSamples(
            *samples,
            indices=th.arange(len(batch_inds), device=self.device),
            env_indices=env_indices,
            positions=batch_inds,
            contexts=None if contexts is None else contexts.long().reshape(-1),
            teacher_params=extra.get("teacher_params"),
        )

    def _samples_at(self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None) -> Any:
        """SB3's ``_get_samples`` of the base buffer after its environment draw, at ``env_indices``."""
        raise NotImplementedError


class TeacherReplayBuffer(TeacherReplayViewMixin):
    """:class:`ReplayBuffer` plus the teacher's view of each stored observation."""

    def _samples_at(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None
    ) -> ReplayBufferSamples:
        # SB3 2.9's ReplayBuffer._get_samples, after its draw of env_indices.
        if self.optimize_memory_usage:
            next_obs = self._normalize_obs(
                self.observations[(batch_inds + 1) % self.buffer_size, env_indices, :], env
            )
        else:
            next_obs = self._normalize_obs(self.next_observations[batch_inds, env_indices, :], env)

        data = (
            self._normalize_obs(self.observations[batch_inds, env_indices, :], env),
            self.actions[batch_inds, env_indices, :],
            next_obs,
            # Only use dones that are not due to timeouts
            # deactivated by default (timeouts is initialized as an array of False)
            (self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])).reshape(
                -1, 1
            ),
            self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env),
        )
        return ReplayBufferSamples(*tuple(map(self.to_torch, data)))


class DictTeacherReplayBuffer(TeacherReplayViewMixin, DictReplayBuffer):
    """:class:`DictReplayBuffer` (``Dict`` observations) plus the teacher's view of each observation."""

    def _samples_at(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None
    ) -> DictReplayBufferSamples:
        # SB3 2.9's DictReplayBuffer._get_samples, after its draw of env_indices.
        obs_ = self._normalize_obs(
            {key: obs[batch_inds, env_indices, :] for key, obs in self.observations.items()}, env
        )
        next_obs_ = self._normalize_obs(
            {key: obs[batch_inds, env_indices, :] for key, obs in self.next_observations.items()}, env
        )
        assert isinstance(obs_, dict)
        assert isinstance(next_obs_, dict)
        observations = {key: self.to_torch(obs) for key, obs in obs_.items()}
        next_observations = {key: self.to_torch(obs) for key, obs in next_obs_.items()}
        return DictReplayBufferSamples(
            observations=observations,
            actions=self.to_torch(self.actions[batch_inds, env_indices]),
            next_observations=next_observations,
            # Only use dones that are not due to timeouts
            # deactivated by default (timeouts is initialized as an array of False)
            dones=self.to_torch(
                self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])
            ).reshape(-1, 1),
            rewards=self.to_torch(
                self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env)
            ),
        )


class NStepTeacherReplayBuffer(TeacherReplayViewMixin, NStepReplayBuffer):
    """:class:`NStepReplayBuffer` (n-step returns) plus the teacher's view of each observation."""

    def _samples_at(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None
    ) -> ReplayBufferSamples:
        # SB3 2.9's NStepReplayBuffer._get_samples, after its draw of env_indices.
        # Note: the self.pos index is dangerous (will overlap two different episodes when buffer is full)
        # so we set self.pos-1 to truncated=True (temporarily) if done=False and truncated=False
        last_valid_index = self.pos - 1
        original_timeout_values = self.timeouts[last_valid_index].copy()
        self.timeouts[last_valid_index] = np.logical_or(
            original_timeout_values, np.logical_not(self.dones[last_valid_index])
        )

        # Compute n-step indices with wrap-around
        steps = np.arange(self.n_steps).reshape(1, -1)  # shape: [1, n_steps]
        indices = (batch_inds[:, None] + steps) % self.buffer_size  # shape: [batch, n_steps]

        # Retrieve sequences of transitions
        rewards_seq = self._normalize_reward(
            self.rewards[indices, env_indices[:, None]], env
        )  # [batch, n_steps]
        dones_seq = self.dones[indices, env_indices[:, None]]  # [batch, n_steps]
        truncated_seq = self.timeouts[indices, env_indices[:, None]]  # [batch, n_steps]

        # Compute masks: 1 until first done/truncation (inclusive)
        done_or_truncated = np.logical_or(dones_seq, truncated_seq)
        done_idx = done_or_truncated.argmax(axis=1)
        # If no done/truncation, keep full sequence
        has_done_or_truncated = done_or_truncated.any(axis=1)
        done_idx = np.where(has_done_or_truncated, done_idx, self.n_steps - 1)

        mask = np.arange(self.n_steps).reshape(1, -1) <= done_idx[:, None]  # shape: [batch, n_steps]
        # Compute discount factors for bootstrapping (using target Q-Value)
        # It is gamma ** n_steps by default but should be adjusted in case of early termination/truncation.
        target_q_discounts = self.gamma ** mask.sum(axis=1, keepdims=True).astype(np.float32)  # [batch, 1]

        # Apply discount
        discounts = self.gamma ** np.arange(self.n_steps, dtype=np.float32).reshape(1, -1)  # [1, n_steps]
        discounted_rewards = rewards_seq * discounts * mask
        n_step_returns = discounted_rewards.sum(axis=1, keepdims=True)  # [batch, 1]

        # Compute indices of next_obs/done at the final point of the n-step transition
        last_indices = (batch_inds + done_idx) % self.buffer_size
        next_obs = self._normalize_obs(self.next_observations[last_indices, env_indices], env)
        next_dones = self.dones[last_indices, env_indices][:, None].astype(np.float32)
        next_timeouts = self.timeouts[last_indices, env_indices][:, None].astype(np.float32)
        final_dones = next_dones * (1.0 - next_timeouts)

        # Revert back tmp changes to avoid sampling across episodes
        self.timeouts[last_valid_index] = original_timeout_values

        # Gather observations and actions
        obs = self._normalize_obs(self.observations[batch_inds, env_indices], env)
        actions = self.actions[batch_inds, env_indices]

        return ReplayBufferSamples(
            observations=self.to_torch(obs),  # type: ignore[arg-type]
            actions=self.to_torch(actions),
            next_observations=self.to_torch(next_obs),  # type: ignore[arg-type]
            dones=self.to_torch(final_dones),
            rewards=self.to_torch(n_step_returns),
            discounts=self.to_torch(target_q_discounts),
        )


#: SB3's replay buffers and the rlimm buffer that replaces each.
TEACHER_REPLAY_BUFFERS: dict[type[ReplayBuffer], type[ReplayBuffer]] = {
    ReplayBuffer: TeacherReplayBuffer,
    DictReplayBuffer: DictTeacherReplayBuffer,
    NStepReplayBuffer: NStepTeacherReplayBuffer,
}


def teacher_replay_buffer_class(
    chosen: type[ReplayBuffer] | None, observation_space: spaces.Space, n_steps: int
) -> type[ReplayBuffer]:
    """The replay buffer that records the teacher's view in place of ``chosen`` (the user's
    ``replay_buffer_class``; ``None``: the one SB3 would pick — Dict observations, n-step returns, or
    the plain buffer). Raise :class:`RlimmError` for a buffer that cannot record it (e.g.
    ``HerReplayBuffer``)."""
    dict_obs = isinstance(observation_space, spaces.Dict)
    if chosen is None:
        if dict_obs and n_steps > 1:
            raise RlimmError("n-step returns (n_steps > 1) are not supported for Dict observations")
        chosen = DictReplayBuffer if dict_obs else NStepReplayBuffer if n_steps > 1 else ReplayBuffer
    if isinstance(chosen, type) and issubclass(chosen, TeacherReplayViewMixin):
        return chosen
    if chosen in TEACHER_REPLAY_BUFFERS:
        return TEACHER_REPLAY_BUFFERS[chosen]
    name = getattr(chosen, "__name__", repr(chosen))
    default = "DictTeacherReplayBuffer" if dict_obs else "TeacherReplayBuffer"
    raise RlimmError(
        f"replay_buffer_class {name} cannot record what the teacher sees; leave it unset "
        f"(rlimm uses {default})"
    )
