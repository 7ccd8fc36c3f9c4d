"""Teachers given as a table: one action distribution per visible context of a partition restriction.

:class:`TabularTeacher` holds it as a ``(C, A)`` table, which covers the exact POMDP solutions
(:mod:`rlimm.agents.teachers.exact`), the induced-optimal oracle, α-vector teachers and the IMM paper's
grid teacher; the table is built once and the training loop indexes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlimm.agents.teachers.base import ActionFamily, act_categorical, discrete_only
from rlimm.envs.restrictions import PartitionRestriction
from rlimm.errors import RlimmError

#: How utilities become a policy: the best action(s), or a softmax at a temperature.
POLICY_MODES = ("argmax", "softmax")


@dataclass(frozen=True)
class TabularTeacher:
    """A restricted policy given as a table (family :attr:`ActionFamily.CATEGORICAL`).

    :param table: ``(C, A)`` action probabilities for each visible context (rows sum to one).
    :param name: a short description, logged with the run.
    :param about: how an induced teacher was made (:func:`~rlimm.agents.teachers.base.with_about`).
    """

    table: np.ndarray
    name: str = "tabular"
    about: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        t = np.asarray(self.table, dtype=np.float64)
        if t.ndim != 2 or (t < 0).any() or not np.allclose(t.sum(axis=1), 1.0):
            raise RlimmError("a teacher table must be (contexts, actions) with rows summing to one")
        object.__setattr__(self, "table", t)

    @property
    def family(self) -> ActionFamily:
        return ActionFamily.CATEGORICAL

    @property
    def n_contexts(self) -> int:
        return self.table.shape[0]

    @property
    def n_actions(self) -> int:
        return self.table.shape[1]

    @property
    def n_params(self) -> int:
        return self.n_actions

    def probs(self, contexts: np.ndarray) -> np.ndarray:
        """Action probabilities ``(batch, A)`` for a batch of context indices."""
        return self.table[np.asarray(contexts, dtype=np.int64)]

    def params(self, contexts: np.ndarray) -> np.ndarray:
        """The action probabilities, float32 ``(batch, A)``."""
        return np.asarray(self.probs(contexts), dtype=np.float32)

    def act(self, contexts: np.ndarray, rng: np.random.Generator, deterministic: bool) -> np.ndarray:
        """Actions ``(batch,)``: the most probable (``deterministic``) or one draw per context."""
        return act_categorical(self.probs(contexts), None, rng, deterministic)

    def check_compatible(self, restriction: PartitionRestriction, action_space: gym.Space) -> None:
        """Raise unless this teacher fits the restriction's contexts and the action space."""
        if not isinstance(action_space, spaces.Discrete):
            raise RlimmError(discrete_only(self.name, action_space))
        if self.n_actions != int(action_space.n):
            raise RlimmError(
                f"teacher '{self.name}' has {self.n_actions} actions but the environment has "
                f"{int(action_space.n)}"
            )
        if self.n_contexts != restriction.n_contexts:
            raise RlimmError(
                f"teacher '{self.name}' covers {self.n_contexts} visible contexts but the "
                f"restriction has {restriction.n_contexts}"
            )


def utilities_to_policy(
    utilities: np.ndarray, mode: str = "argmax", temperature: float = 1.0, tie_tol: float = 1e-9
) -> np.ndarray:
    """Turn ``(C, A)`` utilities into action probabilities.

    ``argmax`` is one-hot on the best action; exact ties (within ``tie_tol``, relative) share the
    mass equally rather than going to whichever action floating-point noise favours.
    ``softmax`` is ``softmax(u / temperature)``.
    """
    if mode == "argmax":
        best = utilities.max(axis=1, keepdims=True)
        winners = utilities >= best - tie_tol * np.maximum(np.abs(best), 1.0)
        return winners / winners.sum(axis=1, keepdims=True)
    if mode == "softmax":
        if not temperature > 0:
            raise RlimmError(f"softmax temperature must be > 0, got {temperature}")
        z = utilities / temperature
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    raise RlimmError(f"unknown teacher policy '{mode}'; accepted: {', '.join(POLICY_MODES)}")


def alpha_teacher(
    alphas: np.ndarray,
    restriction: PartitionRestriction,
    mode: str = "argmax",
    temperature: float = 1.0,
    name: str = "alphas",
) -> TabularTeacher:
    """Teacher from ``(S, A)`` α-vectors: utilities ``b(c)·α`` with the restriction's belief ``b``."""
    if alphas.shape[0] != restriction.n_observations:
        raise RlimmError(
            f"alpha-vectors cover {alphas.shape[0]} states but the restriction has "
            f"{restriction.n_observations}"
        )
    utilities = restriction.state_belief() @ alphas
    return TabularTeacher(utilities_to_policy(utilities, mode, temperature), name)


def paper_alpha_teacher(path: str | Path, restriction: Any) -> TabularTeacher:
    """The IMM paper's own grid teacher: the authors' FIB α-vectors (``grid_fib_alphas.csv``, 121 × 4,
    state y·11 + x, columns UP, DOWN, LEFT, RIGHT), utilities b(x)·α with the uniform column belief,
    argmax with the paper's tie-breaking — the *first* maximal action (``np.argmax``: UP in the centre
    column), where :func:`alpha_teacher` shares exact ties."""
    path = Path(path)
    if not path.is_file():
        raise RlimmError(
            f"the paper's alpha-vectors were not found at {path}; set teacher.path or RLIMM_DATA_DIR "
            "(the file is imm_reference/grid_fib_alphas.csv)"
        )
    alphas = np.loadtxt(path, delimiter=",", comments="#")
    if alphas.shape != (restriction.n_observations, 4):
        raise RlimmError(
            f"{path} holds alpha-vectors of shape {alphas.shape}; the restriction needs "
            f"({restriction.n_observations}, 4)"
        )
    utilities = restriction.state_belief() @ alphas
    table = np.zeros_like(utilities)
    table[np.arange(len(utilities)), utilities.argmax(axis=1)] = 1.0
    return TabularTeacher(table, "paper-fib-argmax")
