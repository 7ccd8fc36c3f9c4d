"""What a policy teacher's actions are, decided once when the teacher is built: a
:class:`CategoricalActions` (Discrete / MultiDiscrete actions) or a :class:`GaussianActions` (Box
actions), whose methods read the teacher's policy and act with it
(:class:`~rlimm.agents.teachers.policy.PolicyTeacher` only delegates to it).

- Discrete / MultiDiscrete actions: action probabilities (per dimension, concatenated: SB3's layout)
  from the policy's logits (DQN: its Q-values) by ``softmax`` at a temperature or ``argmax``.
- Box actions: a diagonal Gaussian N(μ(x̄), diag σ(x̄)²) over the d action dimensions, ``squashed`` or
  not:

  - ``False`` (SB3's PPO/A2C): the raw action a ~ N(μ, σ²), clipped to [low, high] when acting; SB3's
    log σ is a state-independent parameter, broadcast to ``(n, d)``.
  - ``True`` (SAC): the pre-tanh action u ~ N(μ, σ²), acted as a = low + (tanh u + 1)(high − low)/2.
    The squash is invertible, so the KL between two such policies equals the KL between their
    pre-squash Normals: the regulariser compares those (:mod:`rlimm.gaussian_kl`).

Which one an SB3 policy has is read from its class (:func:`sb3_squashed`, :func:`policy_utilities`),
never from the attributes it happens to have.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.dqn.policies import DQNPolicy
from stable_baselines3.sac.policies import SACPolicy

from rlimm.agents.teachers.base import (
    ActionFamily,
    act_categorical,
    action_sizes,
    discrete_only,
    to_numpy,
    to_tensor,
    visible_features,
)
from rlimm.agents.teachers.networks import VisibleMLP
from rlimm.agents.teachers.tabular import utilities_to_policy
from rlimm.errors import RlimmError


@th.no_grad()
def policy_utilities(policy: BasePolicy, obs: Any) -> th.Tensor:
    """What an SB3 policy prefers at a batch of (unpreprocessed) observations: its action logits
    (an ``ActorCriticPolicy``: PPO, A2C, REINFORCE) or its Q-values (a ``DQNPolicy``)."""
    if isinstance(policy, ActorCriticPolicy):
        distribution = policy.get_distribution(obs).distribution
        if isinstance(distribution, list):  # MultiDiscrete: one categorical per dimension, concatenated
            return th.cat([d.logits for d in distribution], dim=-1)
        return distribution.logits
    if isinstance(policy, DQNPolicy):
        return policy.q_net(obs)  # QNetwork.forward preprocesses the observation itself
    raise RlimmError(
        f"cannot read action preferences from {type(policy).__name__}; accepted: an ActorCriticPolicy "
        "(PPO, A2C, REINFORCE) or a DQNPolicy"
    )


def sb3_squashed(policy: BasePolicy) -> bool:
    """Whether an SB3 policy's Gaussian is SAC's (a ``SACPolicy``, pre-tanh: ``True``) or a PPO/A2C
    diagonal Gaussian (an ``ActorCriticPolicy`` with a ``DiagGaussianDistribution``: ``False``); raise
    for anything else, gSDE included."""
    if not isinstance(policy.action_space, spaces.Box):
        raise RlimmError(f"Gaussian teachers need a Box action space, got {policy.action_space}")
    sac = isinstance(policy, SACPolicy)
    if (sac and policy.actor.use_sde) or (isinstance(policy, ActorCriticPolicy) and policy.use_sde):
        # gSDE's noise comes from weights resampled every few steps, not a fixed Gaussian per state.
        raise RlimmError(
            f"{type(policy).__name__} uses gSDE (use_sde=True), which Gaussian teachers do not support; "
            "train the teacher with use_sde=False"
        )
    if sac:
        return True
    # Exactly the diagonal Gaussian: SAC's squashed subclass has no place in an actor-critic policy.
    if isinstance(policy, ActorCriticPolicy) and type(policy.action_dist) is DiagGaussianDistribution:
        return False
    raise RlimmError(
        f"{type(policy).__name__} has no Gaussian action distribution; accepted: a PPO/A2C "
        "ActorCriticPolicy with a DiagGaussianDistribution, or a SAC policy (SACPolicy)"
    )


def to_action(u: np.ndarray, low: np.ndarray, high: np.ndarray, squashed: bool) -> np.ndarray:
    """The environment's action for Gaussian draws ``u`` ``(n, d)``: ``low + (tanh u + 1)(high − low)/2``
    when ``squashed`` (SAC's ``unscale_action``), else ``u`` clipped to the bounds (SB3's PPO/A2C)."""
    if squashed:
        return low + (np.tanh(u) + 1.0) * 0.5 * (high - low)
    return np.clip(u, low, high)


def _bounds(a: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in a) + "]"


class CategoricalActions:
    """Discrete actions (``nvec`` ``None``) or MultiDiscrete ones (``nvec``: the actions of each
    dimension, whose probabilities are concatenated, each dimension's summing to one).

    Its methods take the teacher, whose ``policy``, ``visible_space``, ``mode`` and ``temperature``
    they read.
    """

    #: Box actions only (:class:`GaussianActions`).
    box: spaces.Box | None = None

    def __init__(self, n_actions: int, nvec: list[int] | None = None) -> None:
        if nvec is not None and sum(nvec) != int(n_actions):
            raise RlimmError(f"n_actions ({n_actions}) must be the sum of nvec {list(nvec)}")
        self.n_actions = int(n_actions)
        self.nvec = None if nvec is None or len(nvec) == 1 else [int(n) for n in nvec]

    @property
    def family(self) -> ActionFamily:
        return ActionFamily.CATEGORICAL if self.nvec is None else ActionFamily.MULTI_CATEGORICAL

    @property
    def n_params(self) -> int:
        return self.n_actions

    def record(self) -> dict[str, Any]:
        """What a teacher file keeps of these actions (JSON-native)."""
        return {"n_actions": self.n_actions, "nvec": self.nvec}

    @th.no_grad()
    def logits(self, teacher: Any, visible: Any) -> th.Tensor:
        """The policy's logits (DQN: Q-values) ``(batch, n_actions)``."""
        if isinstance(teacher.policy, BasePolicy):
            return policy_utilities(teacher.policy, to_tensor(visible))
        return teacher.policy(visible_features(teacher.visible_space, visible))

    def probs(self, teacher: Any, visible: Any) -> np.ndarray:
        """float64 action probabilities ``(batch, n_actions)``, per dimension for MultiDiscrete."""
        utilities = self.logits(teacher, visible).double().numpy()
        if self.nvec is None:
            return utilities_to_policy(utilities, teacher.mode, teacher.temperature)
        parts = np.split(utilities, np.cumsum(self.nvec)[:-1], axis=-1)
        return np.concatenate(
            [utilities_to_policy(u, teacher.mode, teacher.temperature) for u in parts], axis=-1
        )

    def params(self, teacher: Any, visible: Any) -> np.ndarray:
        return np.asarray(self.probs(teacher, visible), dtype=np.float32)

    def act(self, teacher: Any, visible: Any, rng: np.random.Generator, deterministic: bool) -> np.ndarray:
        return act_categorical(self.probs(teacher, visible), self.nvec, rng, deterministic)

    def check_actions(self, name: str, action_space: gym.Space) -> None:
        """Raise unless ``action_space`` has the same discrete sizes."""
        if not isinstance(action_space, spaces.Discrete | spaces.MultiDiscrete):
            raise RlimmError(discrete_only(name, action_space))
        sizes = action_sizes(action_space)
        mine = self.nvec or [self.n_actions]
        if mine != sizes:
            env = sizes[0] if isinstance(action_space, spaces.Discrete) else action_space
            ours = mine[0] if len(mine) == 1 else f"MultiDiscrete({mine})"
            raise RlimmError(f"teacher '{name}' has {ours} actions but the environment has {env}")


class GaussianActions:
    """Box actions: a diagonal Gaussian over the ``d = prod(box.shape)`` flat action dimensions (SB3
    flattens Box actions), ``squashed`` (SAC) or not (PPO/A2C); see the module docstring."""

    #: Discrete actions only (:class:`CategoricalActions`).
    nvec: list[int] | None = None

    def __init__(self, box: spaces.Box, squashed: bool) -> None:
        self.box = box
        self.low = np.asarray(box.low, dtype=np.float32).reshape(-1)
        self.high = np.asarray(box.high, dtype=np.float32).reshape(-1)
        self.action_dim = len(self.low)
        self.squashed = bool(squashed)

    @property
    def family(self) -> ActionFamily:
        return ActionFamily.SQUASHED_GAUSSIAN if self.squashed else ActionFamily.GAUSSIAN

    @property
    def n_params(self) -> int:
        return 2 * self.action_dim

    def record(self) -> dict[str, Any]:
        """What a teacher file keeps of these actions (JSON-native)."""
        return {
            "action_dim": self.action_dim,
            "squashed": self.squashed,
            "low": self.low.tolist(),
            "high": self.high.tolist(),
        }

    @th.no_grad()
    def gaussian(self, teacher: Any, visible: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, log_std)``, each float32 ``(batch, d)``.

        A PPO/A2C policy: μ = ``action_net(latent_pi)``, log σ its state-independent ``log_std``
        broadcast; a SAC policy: μ and log σ (clamped as SAC clamps it) from
        ``actor.get_action_dist_params``, the Gaussian before the tanh; a network: its two halves."""
        d, policy = self.action_dim, teacher.policy
        if not isinstance(policy, BasePolicy):
            mean, log_std = policy(visible_features(teacher.visible_space, visible)).split(d, dim=-1)
            return mean.numpy(), log_std.numpy()
        obs, _ = policy.obs_to_tensor(to_numpy(visible))  # SB3's own preprocessing and batching
        if self.squashed:
            mean, log_std, _ = policy.actor.get_action_dist_params(obs)
        else:
            mean = policy.get_distribution(obs).distribution.mean
            log_std = policy.log_std.expand_as(mean)
        return mean.reshape(-1, d).float().numpy(), log_std.reshape(-1, d).float().numpy()

    def params(self, teacher: Any, visible: Any) -> np.ndarray:
        mean, log_std = self.gaussian(teacher, visible)
        return np.concatenate([mean, log_std], axis=-1).astype(np.float32)

    def act(self, teacher: Any, visible: Any, rng: np.random.Generator, deterministic: bool) -> np.ndarray:
        mean, log_std = self.gaussian(teacher, visible)
        u = mean if deterministic else mean + np.exp(log_std) * rng.standard_normal(mean.shape)
        return to_action(u, self.low, self.high, self.squashed).astype(np.float32)

    def check_actions(self, name: str, action_space: gym.Space) -> None:
        """Raise unless ``action_space`` is a Box of the same dimension and bounds."""
        if not isinstance(action_space, spaces.Box):
            raise RlimmError(
                f"Gaussian teacher '{name}' needs a Box action space, got {action_space} "
                "(Discrete actions take a discrete teacher)"
            )
        dim = int(np.prod(action_space.shape))
        if dim != self.action_dim:
            raise RlimmError(
                f"teacher '{name}' has {self.action_dim} action dimension(s) but the environment has {dim}"
            )
        low = np.asarray(action_space.low, dtype=np.float32).reshape(-1)
        high = np.asarray(action_space.high, dtype=np.float32).reshape(-1)
        # The same Gaussian means other actions under other bounds (clipping, or SAC's rescaling).
        if not (np.allclose(low, self.low) and np.allclose(high, self.high)):
            raise RlimmError(
                f"teacher '{name}' was built for action bounds low {_bounds(self.low)}, high "
                f"{_bounds(self.high)}, but the environment has low {_bounds(low)}, high {_bounds(high)}"
            )


def actions_of(
    policy: th.nn.Module, actions: int | spaces.Box, nvec: list[int] | None, squashed: bool | None
) -> CategoricalActions | GaussianActions:
    """The actions of a teacher of ``policy``: categorical over ``actions`` (an int) or Gaussian over a
    Box, squashed as an SB3 policy's class says (:func:`sb3_squashed`) or, for another network, as
    ``squashed`` says."""
    if not isinstance(actions, spaces.Box):
        return CategoricalActions(actions, nvec)
    if isinstance(policy, BasePolicy):
        own = sb3_squashed(policy)
        if squashed is not None and bool(squashed) != own:
            raise RlimmError(f"squashed={squashed} contradicts {type(policy).__name__}")
        squashed = own
    elif squashed is None:
        raise RlimmError("a Gaussian teacher's network does not say whether it is squashed: pass squashed")
    gaussian = GaussianActions(actions, squashed)
    if isinstance(policy, VisibleMLP) and policy.n_outputs != 2 * gaussian.action_dim:
        raise RlimmError(
            f"the network gives {policy.n_outputs // 2} action dimension(s) but the action space has "
            f"{gaussian.action_dim}"
        )
    return gaussian
