"""Replay buffers that also keep the teacher's view of each transition (off-policy algorithms: SAC).

SB3's off-policy algorithms store the *unnormalised* observation in the replay buffer (``VecNormalize``'s
original, ``_last_original_obs``) and normalise only when sampling. The teacher's view is therefore
computed from the stored observation itself, the raw one the agent acted on: the learner's
``VecNormalize`` never changes what the teacher sees, and nothing is reconstructed from a normalised
observation.

Each transition's columns (``contexts``: the visible context of an exact restriction;
``teacher_probs``: the teacher's action probabilities; ``teacher_gaussian``: the teacher's Gaussian,
mean then log-std) are stored with it, in arrays shaped like SB3's ``(buffer_size, n_envs, …)``. The
teacher is frozen, so the columns of the transitions added since the last sample are computed together,
in one batch per :data:`~rlimm.agents.buffers.VIEW_CHUNK` rows, when the buffer is next sampled: the same
numbers as one teacher call per environment step, at the cost of one call per update.

Samples are :class:`TeacherReplayBufferSamples`: SB3's replay samples plus the columns of the sampled
transitions and ``indices``, each sample's row in the *minibatch* (``arange(batch_size)``). Sampled
induction draws its hidden parts from the minibatch itself, i.e. from transitions of the replay buffer
(:meth:`rlimm.agents.sac.SAC._induction_pool`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from rlimm.agents.buffers import VIEW_CHUNK, View, as_env_observations, flat_rows, slice_rows
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
    #: visible context of each observation (exact restrictions), ``long``, else ``None``
    contexts: th.Tensor | None = None
    #: the teacher's action probabilities at each observation (Discrete actions), else ``None``
    teacher_probs: th.Tensor | None = None
    #: the teacher's Gaussian at each observation, ``(n, 2d)``: mean then log-std (Box actions), else ``None``
    teacher_gaussian: th.Tensor | None = None


def _rows(values: Any, rows: np.ndarray) -> Any:
    if isinstance(values, dict):
        return {key: v[rows] for key, v in values.items()}
    return values[rows]


class TeacherReplayViewMixin:
    """The columns of the teacher's view, added to an SB3 replay buffer (put it first in the bases).

    :param view: computes the columns from a batch of raw observations.
    :param columns: name → ``(shape, dtype)`` of each column the view returns.
    """

    columns: dict[str, tuple[tuple[int, ...], Any]]

    def __init__(
        self,
        *args: Any,
        view: View | None,
        columns: dict[str, tuple[tuple[int, ...], Any]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.attach_view(view, columns)

    def attach_view(self, view: View | None, columns: dict[str, tuple[tuple[int, ...], Any]]) -> None:
        """Set the view (after construction, or after unpickling a saved buffer, which keeps no view)
        and mark every stored transition for it: their columns are computed at the next sample."""
        self.view = view
        self.columns = dict(columns)
        size, n_envs = self.buffer_size, self.n_envs  # type: ignore[attr-defined]
        self.view_data: dict[str, np.ndarray] = {
            name: np.zeros((size, n_envs, *shape), dtype=dtype)
            for name, (shape, dtype) in self.columns.items()
        }
        self._pending = np.zeros(size, dtype=bool)
        stored = size if self.full else self.pos  # type: ignore[attr-defined]
        self._pending[:stored] = True

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self._pending[:] = False

    def add(self, obs: Any, *args: Any, **kwargs: Any) -> None:
        pos = self.pos  # type: ignore[attr-defined]
        super().add(obs, *args, **kwargs)  # type: ignore[misc]
        self._pending[pos] = True

    def _compute_pending_views(self) -> None:
        """The columns of every transition added since the last sample, from its stored (raw)
        observation, in one batch per :data:`VIEW_CHUNK` rows."""
        rows = np.flatnonzero(self._pending)
        if rows.size == 0 or not self.columns:
            self._pending[rows] = False
            return
        if self.view is None:
            raise RlimmError(
                "this replay buffer has no teacher view attached (a loaded buffer): load it with the "
                "model's load_replay_buffer"
            )
        n_envs = self.n_envs  # type: ignore[attr-defined]
        n = rows.size * n_envs
        stored = flat_rows(_rows(self.observations, rows), n)  # type: ignore[attr-defined]
        observations = as_env_observations(self.observation_space, stored)  # type: ignore[attr-defined]
        values = {name: np.zeros((n, *shape), dtype=dtype) for name, (shape, dtype) in self.columns.items()}
        for start in range(0, n, VIEW_CHUNK):
            stop = min(start + VIEW_CHUNK, n)
            for name, column in self.view(slice_rows(observations, start, stop)).items():
                values[name][start:stop] = np.asarray(column).reshape(stop - start, *self.columns[name][0])
        for name, column in values.items():
            self.view_data[name][rows] = column.reshape(rows.size, n_envs, *column.shape[1:])
        self._pending[rows] = False

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> TeacherReplayBufferSamples:
        self._compute_pending_views()
        n_envs = self.n_envs  # type: ignore[attr-defined]
        if n_envs == 1:
            samples = super()._get_samples(batch_inds, env)  # type: ignore[misc]
            env_indices = np.zeros(len(batch_inds), dtype=np.int64)
        else:
            # SB3 draws each sample's environment with NumPy's global generator as the first draw of
            # ``_get_samples`` (ReplayBuffer, DictReplayBuffer and NStepReplayBuffer alike). Replay
            # that draw from the same state to know which rows were sampled, then leave the generator
            # where SB3 left it: the random stream is SB3's, unchanged.
            before = np.random.get_state()
            samples = super()._get_samples(batch_inds, env)  # type: ignore[misc]
            after = np.random.get_state()
            np.random.set_state(before)
            env_indices = np.random.randint(0, high=n_envs, size=(len(batch_inds),))
            np.random.set_state(after)
        extra = {
            name: self.to_torch(column[batch_inds, env_indices])  # type: ignore[attr-defined]
            for name, column in self.view_data.items()
        }
        contexts = extra.get("contexts")
        return TeacherReplayBufferSamples(
            *samples,
            indices=th.arange(len(batch_inds), device=self.device),  # type: ignore[attr-defined]
            contexts=None if contexts is None else contexts.long().reshape(-1),
            teacher_probs=extra.get("teacher_probs"),
            teacher_gaussian=extra.get("teacher_gaussian"),
        )

    def __getstate__(self) -> dict[str, Any]:
        # The view is a bound method of the model (its teacher, env and logger): never pickled with
        # the buffer (``save_replay_buffer``). ``load_replay_buffer`` attaches the model's view again.
        state = self.__dict__.copy()
        state["view"] = None
        return state


class TeacherReplayBuffer(TeacherReplayViewMixin, ReplayBuffer):
    """:class:`ReplayBuffer` plus the teacher's view of each stored observation."""


class DictTeacherReplayBuffer(TeacherReplayViewMixin, DictReplayBuffer):
    """:class:`DictReplayBuffer` (``Dict`` observations) plus the teacher's view of each observation."""


class NStepTeacherReplayBuffer(TeacherReplayViewMixin, NStepReplayBuffer):
    """:class:`NStepReplayBuffer` (n-step returns) plus the teacher's view of each observation."""


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
