"""The interface every restriction implements: which part of an observation a restricted model (the
teacher) sees.

An observation x splits into a visible part x̄ and a hidden part x̲. A :class:`Restriction` answers,
for any common observation space:

- ``visible(obs)``            the teacher's input for a batch of full observations (its layout is
                              ``visible_space``);
- ``visible_features(obs)``   numeric visible features ``(n, f)`` for distances between visible parts,
                              with ``discrete_features`` (``(f,)`` bool) marking those that must match
                              exactly;
- ``combine(a, b)``           the observations made of the visible part of ``a`` and the hidden part
                              of ``b`` (sampled induction builds (x̄_i, x̲_j) with it);
- ``exact``                   whether the hidden parts of a visible part can be *enumerated* with a
                              belief (then ``enumerate_hidden`` and, for ``Discrete`` spaces, the
                              ``context_of``/``members``/``belief`` tables exist), or only sampled.

``visible_features``, ``combine`` and ``enumerate_hidden`` accept numpy arrays and torch tensors and
return the same kind (the regulariser calls them on the rollout buffer's tensors, where a ``Discrete``
observation is a float ``(n, 1)``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlimm.errors import RlimmError


def _same_layout(a: gym.Space, b: gym.Space) -> bool:
    """Whether two spaces give observations of the same layout (bounds may differ, e.g. after
    normalisation)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, spaces.Discrete):
        return int(a.n) == int(b.n) and int(a.start) == int(b.start)
    if isinstance(a, spaces.Dict):
        return list(a.spaces) == list(b.spaces) and all(_same_layout(a[k], b[k]) for k in a.spaces)
    if isinstance(a, spaces.MultiDiscrete):
        return np.array_equal(a.nvec, b.nvec)
    if isinstance(a, spaces.Box | spaces.MultiBinary):
        return a.shape == b.shape
    return a == b


class Restriction(ABC):
    """What a restricted model sees of an observation (see the module docstring).

    :ivar observation_space: the full observation space the restriction applies to.
    :ivar visible_space: what the restricted model (teacher) observes: the layout of ``visible``.
    :ivar exact: ``True`` if the hidden parts of a visible part can be enumerated with a belief
        (``enumerate_hidden``; for ``Discrete`` spaces also the ``context_of``/``members``/``belief``
        tables); ``False``: sampled induction only.
    :ivar discrete_features: bool ``(f,)``: which of ``visible_features`` must match exactly.
    :ivar visible_names: names of the visible parts (factors, coordinates or keys).
    """

    observation_space: gym.Space
    visible_space: gym.Space
    exact: bool
    discrete_features: np.ndarray
    visible_names: tuple[str, ...]

    def check_space(self, observation_space: gym.Space) -> None:
        """Raise :class:`RlimmError` unless this restriction fits ``observation_space``."""
        if not _same_layout(self.observation_space, observation_space):
            raise RlimmError(
                f"the restriction ({self.describe()}) applies to observations {self.observation_space}, "
                f"but the environment observes {observation_space}"
            )

    @property
    def n_features(self) -> int:
        """Number of columns of ``visible_features``."""
        return len(self.discrete_features)

    @abstractmethod
    def visible(self, obs: Any) -> Any:
        """The teacher's input for a batch of full observations, in ``visible_space``'s layout."""

    @abstractmethod
    def visible_features(self, obs: Any) -> Any:
        """Numeric visible features ``(n, f)`` float32 of a batch (numpy in, numpy out; torch in, torch
        out), for distances between visible parts; ``discrete_features`` marks exact-match columns."""

    @abstractmethod
    def combine(self, visible_from: Any, hidden_from: Any) -> Any:
        """Observations (same batch size ``n``) with the visible part of ``visible_from`` and the hidden
        part of ``hidden_from``, in the full layout, of the inputs' kind, dtype and shape."""

    def enumerate_hidden(self, obs: Any) -> tuple[Any, Any]:
        """For an exact restriction: every full observation sharing each observation's visible part.

        :return: ``(candidates, weights)``: ``candidates`` are ``n·H`` full observations in the input's
            layout (row ``i·H + h`` = visible part of ``obs[i]`` with hidden value ``h``), ``weights``
            the belief ``(n, H)`` float32 over them (rows sum to one).
        """
        raise NotImplementedError(f"{type(self).__name__} is not exact: its hidden parts can only be sampled")

    @abstractmethod
    def describe(self) -> str:
        """One line for logs: what is visible and what is hidden."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_torch_cache", None)  # device tensors are rebuilt on demand
        return state
