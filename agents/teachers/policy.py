"""Teachers that are a policy on the visible part: an SB3 policy trained on the env as the restricted
model sees it (:class:`~rlimm.envs.VisibleObservation`), or a network fitted onto the visible part (the
induced expert, :mod:`rlimm.agents.teachers.expert`), frozen.

One class, :class:`PolicyTeacher`, for every action family: what its actions are (categorical or
Gaussian, :mod:`rlimm.agents.teachers.actions`) is decided once, when it is built, and it delegates to
that. Its parameters are computed at collection time from the raw visible part and stored with the
rollout, so the learner's ``VecNormalize`` never changes what it sees.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy

from rlimm.agents.teachers.actions import (
    CategoricalActions,
    GaussianActions,
    actions_of,
    policy_utilities,
    sb3_squashed,
)
from rlimm.agents.teachers.base import ActionFamily, action_sizes, check_visible, short_space, space_layout
from rlimm.agents.teachers.tabular import POLICY_MODES, TabularTeacher, utilities_to_policy
from rlimm.errors import RlimmError


def frozen_copy(policy: th.nn.Module) -> th.nn.Module:
    """A CPU, eval-mode, gradient-free deep copy of a policy without optimizers, that pickles to
    worker processes. SB3 keeps the last distribution (SAC also its last pre-squash draw) with its
    autograd graph, which neither deepcopy nor pickle accepts: it is left out of the copy, and the
    source keeps its own."""
    holders = [getattr(m, "action_dist", None) for m in (policy, getattr(policy, "actor", None))]
    saved = [
        (h, attr, getattr(h, attr))
        for h in holders
        if h is not None
        for attr in ("distribution", "gaussian_actions")
        if getattr(h, attr, None) is not None
    ]
    for h, attr, _ in saved:
        setattr(h, attr, None)
    try:
        frozen = copy.deepcopy(policy)
    finally:
        for h, attr, value in saved:
            setattr(h, attr, value)
    frozen = frozen.to("cpu").eval()  # eval() is SB3's set_training_mode(False)
    for module in frozen.modules():
        if hasattr(module, "optimizer"):
            module.optimizer = None  # a teacher is never trained
    return frozen.requires_grad_(False)


class PolicyTeacher:
    """A teacher that is a policy on the visible part, frozen (:func:`frozen_copy`: training the source
    afterwards does not change it). Its ``actions``
    (:class:`~rlimm.agents.teachers.actions.CategoricalActions` or
    :class:`~rlimm.agents.teachers.actions.GaussianActions`, chosen once here) say what its distribution
    is; the teacher's methods delegate to them.

    :param policy: an SB3 policy (an ``ActorCriticPolicy``, a ``DQNPolicy``, a ``SACPolicy``) acting on
        the visible part, or a module from visible features
        (:func:`~rlimm.agents.teachers.base.visible_features`) to action logits, or to
        ``mean ‖ log_std`` for Box actions (a :class:`~rlimm.agents.teachers.networks.VisibleMLP`).
    :param visible_space: the observation space the policy acts on.
    :param actions: the number of discrete actions (for MultiDiscrete actions ``sum(nvec)``), or the Box
        action space of a Gaussian teacher.
    :param mode: discrete actions: ``softmax`` (the policy's own probabilities at ``temperature`` 1) or
        ``argmax``.
    :param nvec: MultiDiscrete actions: the actions of each dimension. Probabilities (and logits) are
        then per dimension, concatenated, each dimension's summing to one (SB3's layout).
    :param squashed: Box actions with a module that is not an SB3 policy: whether its Gaussian is
        before a tanh squash (an SB3 policy's class says so itself: a ``SACPolicy``'s is).
    :param fit_kl: for an induced expert, what the fit left: the visit-average KL(expert ‖ teacher).
    """

    def __init__(
        self,
        policy: th.nn.Module,
        visible_space: gym.Space,
        actions: int | spaces.Box,
        mode: str = "softmax",
        temperature: float = 1.0,
        name: str = "policy",
        nvec: list[int] | None = None,
        *,
        squashed: bool | None = None,
        fit_kl: float | None = None,
    ) -> None:
        if mode not in POLICY_MODES:
            raise RlimmError(f"unknown teacher policy '{mode}'; accepted: {', '.join(POLICY_MODES)}")
        self.name, self.visible_space = name, visible_space
        self.mode, self.temperature = mode, float(temperature)
        self.actions = actions_of(policy, actions, nvec, squashed)
        self.fit_kl = fit_kl
        self.policy = frozen_copy(policy)

    # ----------------------------------------------------------------- the Teacher protocol

    @property
    def family(self) -> ActionFamily:
        return self.actions.family

    @property
    def n_params(self) -> int:
        return self.actions.n_params

    def params(self, visible: Any) -> np.ndarray:
        """float32 ``(batch, n_params)``: the action probabilities (per dimension, concatenated), or
        the Gaussian's ``mean ‖ log_std``."""
        return self.actions.params(self, visible)

    def act(self, visible: Any, rng: np.random.Generator, deterministic: bool) -> np.ndarray:
        """The teacher acting on a batch of visible parts. Discrete: ``(batch,)`` actions
        (MultiDiscrete: ``(batch, len(nvec))``), the most probable or one draw per part (and dimension).
        Box: float32 ``(batch, d)`` within the bounds, the mean or a Gaussian draw, then squashed or
        clipped (:func:`~rlimm.agents.teachers.actions.to_action`)."""
        return self.actions.act(self, visible, rng, deterministic)

    def check_compatible(self, restriction: Any, action_space: gym.Space) -> None:
        """Raise :class:`RlimmError` unless the policy's actions are the env's and its input the
        restriction's visible part."""
        self.check_actions(action_space)
        self.check_visible(restriction)

    def check_actions(self, action_space: gym.Space) -> None:
        """Raise unless ``action_space`` is the teacher's: the same discrete sizes, or a Box of the same
        dimension and bounds."""
        self.actions.check_actions(self.name, action_space)

    def check_visible(self, restriction: Any) -> None:
        """Raise unless the teacher's input is the restriction's visible part."""
        check_visible(self.name, self.visible_space, restriction)

    # ----------------------------------------------------------------- per family

    def _categorical(self, what: str) -> CategoricalActions:
        if not isinstance(self.actions, CategoricalActions):
            raise RlimmError(f"teacher '{self.name}' has Box actions, not {what}")
        return self.actions

    def _gaussian(self, what: str) -> GaussianActions:
        if not isinstance(self.actions, GaussianActions):
            raise RlimmError(f"teacher '{self.name}' has discrete actions, not {what}")
        return self.actions

    @property
    def n_actions(self) -> int:
        """Discrete actions: their number (MultiDiscrete: ``sum(nvec)``)."""
        return self._categorical("a number of actions").n_actions

    @property
    def nvec(self) -> list[int] | None:
        """MultiDiscrete actions: the actions of each dimension (else ``None``)."""
        return self.actions.nvec

    @property
    def box(self) -> spaces.Box | None:
        """Box actions: the action space the Gaussian is over (``None`` for discrete actions)."""
        return self.actions.box

    @property
    def low(self) -> np.ndarray:
        """Box actions: the flat lower bounds, float32 ``(d,)``."""
        return self._gaussian("action bounds").low

    @property
    def high(self) -> np.ndarray:
        """Box actions: the flat upper bounds, float32 ``(d,)``."""
        return self._gaussian("action bounds").high

    @property
    def action_dim(self) -> int:
        """Box actions: the number d of flat action dimensions."""
        return self._gaussian("action dimensions").action_dim

    @property
    def squashed(self) -> bool:
        """Box actions: whether the Gaussian is before a tanh squash (SAC's convention)."""
        return self._gaussian("a Gaussian").squashed

    def logits(self, visible: Any) -> th.Tensor:
        """Discrete actions: the policy's logits (DQN: Q-values) ``(batch, n_actions)``."""
        return self._categorical("logits").logits(self, visible)

    def probs(self, visible: Any) -> np.ndarray:
        """Discrete actions: action probabilities ``(batch, n_actions)`` for a batch of visible parts."""
        return self._categorical("probabilities").probs(self, visible)

    def gaussian(self, visible: Any) -> tuple[np.ndarray, np.ndarray]:
        """Box actions: ``(mean, log_std)``, each float32 ``(batch, d)``
        (:meth:`~rlimm.agents.teachers.actions.GaussianActions.gaussian`)."""
        return self._gaussian("a Gaussian").gaussian(self, visible)


