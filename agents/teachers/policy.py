"""Teachers that are a policy on the visible part: an SB3 policy trained on the env as the restricted
model sees it (:class:`~rlimm.envs.VisibleObservation`), or a network fitted onto the visible part (the
induced expert, :mod:`rlimm.agents.teachers.expert`), frozen.

One class, :class:`PolicyTeacher`, for every action family:

- Discrete / MultiDiscrete actions: action probabilities (per dimension, concatenated: SB3's layout)
  from the policy's logits (DQN: its Q-values) by ``softmax`` at a temperature or ``argmax``.
- Box actions: a diagonal Gaussian N(μ(x̄), diag σ(x̄)²) over the d action dimensions, ``squashed`` or
  not:

  - ``False`` (SB3's PPO/A2C): the raw action a ~ N(μ, σ²), clipped to [low, high] when acting; SB3's
    log σ is a state-independent parameter, broadcast to ``(n, d)``.
  - ``True`` (SAC): the pre-tanh action u ~ N(μ, σ²), acted as a = low + (tanh u + 1)(high − low)/2.
    The squash is invertible, so the KL between two such policies equals the KL between their
    pre-squash Normals: the regulariser compares those (:mod:`rlimm.gaussian_kl`).

Its parameters are computed at collection time from the raw visible part and stored with the rollout,
so the learner's ``VecNormalize`` never changes what it sees.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import BasePolicy

from rlimm.agents.teachers.base import (
    ActionFamily,
    act_categorical,
    action_sizes,
    check_visible,
    discrete_only,
    short_space,
    space_layout,
    to_numpy,
    to_tensor,
    visible_features,
)
from rlimm.agents.teachers.networks import VisibleMLP
from rlimm.agents.teachers.tabular import POLICY_MODES, TabularTeacher, utilities_to_policy
from rlimm.errors import RlimmError


@th.no_grad()
def policy_utilities(policy: th.nn.Module, obs: Any) -> th.Tensor:
    """What an SB3 policy prefers at a batch of (unpreprocessed) observations: its action logits
    (actor-critic policies) or its Q-values (DQN)."""
    if hasattr(policy, "get_distribution"):
        distribution = policy.get_distribution(obs).distribution
        if isinstance(distribution, list):  # MultiDiscrete: one categorical per dimension, concatenated
            return th.cat([d.logits for d in distribution], dim=-1)
        return distribution.logits
    if hasattr(policy, "q_net"):
        return policy.q_net(obs)  # QNetwork.forward preprocesses the observation itself
    raise RlimmError(f"cannot read a policy from {type(policy).__name__}")


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


def to_action(u: np.ndarray, low: np.ndarray, high: np.ndarray, squashed: bool) -> np.ndarray:
    """The environment's action for Gaussian draws ``u`` ``(n, d)``: ``low + (tanh u + 1)(high − low)/2``
    when ``squashed`` (SAC's ``unscale_action``), else ``u`` clipped to the bounds (SB3's PPO/A2C)."""
    if squashed:
        return low + (np.tanh(u) + 1.0) * 0.5 * (high - low)
    return np.clip(u, low, high)


def _sb3_gaussian_squashed(policy: BasePolicy) -> bool:
    """Whether an SB3 policy's Gaussian is SAC's (pre-tanh: ``True``) or a PPO/A2C diagonal Gaussian
    (``False``); raise for anything else."""
    if not isinstance(policy.action_space, spaces.Box):
        raise RlimmError(f"Gaussian teachers need a Box action space, got {policy.action_space}")
    actor = getattr(policy, "actor", None)
    if getattr(policy, "use_sde", False) or getattr(actor, "use_sde", False):
        # gSDE's noise comes from weights resampled every few steps, not a fixed Gaussian per state.
        raise RlimmError(
            f"{type(policy).__name__} uses gSDE (use_sde=True), which Gaussian teachers do not support; "
            "train the teacher with use_sde=False"
        )
    if actor is not None and hasattr(actor, "get_action_dist_params"):
        return True
    # Exactly the diagonal Gaussian: SAC's squashed subclass has no place in an actor-critic policy.
    gaussian = type(getattr(policy, "action_dist", None)) is DiagGaussianDistribution
    if gaussian and hasattr(policy, "get_distribution"):
        return False
    raise RlimmError(
        f"{type(policy).__name__} has no Gaussian action distribution; accepted: a PPO/A2C "
        "ActorCriticPolicy with a DiagGaussianDistribution, or a SAC policy"
    )


def _bounds(a: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in a) + "]"


class PolicyTeacher:
    """A teacher that is a policy on the visible part, frozen (:func:`frozen_copy`: training the source
    afterwards does not change it). See the module docstring for the families.

    :param policy: an SB3 policy (``get_distribution``; DQN's ``q_net``; SAC's actor) acting on the
        visible part, or a module from visible features (:func:`~rlimm.agents.teachers.base.visible_features`)
        to action logits, or to ``mean ‖ log_std`` for Box actions (a
        :class:`~rlimm.agents.teachers.networks.VisibleMLP`).
    :param visible_space: the observation space the policy acts on.
    :param actions: the number of discrete actions (for MultiDiscrete actions ``sum(nvec)``), or the Box
        action space of a Gaussian teacher.
    :param mode: discrete actions: ``softmax`` (the policy's own probabilities at ``temperature`` 1) or
        ``argmax``.
    :param nvec: MultiDiscrete actions: the actions of each dimension. Probabilities (and logits) are
        then per dimension, concatenated, each dimension's summing to one (SB3's layout).
    :param squashed: Box actions with a module that is not an SB3 policy: whether its Gaussian is
        before a tanh squash (an SB3 policy says so itself: SAC's is).
    :param fit_kl: for an induced expert, what the fit left: the visit-average KL(expert ‖ teacher).
    """

    # Defaults for teachers pickled by older versions, which had neither attribute.
    nvec: list[int] | None = None
    #: Box actions: the action space the Gaussian is over (``None`` for discrete actions).
    box: spaces.Box | None = None
    fit_kl: float | None = None

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
        if isinstance(actions, spaces.Box):
            self._init_gaussian(policy, actions, squashed)
        else:
            if nvec is not None and sum(nvec) != int(actions):
                raise RlimmError(f"n_actions ({actions}) must be the sum of nvec {list(nvec)}")
            self._n_actions = int(actions)
            self.nvec = None if nvec is None or len(nvec) == 1 else [int(n) for n in nvec]
        self.fit_kl = fit_kl
        self.policy = frozen_copy(policy)

    def _init_gaussian(self, policy: th.nn.Module, box: spaces.Box, squashed: bool | None) -> None:
        if isinstance(policy, BasePolicy):
            own = _sb3_gaussian_squashed(policy)
            if squashed is not None and bool(squashed) != own:
                raise RlimmError(f"squashed={squashed} contradicts {type(policy).__name__}")
            squashed = own
        elif squashed is None:
            raise RlimmError(
                "a Gaussian teacher's network does not say whether it is squashed: pass squashed"
            )
        self.box = box
        # SB3 flattens Box actions: the Gaussian is over the d = prod(shape) flat dimensions.
        self.low = np.asarray(box.low, dtype=np.float32).reshape(-1)
        self.high = np.asarray(box.high, dtype=np.float32).reshape(-1)
        self.action_dim = len(self.low)
        self.squashed = bool(squashed)
        if isinstance(policy, VisibleMLP) and policy.n_outputs != 2 * self.action_dim:
            raise RlimmError(
                f"the network gives {policy.n_outputs // 2} action dimension(s) but the action space has "
                f"{self.action_dim}"
            )

    # ----------------------------------------------------------------- the Teacher protocol

    @property
    def family(self) -> ActionFamily:
        if self.box is not None:
            return ActionFamily.SQUASHED_GAUSSIAN if self.squashed else ActionFamily.GAUSSIAN
        return ActionFamily.CATEGORICAL if self.nvec is None else ActionFamily.MULTI_CATEGORICAL

    @property
    def n_params(self) -> int:
        return 2 * self.action_dim if self.box is not None else self._n_actions

    @property
    def n_actions(self) -> int:
        """Discrete actions: their number (MultiDiscrete: ``sum(nvec)``)."""
        if self.box is not None:
            raise RlimmError(f"teacher '{self.name}' has Box actions, not a number of actions")
        return self._n_actions

    def params(self, visible: Any) -> np.ndarray:
        """float32 ``(batch, n_params)``: the action probabilities (per dimension, concatenated), or
        the Gaussian's ``mean ‖ log_std``."""
        if self.box is not None:
            mean, log_std = self.gaussian(visible)
            return np.concatenate([mean, log_std], axis=-1).astype(np.float32)
        return np.asarray(self.probs(visible), dtype=np.float32)

    def act(self, visible: Any, rng: np.random.Generator, deterministic: bool) -> np.ndarray:
        """The teacher acting on a batch of visible parts. Discrete: ``(batch,)`` actions
        (MultiDiscrete: ``(batch, len(nvec))``), the most probable or one draw per part (and dimension).
        Box: float32 ``(batch, d)`` within the bounds, the mean or a Gaussian draw, then squashed or
        clipped (:func:`to_action`)."""
        if self.box is None:
            return act_categorical(self.probs(visible), self.nvec, rng, deterministic)
        mean, log_std = self.gaussian(visible)
        u = mean if deterministic else mean + np.exp(log_std) * rng.standard_normal(mean.shape)
        return to_action(u, self.low, self.high, self.squashed).astype(np.float32)

    def check_compatible(self, restriction: Any, action_space: gym.Space) -> None:
        """Raise :class:`RlimmError` unless the policy's actions are the env's and its input the
        restriction's visible part."""
        self.check_actions(action_space)
        self.check_visible(restriction)

    # ----------------------------------------------------------------- per family

    @th.no_grad()
    def logits(self, visible: Any) -> th.Tensor:
        """Discrete actions: the policy's logits (DQN: Q-values) ``(batch, n_actions)``."""
        if isinstance(self.policy, BasePolicy):
            return policy_utilities(self.policy, to_tensor(visible))
        return self.policy(visible_features(self.visible_space, visible))

    def probs(self, visible: Any) -> np.ndarray:
        """Discrete actions: action probabilities ``(batch, n_actions)`` for a batch of visible parts."""
        utilities = self.logits(visible).double().numpy()
        if self.nvec is None:
            return utilities_to_policy(utilities, self.mode, self.temperature)
        parts = np.split(utilities, np.cumsum(self.nvec)[:-1], axis=-1)
        return np.concatenate([utilities_to_policy(u, self.mode, self.temperature) for u in parts], axis=-1)

    @th.no_grad()
    def gaussian(self, visible: Any) -> tuple[np.ndarray, np.ndarray]:
        """Box actions: ``(mean, log_std)``, each float32 ``(batch, d)``.

        A PPO/A2C policy: μ = ``action_net(latent_pi)``, log σ its state-independent ``log_std``
        broadcast; a SAC policy: μ and log σ (clamped as SAC clamps it) from
        ``actor.get_action_dist_params``, the Gaussian before the tanh; a network: its two halves."""
        d = self.action_dim
        if not isinstance(self.policy, BasePolicy):
            mean, log_std = self.policy(visible_features(self.visible_space, visible)).split(d, dim=-1)
            return mean.numpy(), log_std.numpy()
        obs, _ = self.policy.obs_to_tensor(to_numpy(visible))  # SB3's own preprocessing and batching
        if self.squashed:
            mean, log_std, _ = self.policy.actor.get_action_dist_params(obs)
        else:
            mean = self.policy.get_distribution(obs).distribution.mean
            log_std = self.policy.log_std.expand_as(mean)
        return mean.reshape(-1, d).float().numpy(), log_std.reshape(-1, d).float().numpy()

    def check_actions(self, action_space: gym.Space) -> None:
        """Raise unless ``action_space`` is the teacher's: the same discrete sizes, or a Box of the same
        dimension and bounds."""
        if self.box is not None:
            self._check_box(action_space)
            return
        if not isinstance(action_space, spaces.Discrete | spaces.MultiDiscrete):
            raise RlimmError(discrete_only(self.name, action_space))
        sizes = action_sizes(action_space)
        mine = self.nvec or [self.n_actions]
        if mine != sizes:
            env = sizes[0] if isinstance(action_space, spaces.Discrete) else action_space
            ours = mine[0] if len(mine) == 1 else f"MultiDiscrete({mine})"
            raise RlimmError(f"teacher '{self.name}' has {ours} actions but the environment has {env}")

    def _check_box(self, action_space: gym.Space) -> None:
        if not isinstance(action_space, spaces.Box):
            raise RlimmError(
                f"Gaussian teacher '{self.name}' needs a Box action space, got {action_space} "
                "(Discrete actions take a discrete teacher)"
            )
        dim = int(np.prod(action_space.shape))
        if dim != self.action_dim:
            raise RlimmError(
                f"teacher '{self.name}' has {self.action_dim} action dimension(s) but the environment "
                f"has {dim}"
            )
        low = np.asarray(action_space.low, dtype=np.float32).reshape(-1)
        high = np.asarray(action_space.high, dtype=np.float32).reshape(-1)
        # The same Gaussian means other actions under other bounds (clipping, or SAC's rescaling).
        if not (np.allclose(low, self.low) and np.allclose(high, self.high)):
            raise RlimmError(
                f"teacher '{self.name}' was built for action bounds low {_bounds(self.low)}, high "
                f"{_bounds(self.high)}, but the environment has low {_bounds(low)}, high {_bounds(high)}"
            )

    def check_visible(self, restriction: Any) -> None:
        """Raise unless the teacher's input is the restriction's visible part."""
        check_visible(self.name, self.visible_space, restriction)


def policy_teacher(
    model: BaseAlgorithm,
    restriction: Any = None,
    mode: str = "softmax",
    temperature: float = 1.0,
    name: str | None = None,
) -> TabularTeacher | PolicyTeacher:
    """Teacher from an SB3 model with discrete actions that acts on the *visible part* (e.g. trained on
    :class:`~rlimm.envs.VisibleObservation`): for ``Discrete(C)`` observations and Discrete actions its
    policy at every context, as a table; otherwise a :class:`PolicyTeacher` that evaluates the policy.

    Utilities are the model's action log-probabilities (Q-values for DQN): ``softmax`` with
    temperature 1 is the model's own policy, ``argmax`` its greedy policy.

    :param restriction: if given, the model's observation space must be its visible part.
    """
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
    _sb3_gaussian_squashed(policy)  # refuse what has no Gaussian per state, before copying it
    name = name or f"{type(model).__name__.lower()}-gaussian"
    teacher = PolicyTeacher(policy, policy.observation_space, policy.action_space, name=name)
    if restriction is not None:
        teacher.check_visible(restriction)
    if action_space is not None:
        teacher.check_actions(action_space)
    return teacher
