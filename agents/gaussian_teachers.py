"""Restricted teachers for continuous (``Box``) actions: diagonal Gaussians on the visible part.

A Gaussian teacher answers, for a batch of n visible parts x̄ (what ``restriction.visible`` returns), the
mean and log-std, each ``(n, d)``, of a diagonal Gaussian over the d action dimensions:

    P̄(·|x̄) = N(μ(x̄), diag σ(x̄)²)

``squashed`` says which variable the Gaussian is over:

- ``False`` (SB3's PPO/A2C): the raw action a ~ N(μ, σ²), clipped to [low, high] when acting; SB3's
  log σ is a state-independent parameter, broadcast to ``(n, d)``.
- ``True`` (SAC): the pre-tanh action u ~ N(μ, σ²), acted as a = low + (tanh u + 1)(high − low)/2. The
  squash is invertible, so the KL between two such policies equals the KL between their pre-squash
  Normals: the regulariser compares those (:mod:`rlimm.gaussian_kl`).

The teachers:

- :class:`GaussianPolicyTeacher`: a frozen copy of an SB3 policy trained on the visible-only env
  (:class:`~rlimm.envs.VisibleObservation`): :func:`gaussian_policy_teacher`,
  :func:`train_restricted_gaussian_teacher`.
- :class:`FittedGaussianTeacher`: the *induced expert* (:func:`fit_induced_gaussian_expert`). The induced
  policy at x̄ is the mixture E[π(·|x) | x̄] of the full-state expert's Gaussians over the states it
  visits; the fit minimises the visit-average KL(π(·|x) ‖ q(·|x̄)), whose minimiser over Gaussians q is
  the mixture's moment projection, per action dimension:

      μ_q(x̄) = E[μ(x) | x̄],     σ_q(x̄)² = E[σ(x)² + (μ(x) − μ_q(x̄))² | x̄]

  (setting the derivatives of E[log σ_q − log σ + (σ² + (μ − μ_q)²)/(2σ_q²) − ½] to zero), the Gaussian
  counterpart of the discrete induced expert's E[π(a|x) | x̄].

Files (:func:`save_gaussian_teacher`, :func:`load_gaussian_teacher`) are ``torch.save`` of a plain dict:
the network's state dict, what rebuilds it, and what the teacher was built for, in the same JSON ``meta``
fields as the discrete teacher files (:mod:`rlimm.agents.teacher_files`). Load them only from sources you
trust (pickle: the SB3 constructor arguments hold gymnasium spaces and classes).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import BasePolicy

from rlimm.agents.teacher_files import TeacherFile
from rlimm.agents.teachers import frozen_copy
from rlimm.common.files import atomic_write
from rlimm.errors import RlimmError
from rlimm.gaussian_kl import gaussian_kl

#: SB3 algorithms a restricted Gaussian teacher is trained with.
ALGOS = ("ppo", "sac", "a2c")
#: What ``format`` a Gaussian teacher file records, and its layout version.
FILE_FORMAT = "rlimm-gaussian-teacher"
FILE_VERSION = 1


@runtime_checkable
class GaussianTeacher(Protocol):
    """What the regulariser needs of a continuous-action teacher: the Gaussian at a batch of visible
    parts, the convention and bounds it was built for, and a check that it fits a restriction and an
    action space."""

    name: str
    action_dim: int
    squashed: bool
    low: np.ndarray
    high: np.ndarray

    def gaussian(self, visible: Any) -> tuple[np.ndarray, np.ndarray]: ...

    def check_compatible(self, restriction: Any, action_space: gym.Space) -> None: ...


# --------------------------------------------------------------------------- helpers


def _short(space: gym.Space) -> str:
    """A space for one-line messages: ``Box(3,)`` rather than every bound (numpy wraps long arrays)."""
    if isinstance(space, spaces.Box):
        return f"Box{space.shape}"
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {_short(v)}" for k, v in space.spaces.items()) + ")"
    return str(space)


def _layout(space: gym.Space) -> Any:
    """What a visible part looks like (bounds aside, as normalisation may change them), JSON-native so
    that a file can record it and compare it after loading."""
    if isinstance(space, spaces.Dict):
        return {k: _layout(v) for k, v in space.spaces.items()}
    if isinstance(space, spaces.Discrete):
        return ["Discrete", int(space.n)]
    if isinstance(space, spaces.MultiDiscrete):
        return ["MultiDiscrete", np.asarray(space.nvec).tolist()]
    return [type(space).__name__, list(space.shape or ())]


def _bounds(a: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in a) + "]"


def _numpy(visible: Any) -> Any:
    """A batch (array, tensor, or dict of them) as numpy, which SB3's ``obs_to_tensor`` expects."""
    if isinstance(visible, dict):
        return {k: _numpy(v) for k, v in visible.items()}
    if isinstance(visible, th.Tensor):
        return visible.detach().cpu().numpy()
    return np.asarray(visible)


