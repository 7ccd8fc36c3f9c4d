"""The off-policy glue (SAC): :class:`OffPolicyRegularizedMixin`, the counterpart of
:mod:`rlimm.agents.common.on_policy`.

One update, one way: SB3 stores each transition in the replay buffer, with its raw observation →
at the start of ``train()``, :meth:`OffPolicyRegularizedMixin.update_teacher_view` computes the teacher's
view of the transitions collected since the last update, once, and stores it in the buffer → each
gradient step samples a minibatch carrying ``teacher_params`` (and ``contexts``); sampled induction's pool
is the minibatch itself and, with ``induction.pool`` > 1, more rows drawn from the replay buffer with
the induction's own generator (:meth:`OffPolicyRegularizedMixin.induction_pool`) → ``train()`` adds
``λ · R`` on its loss line.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from rlimm.agents.common.mixin import RegularizedMixin
from rlimm.agents.common.replay_buffers import TeacherReplayViewMixin, teacher_replay_buffer_class
from rlimm.agents.imm.draws import Pool, Trajectories
from rlimm.envs.restrictions import PartitionRestriction
from rlimm.errors import RlimmError


class OffPolicyRegularizedMixin(RegularizedMixin, OffPolicyAlgorithm):
    """The off-policy glue: a replay buffer that records the teacher's view (with a restriction), the
    view computed once per batch of new transitions, and sampled induction's pool per minibatch."""

    #: An off-policy algorithm updates on every environment step: the diagnostic KL (the one not
    #: optimised, a batch × k forward with sampled induction) is computed once per 100 gradient steps.
    diagnostic_period = 100

    def _setup_model(self) -> None:
        # SB3's set-up with a replay buffer that records the teacher's view when there is a
        # restriction.
        if self.restriction is None:
            super()._setup_model()
        else:
            user_class, user_kwargs = self.replay_buffer_class, self.replay_buffer_kwargs
            buffer_class = teacher_replay_buffer_class(user_class, self.observation_space, self.n_steps)
            # The buffer gets its columns for its construction only: the saved class and kwargs stay the
            # user's.
            kwargs = {**user_kwargs, "columns": self._view_columns()}
            chosen_for_the_user = user_class is None
            if chosen_for_the_user and issubclass(buffer_class, NStepReplayBuffer):
                kwargs.update(n_steps=self.n_steps, gamma=self.gamma)  # what SB3 passes to its own
            self.replay_buffer_class, self.replay_buffer_kwargs = buffer_class, kwargs
            try:
                with warnings.catch_warnings():
                    if chosen_for_the_user:  # n_steps is honoured above: SB3's "ignored" warning is wrong
                        warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored")
                    super()._setup_model()
            finally:
                self.replay_buffer_class, self.replay_buffer_kwargs = user_class, user_kwargs
        self._setup_regularizer()

    def _view_columns(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        """The replay buffer's teacher-view columns: name → (shape, dtype)."""
        columns: dict[str, tuple[tuple[int, ...], Any]] = {}
        if isinstance(self.restriction, PartitionRestriction):
            columns["contexts"] = ((), np.int64)
        if self.teacher is not None:
            columns["teacher_params"] = ((self.teacher.n_params,), np.float32)
        return columns

    def update_teacher_view(self) -> None:
        """The teacher's view of the transitions collected since the last update, computed in one batch
        from their stored (raw) observations and stored in the replay buffer: the one place it is
        computed, before the update samples."""
        buffer = self.replay_buffer
        if self.teacher is None or not isinstance(buffer, TeacherReplayViewMixin):
            return
        rows = buffer.pending_rows()
        if rows.size:
            buffer.store_teacher_view(rows, self._teacher_view(buffer.raw_observations(rows)))

    def induction_pool(self, batch: Any = None, evaluated: int | None = None) -> Pool | None:
        """Sampled induction's pool for a minibatch: its observations first, then ``induction.pool`` − 1
        minibatches' worth of rows drawn from the replay buffer with the induction's own generator,
        with every row's episode and step; ``None`` without sampled induction. The term is evaluated
        on the first ``evaluated`` rows (default: the whole minibatch): only theirs are drawn for."""
        buffer = self.replay_buffer
        if not (self.teacher is not None and self.teacher_regularizer.sampled):
            return None
        assert isinstance(buffer, TeacherReplayViewMixin)
        regularizer = self.teacher_regularizer
        positions, envs = batch.positions, batch.env_indices
        n = len(positions)
        extra = (regularizer.induction.pool - 1) * n
        observations = batch.observations
        if extra:
            more_positions, more_envs = buffer.random_rows(extra, regularizer.pool_rng)
            more = buffer.observations_at(more_positions, more_envs, self._vec_normalize_env)
            observations = (
                {key: th.cat([v, more[key]]) for key, v in observations.items()}
                if isinstance(observations, dict)
                else th.cat([observations, more])
            )
            positions, envs = np.concatenate([positions, more_positions]), np.concatenate([envs, more_envs])
        episode, step = buffer.trajectories_at(positions, envs)
        return Pool(observations, n if evaluated is None else min(evaluated, n), Trajectories(episode, step))

    def load_replay_buffer(self, path: Any, truncate_last_traj: bool = True) -> None:
        """SB3's ``load_replay_buffer``; the view of a buffer that records the teacher's view is
        computed again with the current teacher before the next update."""
        super().load_replay_buffer(path, truncate_last_traj)
        buffer = self.replay_buffer
        if self.restriction is not None:
            if not isinstance(buffer, TeacherReplayViewMixin):
                raise RlimmError(
                    f"the loaded replay buffer ({type(buffer).__name__}) cannot record what the teacher "
                    "sees: load one saved by rlimm's SAC with a restriction"
                )
            buffer.set_columns(self._view_columns())