def policy_teacher(
    model: BaseAlgorithm,
    restriction: Any = None,
    mode: str = "softmax",
    temperature: float = 1.0,
    name: str | None = None,
) -> TabularTeacher | PolicyTeacher:
    """Teacher from an SB3 model that acts on the *visible part* (e.g. trained on
    :class:`~rlimm.envs.VisibleObservation`). Discrete actions: for ``Discrete(C)`` observations and
    Discrete actions its policy at every context, as a table; otherwise a :class:`PolicyTeacher` that
    evaluates the policy. Box actions: its Gaussian (:func:`gaussian_policy_teacher`).

    Utilities are the model's action log-probabilities (Q-values for DQN): ``softmax`` with
    temperature 1 is the model's own policy, ``argmax`` its greedy policy (discrete actions only).

    :param restriction: if given, the model's observation space must be its visible part.
    """
    if isinstance(model.action_space, spaces.Box):
        return gaussian_policy_teacher(model, restriction, None, name)
    space = model.observation_space
    sizes = action_sizes(model.action_space)
    name = name or f"{type(model).__name__.lower()}-{mode}"
    # A table holds one distribution per context; MultiDiscrete actions keep the policy (per dimension).
    multi = isinstance(model.action_space, spaces.MultiDiscrete)
    if not isinstance(space, spaces.Discrete) or multi:
        teacher = PolicyTeacher(model.policy, space, sum(sizes), mode, temperature, name, nvec=sizes)
        if restriction is not None:
            expected = restriction.visible_space
            if space_layout(expected) != space_layout(space):
                raise RlimmError(
                    f"the teacher model observes {short_space(space)} but the restriction shows "
                    f"{short_space(expected)} (a teacher acts on the visible part only)"
                )
        return teacher
    n = int(space.n)
    if restriction is not None and n != restriction.n_contexts:
        raise RlimmError(
            f"the teacher model observes Discrete({n}) but the restriction has {restriction.n_contexts} "
            "visible contexts"
        )
    utilities = policy_utilities(model.policy, th.arange(n, dtype=th.float32, device=model.device))
    table = utilities_to_policy(utilities.cpu().double().numpy(), mode, temperature)
    return TabularTeacher(table, name)


def gaussian_policy_teacher(
    model_or_policy: BaseAlgorithm | BasePolicy,
    restriction: Any = None,
    action_space: gym.Space | None = None,
    name: str | None = None,
) -> PolicyTeacher:
    """Gaussian teacher from an SB3 model (PPO, A2C, SAC) or policy with Box actions that acts on the
    *visible part* (trained on :class:`~rlimm.envs.VisibleObservation`).

    :param restriction: if given, the model's observation space must be its visible part.
    :param action_space: if given, the full env's action space, which the model's must match.
    """
    model = model_or_policy
    policy = model.policy if isinstance(model, BaseAlgorithm) else model
    if not isinstance(policy, BasePolicy):
        raise RlimmError(f"a Gaussian policy teacher needs an SB3 policy, got {type(policy).__name__}")
    sb3_squashed(policy)  # refuse what has no Gaussian per state, before copying it
    name = name or f"{type(model).__name__.lower()}-gaussian"
    teacher = PolicyTeacher(policy, policy.observation_space, policy.action_space, name=name)
    if restriction is not None:
        teacher.check_visible(restriction)
    if action_space is not None:
        teacher.check_actions(action_space)
    return teacher