def _flat(space: gym.Space, value: Any) -> th.Tensor:
    """A batch of ``space`` values as float features ``(n, f)``: Dict keys concatenated in the space's
    order, a Discrete value one-hot (an index is not a magnitude)."""
    if isinstance(space, spaces.Dict):
        return th.cat([_flat(sub, value[k]) for k, sub in space.spaces.items()], dim=1)
    x = th.as_tensor(_numpy(value))
    if isinstance(space, spaces.Discrete):
        index = x.reshape(-1).round().long() - int(space.start)
        return th.nn.functional.one_hot(index, int(space.n)).float()
    return x.reshape(x.shape[0], -1).float()


def _batch_of_one(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {k: np.asarray(v)[None] for k, v in obs.items()}
    return np.asarray(obs)[None]


def _stack(observations: list[Any]) -> Any:
    if isinstance(observations[0], dict):
        return {k: np.stack([np.asarray(o[k]) for o in observations]) for k in observations[0]}
    return np.stack([np.asarray(o) for o in observations])


def to_action(u: np.ndarray, low: np.ndarray, high: np.ndarray, squashed: bool) -> np.ndarray:
    """The environment's action for Gaussian draws ``u`` ``(n, d)``: ``low + (tanh u + 1)(high − low)/2``
    when ``squashed`` (SAC's ``unscale_action``), else ``u`` clipped to the bounds (SB3's PPO/A2C)."""
    if squashed:
        return low + (np.tanh(u) + 1.0) * 0.5 * (high - low)
    return np.clip(u, low, high)


# --------------------------------------------------------------------------- the shared part


class _BoxTeacher:
    """What both Gaussian teachers share: the bounds and visible space they were built for, the checks,
    and acting."""

    def __init__(self, visible_space: gym.Space, action_space: gym.Space, squashed: bool, name: str) -> None:
        if not isinstance(action_space, spaces.Box):
            raise RlimmError(f"Gaussian teachers need a Box action space, got {action_space}")
        self.name = name
        self.visible_space = visible_space
        # SB3 flattens Box actions: the Gaussian is over the d = prod(shape) flat dimensions.
        self.low = np.asarray(action_space.low, dtype=np.float32).reshape(-1)
        self.high = np.asarray(action_space.high, dtype=np.float32).reshape(-1)
        self.action_dim = len(self.low)
        self.squashed = bool(squashed)

    def gaussian(self, visible: Any) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def sample(
        self, visible: Any, rng: np.random.Generator | None = None, deterministic: bool = False
    ) -> np.ndarray:
        """Actions ``(n, d)`` within the bounds, as the teacher would act: the mean (``deterministic``) or
        a draw from the Gaussian, then squashed or clipped (:func:`to_action`). For the teacher's own
        score on the full task."""
        mean, log_std = self.gaussian(visible)
        if deterministic:
            u = mean
        else:
            u = mean + np.exp(log_std) * (rng or np.random.default_rng()).standard_normal(mean.shape)
        return to_action(u, self.low, self.high, self.squashed).astype(np.float32)

    def check_compatible(self, restriction: Any, action_space: gym.Space) -> None:
        """Raise :class:`RlimmError` unless the actions are the env's and the input the restriction's
        visible part."""
        self.check_actions(action_space)
        self.check_visible(restriction)

    def check_actions(self, action_space: gym.Space) -> None:
        """Raise unless ``action_space`` is a Box of the same dimension and bounds."""
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
        expected = getattr(restriction, "visible_space", None)
        if expected is not None and _layout(expected) != _layout(self.visible_space):
            raise RlimmError(
                f"teacher '{self.name}' observes {_short(self.visible_space)} but the restriction shows "
                f"{_short(expected)} (a teacher acts on the visible part only)"
            )


# --------------------------------------------------------------------------- SB3 policies


def _policy_kind(policy: Any) -> str:
    """``sac`` for a SAC policy, ``actor_critic`` for a PPO/A2C one with a diagonal Gaussian; else raise."""
    if not isinstance(policy, BasePolicy):
        raise RlimmError(f"a Gaussian policy teacher needs an SB3 policy, got {type(policy).__name__}")
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
        return "sac"
    # Exactly the diagonal Gaussian: SAC's squashed subclass has no place in an actor-critic policy.
    gaussian = type(getattr(policy, "action_dist", None)) is DiagGaussianDistribution
    if gaussian and hasattr(policy, "get_distribution"):
        return "actor_critic"
    raise RlimmError(
        f"{type(policy).__name__} has no Gaussian action distribution; accepted: a PPO/A2C "
        "ActorCriticPolicy with a DiagGaussianDistribution, or a SAC policy"
    )


class GaussianPolicyTeacher(_BoxTeacher):
    """A teacher that is an SB3 policy on the visible part, frozen: a deep copy on the CPU in eval mode,
    without gradients, so that training the source model afterwards does not change it.

    - PPO/A2C ``ActorCriticPolicy``: μ = ``action_net(latent_pi)``, log σ the state-independent
      ``log_std`` parameter broadcast to ``(n, d)``; ``squashed=False``.
    - SAC policy: μ and log σ (clamped as SAC clamps it) from ``actor.get_action_dist_params``, the
      Gaussian before the tanh; ``squashed=True``.

    :param policy: the SB3 policy (``model.policy``); it observes the visible part.
    """

    def __init__(self, policy: BasePolicy, name: str = "policy") -> None:
        self.kind = _policy_kind(policy)
        super().__init__(policy.observation_space, policy.action_space, self.kind == "sac", name)
        self.policy = frozen_copy(policy)

    @th.no_grad()
    def gaussian(self, visible: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, log_std)``, each ``(n, d)`` float32, for a batch of visible parts."""
        obs, _ = self.policy.obs_to_tensor(_numpy(visible))  # SB3's own preprocessing and batching
        if self.kind == "sac":
            mean, log_std, _ = self.policy.actor.get_action_dist_params(obs)
        else:
            mean = self.policy.get_distribution(obs).distribution.mean
            log_std = self.policy.log_std.expand_as(mean)
        d = self.action_dim
        return mean.reshape(-1, d).float().numpy(), log_std.reshape(-1, d).float().numpy()

    def _state(self) -> dict[str, Any]:
        cls = type(self.policy)
        return {
            "kind": "sb3_policy",
            "policy_class": f"{cls.__module__}:{cls.__qualname__}",
            # What SB3's own BasePolicy.save records to rebuild the policy.
            "constructor": self.policy._get_constructor_parameters(),
            "state_dict": self.policy.state_dict(),
        }

    @classmethod
    def _from_state(cls, data: dict[str, Any], name: str) -> GaussianPolicyTeacher:
        module, _, qualname = data["policy_class"].partition(":")
        policy_class = importlib.import_module(module)
        for part in qualname.split("."):
            policy_class = getattr(policy_class, part)
        if not (isinstance(policy_class, type) and issubclass(policy_class, BasePolicy)):
            raise RlimmError(f"{data['policy_class']} is not an SB3 policy class")
        policy = policy_class(**data["constructor"])
        policy.load_state_dict(data["state_dict"])
        return cls(policy, name)


def gaussian_policy_teacher(
    model_or_policy: BaseAlgorithm | BasePolicy,
    restriction: Any = None,
    action_space: gym.Space | None = None,
    name: str | None = None,
) -> GaussianPolicyTeacher:
    """Teacher from an SB3 model (PPO, A2C, SAC) or policy that acts on the *visible part* (trained on
    :class:`~rlimm.envs.VisibleObservation`).

    :param restriction: if given, the model's observation space must be its visible part.
    :param action_space: if given, the full env's action space, which the model's must match.
    """
    model = model_or_policy
    policy = model.policy if isinstance(model, BaseAlgorithm) else model
    teacher = GaussianPolicyTeacher(policy, name or f"{type(model).__name__.lower()}-gaussian")
    if restriction is not None:
        teacher.check_visible(restriction)
    if action_space is not None:
        teacher.check_actions(action_space)
    return teacher


def _algo_class(algo: str) -> type[BaseAlgorithm]:
    from rlimm.agents.teachers import _sb3_class

    if algo not in ALGOS:
        raise RlimmError(f"unknown Gaussian teacher algorithm '{algo}'; accepted: {', '.join(ALGOS)}")
    return _sb3_class(algo, "Gaussian teacher")


def train_restricted_gaussian_teacher(
    env: gym.Env,
    restriction: Any,
    algo: str = "ppo",
    total_timesteps: int = 20_000,
    seed: int = 0,
    algo_kwargs: dict | None = None,
) -> tuple[GaussianPolicyTeacher, BaseAlgorithm]:
    """Train an SB3 policy on the restricted view of ``env`` (only the visible part observed) and
    return it as a Gaussian teacher, with the trained model.

    :param algo: ``ppo``, ``sac`` or ``a2c`` (plain SB3 algorithms).
    """
    from rlimm.envs.wrappers import VisibleObservation

    if not isinstance(env.action_space, spaces.Box):
        raise RlimmError(f"Gaussian teachers need a Box action space, got {env.action_space}")
    cls = _algo_class(algo)
    kwargs = dict(algo_kwargs or {})
    if kwargs.get("use_sde"):  # refused by the teacher anyway: say so before training
        raise RlimmError("Gaussian teachers do not support gSDE: train the teacher with use_sde=False")
    partial = VisibleObservation(env, restriction)
    policy = "MultiInputPolicy" if isinstance(partial.observation_space, spaces.Dict) else "MlpPolicy"
    model = cls(policy, partial, seed=seed, **kwargs)
    model.learn(total_timesteps)
    return gaussian_policy_teacher(model, restriction, env.action_space, f"trained-{algo}"), model


# --------------------------------------------------------------------------- the induced expert


class GaussianMLP(th.nn.Module):
    """Flat visible features ``(n, f)`` → ``(mean, log_std)``, each ``(n, d)``: a tanh MLP on
    standardised inputs (``(x − shift) / scale``, buffers saved with the weights)."""

    def __init__(self, n_inputs: int, action_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.n_inputs, self.action_dim, self.hidden = int(n_inputs), int(action_dim), int(hidden)
        self.register_buffer("shift", th.zeros(self.n_inputs))
        self.register_buffer("scale", th.ones(self.n_inputs))
        self.body = th.nn.Sequential(
            th.nn.Linear(self.n_inputs, self.hidden),
            th.nn.Tanh(),
            th.nn.Linear(self.hidden, self.hidden),
            th.nn.Tanh(),
        )
        self.head = th.nn.Linear(self.hidden, 2 * self.action_dim)

    def forward(self, x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        out = self.head(self.body((x - self.shift) / self.scale))
        mean, log_std = out.split(self.action_dim, dim=-1)
        return mean, log_std


class FittedGaussianTeacher(_BoxTeacher):
    """A Gaussian teacher given by a :class:`GaussianMLP` on the visible part (the induced expert).

    :ivar fit_kl: the visit-average KL(expert ‖ teacher) at the end of the fit: what the visible part
        cannot explain of the expert (0 when the expert ignores the hidden part and the fit is exact).
    """

    def __init__(
        self,
        net: GaussianMLP,
        visible_space: gym.Space,
        action_space: gym.Space,
        squashed: bool,
        name: str = "induced-expert",
        fit_kl: float | None = None,
    ) -> None:
        super().__init__(visible_space, action_space, squashed, name)
        if net.action_dim != self.action_dim:
            raise RlimmError(
                f"the network gives {net.action_dim} action dimension(s) but the action space has "
                f"{self.action_dim}"
            )
        self.net = net.to("cpu").eval().requires_grad_(False)
        self.fit_kl = fit_kl

    @th.no_grad()
    def gaussian(self, visible: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, log_std)``, each ``(n, d)`` float32, for a batch of visible parts."""
        mean, log_std = self.net(_flat(self.visible_space, visible))
        return mean.numpy(), log_std.numpy()

    def _state(self) -> dict[str, Any]:
        net = self.net
        return {
            "kind": "mlp",
            "net": {"n_inputs": net.n_inputs, "action_dim": net.action_dim, "hidden": net.hidden},
            "state_dict": net.state_dict(),
            "fit_kl": self.fit_kl,
        }

    @classmethod
    def _from_state(cls, data: dict[str, Any], name: str) -> FittedGaussianTeacher:
        net = GaussianMLP(**data["net"])
        net.load_state_dict(data["state_dict"])
        box = spaces.Box(np.asarray(data["low"], np.float32), np.asarray(data["high"], np.float32))
        return cls(net, data["visible_space"], box, data["squashed"], name, data.get("fit_kl"))


def _full_state_gaussian(expert: Any, env: gym.Env) -> Any:
    """The expert as something with ``gaussian(full observations)``: an SB3 model is wrapped (frozen);
    any other object must have that method itself."""
    if isinstance(expert, BaseAlgorithm):
        if _layout(expert.observation_space) != _layout(env.observation_space):
            raise RlimmError(
                f"the expert observes {_short(expert.observation_space)} but the environment observes "
                f"{_short(env.observation_space)} (an expert acts on the full observation)"
            )
        wrapped = GaussianPolicyTeacher(expert.policy, "expert")
        wrapped.check_actions(env.action_space)
        return wrapped
    if not callable(getattr(expert, "gaussian", None)):
        raise RlimmError(
            f"an expert must be an SB3 model (PPO, A2C, SAC) or have gaussian(observations); got "
            f"{type(expert).__name__}"
        )
    return expert


def _fit(
    net: GaussianMLP, x: th.Tensor, mean: th.Tensor, log_std: th.Tensor, epochs: int, seed: int
) -> float:
    """Minimise the average KL(N(mean, σ²) ‖ net(x)) by Adam over minibatches; the final average KL."""
    n, batch = len(x), 1024
    steps = max(1, epochs * -(-n // batch))
    generator = th.Generator().manual_seed(seed)
    optimizer = th.optim.Adam(net.parameters(), lr=3e-3)
    # Decay to zero: the last epochs settle on the minimum instead of jittering around it.
    schedule = th.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    for _ in range(epochs):
        order = th.randperm(n, generator=generator)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            q_mean, q_log_std = net(x[idx])
            loss = gaussian_kl(mean[idx], log_std[idx], q_mean, q_log_std).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    with th.no_grad():
        return float(gaussian_kl(mean, log_std, *net(x)).mean())


def fit_induced_gaussian_expert(
    expert: BaseAlgorithm | Any,
    env: gym.Env,
    restriction: Any,
    samples: int = 20_000,
    seed: int = 0,
    epochs: int = 200,
    squashed: bool | None = None,
    name: str = "induced-expert",
    hidden: int = 64,
) -> FittedGaussianTeacher:
    """The *induced expert* for continuous actions: a full-state expert's Gaussian projected onto the
    visible part over the states the expert itself visits (see the module docstring).

    The expert is run for ``samples`` steps, acting by its own Gaussian (a draw, then squashed or
    clipped); at each visited state x its (pre-squash) mean and log-std are recorded, and a
    :class:`GaussianMLP` on x̄ is fitted by minimising the average closed-form
    KL(N(μ(x), σ(x)²) ‖ N(μ_q(x̄), σ_q(x̄)²)). Deterministic given ``seed`` (env reset, action draws,
    initialisation, minibatch order).

    :param expert: an SB3 model (PPO, A2C, SAC without gSDE) on the full observation, or any object with
        ``gaussian(observations) -> (mean, log_std)`` on full observations (and optionally ``squashed``).
    :param squashed: the expert's convention, read from the expert when it has one (SAC: ``True``); the
        fitted teacher has the same.
    :param samples: environment steps the expert is run for.
    :param epochs: passes over the visited states.
    """
    if not isinstance(env.action_space, spaces.Box):
        raise RlimmError(f"Gaussian teachers need a Box action space, got {env.action_space}")
    if samples < 1 or epochs < 0:
        raise RlimmError(f"samples must be ≥ 1 and epochs ≥ 0, got samples={samples}, epochs={epochs}")
    restriction.check_space(env.observation_space)
    full = _full_state_gaussian(expert, env)
    own = getattr(full, "squashed", None)
    if own is not None and squashed is not None and bool(own) != bool(squashed):
        raise RlimmError(
            f"squashed={squashed} contradicts the expert, whose Gaussian is "
            f"{'before its tanh squash' if own else 'over the raw action'} (squashed={bool(own)})"
        )
    if own is None and squashed is None:
        raise RlimmError(
            "the expert does not say whether its Gaussian is squashed: pass squashed=True or False"
        )
    squashed = bool(own if own is not None else squashed)
    low = np.asarray(env.action_space.low, np.float32).reshape(-1)
    high = np.asarray(env.action_space.high, np.float32).reshape(-1)
    d = len(low)

    rng = np.random.default_rng(seed)
    visited, means, log_stds = [], [], []
    obs, _ = env.reset(seed=seed)
    for _ in range(samples):
        mean, log_std = (np.asarray(v, np.float32) for v in full.gaussian(_batch_of_one(obs)))
        if mean.shape != (1, d) or log_std.shape != (1, d):
            raise RlimmError(
                f"the expert's Gaussian has shapes {mean.shape}, {log_std.shape}; the environment "
                f"needs (1, {d})"
            )
        visited.append(obs)
        means.append(mean[0])
        log_stds.append(log_std[0])
        u = mean + np.exp(log_std) * rng.standard_normal((1, d))
        action = to_action(u, low, high, squashed).reshape(env.action_space.shape)
        obs, _, terminated, truncated, _ = env.step(action.astype(env.action_space.dtype))
        if terminated or truncated:
            obs, _ = env.reset()

    x = _flat(restriction.visible_space, restriction.visible(_stack(visited)))
    target_mean = th.as_tensor(np.stack(means))
    target_log_std = th.as_tensor(np.stack(log_stds))
    with th.random.fork_rng():
        th.manual_seed(seed)
        net = GaussianMLP(x.shape[1], d, hidden)
    with th.no_grad():
        std = x.std(dim=0) if len(x) > 1 else th.ones(x.shape[1])
        net.shift.copy_(x.mean(dim=0))
        net.scale.copy_(th.where(std > 1e-6, std, th.ones_like(std)))  # a constant feature stays as is
        # Start at the visit-average Gaussian: the fit then only learns how it varies with x̄.
        net.head.weight.mul_(0.1)
        net.head.bias.copy_(th.cat([target_mean.mean(dim=0), target_log_std.mean(dim=0)]))
    fit_kl = _fit(net, x, target_mean, target_log_std, epochs, seed)
    return FittedGaussianTeacher(net, restriction.visible_space, env.action_space, squashed, name, fit_kl)


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class GaussianTeacherFile(TeacherFile):
    """A loaded Gaussian teacher file (``check_visible`` as the discrete teacher files).

    :param teacher: the teacher.
    :param meta: what it was built for: ``env_id``, ``restriction`` (its ``describe()``), ``name``, and
        any extra fields given when saving (``env_kwargs``, ``visible`` and the teacher settings, as the
        discrete teacher files record them).
    """

    teacher: GaussianPolicyTeacher | FittedGaussianTeacher
    meta: dict[str, Any] = field(default_factory=dict)

    def check_built_for(self, env_id: str | None = None, restriction: Any = None) -> None:
        """Raise :class:`RlimmError` if the file was built for another environment or restriction."""
        built_env = self.meta.get("env_id")
        if env_id is not None and built_env is not None and built_env != env_id:
            raise RlimmError(
                f"the teacher file was built for environment {built_env}, but the environment is {env_id}"
            )
        if restriction is None:
            return
        built = self.meta.get("restriction")
        shown = restriction.describe()
        if built is not None and built != shown:
            raise RlimmError(
                f"the teacher file was built for the restriction '{built}', but the restriction is '{shown}'"
            )
        self.teacher.check_visible(restriction)


def save_gaussian_teacher(
    teacher: GaussianPolicyTeacher | FittedGaussianTeacher,
    path: str | Path,
    env_id: str | None,
    restriction_description: str | Any,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``teacher`` to a ``.pt`` file, atomically: ``torch.save`` of a plain dict with the network's
    state dict and what rebuilds it, ``kind``, ``action_dim``, ``squashed``, ``low``, ``high``, the
    visible-space layout, and a JSON ``meta`` (``env_id``, ``restriction``, ``name``, plus ``meta``).

    :param restriction_description: ``restriction.describe()``, or the restriction itself.
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise RlimmError(f"a Gaussian teacher is saved as a .pt file, got {path}")
    describe = getattr(restriction_description, "describe", None)
    description = describe() if callable(describe) else restriction_description
    record = {**(meta or {}), "env_id": env_id, "restriction": description, "name": teacher.name}
    data = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "action_dim": teacher.action_dim,
        "squashed": teacher.squashed,
        "low": teacher.low.tolist(),
        "high": teacher.high.tolist(),
        "visible_shape": _layout(teacher.visible_space),
        "visible_space": teacher.visible_space,
        "meta": json.dumps(record),
        **teacher._state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: th.save(data, tmp))


_KINDS = {"sb3_policy": GaussianPolicyTeacher, "mlp": FittedGaussianTeacher}


def load_gaussian_teacher(
    path: str | Path, env_id: str | None = None, restriction: Any = None
) -> GaussianTeacherFile:
    """Read a file written by :func:`save_gaussian_teacher`; with ``env_id`` or ``restriction``, refuse
    it (:class:`RlimmError`) if it was built for another (:meth:`GaussianTeacherFile.check_built_for`)."""
    path = Path(path)
    if not path.is_file():
        raise RlimmError(f"teacher file not found: {path}")
    try:
        data = th.load(path, map_location="cpu", weights_only=False)
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise ValueError("no Gaussian teacher in it")
        if data.get("version") != FILE_VERSION or data.get("kind") not in _KINDS:
            raise ValueError(f"version {data.get('version')}, kind {data.get('kind')!r}")
        meta = json.loads(data["meta"])
        teacher = _KINDS[data["kind"]]._from_state(data, meta.get("name", path.stem))
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line message
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise RlimmError(f"{path} is not a Gaussian teacher file written by rlimm ({reason})") from None
    loaded = GaussianTeacherFile(teacher, meta)
    loaded.check_built_for(env_id, restriction)
    return loaded
