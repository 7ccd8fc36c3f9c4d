"""The *induced expert*: a full-state expert's action distribution projected onto the visible part over
the states the expert itself visits — E[π_expert(·|x) | x̄], the restricted model IMM's consistency
argument assumes (the analogue of the exact ``induced_optimal`` teacher where no model is known).

One loop for every action family (:func:`fit_induced_expert`): run the expert, record its distribution
at each visited state, then fit a :class:`~rlimm.agents.teachers.networks.VisibleMLP` on the visible
part by Adam over minibatches of the visited states.

- Discrete actions: for a partition restriction the average is exact per context (visit-weighted, a
  :class:`~rlimm.agents.teachers.tabular.TabularTeacher`); otherwise the MLP's softmax minimises
  KL(expert ‖ MLP) over the visited states.
- Box actions: the induced policy at x̄ is the mixture E[π(·|x) | x̄] of the expert's Gaussians; the fit
  minimises the visit-average KL(π(·|x) ‖ q(·|x̄)), whose minimiser over Gaussians q is the mixture's
  moment projection, per action dimension:

      μ_q(x̄) = E[μ(x) | x̄],     σ_q(x̄)² = E[σ(x)² + (μ(x) − μ_q(x̄))² | x̄]

  (setting the derivatives of E[log σ_q − log σ + (σ² + (μ − μ_q)²)/(2σ_q²) − ½] to zero).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy

from rlimm.agents.teachers.actions import policy_utilities, to_action
from rlimm.agents.teachers.base import (
    batch_of_one,
    short_space,
    space_layout,
    stack_observations,
    visible_features,
)
from rlimm.agents.teachers.networks import VisibleMLP
from rlimm.agents.teachers.policy import PolicyTeacher, gaussian_policy_teacher
from rlimm.agents.teachers.tabular import TabularTeacher, utilities_to_policy
from rlimm.envs.restrictions import PartitionRestriction
from rlimm.errors import RlimmError
from rlimm.gaussian_kl import gaussian_kl

#: Adam's learning rate and the minibatch size of every fit.
LEARNING_RATE = 3e-3
BATCH_SIZE = 1024


def fit_induced_expert(
    expert: BaseAlgorithm | Any,
    env: gym.Env,
    restriction: Any,
    samples: int = 20_000,
    seed: int = 0,
    epochs: int = 200,
    name: str = "induced-expert",
    *,
    squashed: bool | None = None,
    hidden: int = 64,
    report: dict | None = None,
) -> TabularTeacher | PolicyTeacher:
    """The induced expert of ``expert`` on ``env`` as ``restriction`` shows it (module docstring).

    The expert is run for ``samples`` steps, acting by its own distribution. Deterministic given
    ``seed`` (env reset, action draws, initialisation, minibatch order).

    :param expert: an SB3 model acting on the full observation. Box actions: PPO, A2C, SAC without
        gSDE, or any object with ``gaussian(observations) -> (mean, log_std)`` on full observations
        (then ``squashed`` is needed).
    :param samples: environment steps the expert is run for.
    :param epochs: passes over the visited states.
    :param squashed: Box actions: the expert's convention. An SB3 expert's policy class says it (a
        ``SACPolicy``: ``True``; given anyway, it must agree); any other expert needs it. The fitted
        teacher has the same.
    :param hidden: the width of the MLP's hidden layers.
    :param report: if given, receives ``hidden_kl``: the mean over the visited states of
        KL(π_expert(·|x) ‖ teacher(·|x̄)) — what the hidden part tells of the expert's action (0: nothing;
        the teacher is the expert), as far as the fit captures the induced policy — and ``states``.
    """
    report = {} if report is None else report
    report["states"] = samples
    if isinstance(env.action_space, spaces.Box):
        return _fit_gaussian(expert, env, restriction, samples, seed, epochs, squashed, name, hidden, report)
    if not isinstance(env.action_space, spaces.Discrete):
        raise RlimmError(f"teachers need a Discrete or Box action space, got {env.action_space}")
    return _fit_categorical(expert, env, restriction, samples, seed, epochs, name, hidden, report)


# --------------------------------------------------------------------------- the shared loop


def _visit(
    env: gym.Env, samples: int, seed: int, look: Callable[[Any], tuple[Any, Any]]
) -> tuple[list[Any], list[Any]]:
    """Run the expert for ``samples`` steps from ``env.reset(seed=seed)``: ``look(obs)`` gives what to
    record at ``obs`` and the action taken there. The visited observations and the records."""
    visited, records = [], []
    obs, _ = env.reset(seed=seed)
    for _ in range(samples):
        record, action = look(obs)
        visited.append(obs)
        records.append(record)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    return visited, records


def _minimise(
    net: VisibleMLP, n: int, epochs: int, seed: int, loss_of: Callable[[th.Tensor], th.Tensor], anneal: bool
) -> None:
    """Adam over ``epochs`` shuffled passes of minibatches of the ``n`` visited states, minimising
    ``loss_of(indices)``; with ``anneal`` the learning rate decays to zero (cosine) so that the last
    epochs settle on the minimum instead of jittering around it."""
    generator = th.Generator().manual_seed(seed)
    optimizer = th.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    steps = max(1, epochs * -(-n // BATCH_SIZE))
    schedule = th.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps) if anneal else None
    for _ in range(epochs):
        order = th.randperm(n, generator=generator)
        for start in range(0, n, BATCH_SIZE):
            loss = loss_of(order[start : start + BATCH_SIZE])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()


def _new_net(seed: int, n_inputs: int, n_outputs: int, hidden: int) -> VisibleMLP:
    """The network, initialised from ``seed`` without touching the caller's torch RNG."""
    with th.random.fork_rng():
        th.manual_seed(seed)
        return VisibleMLP(n_inputs, n_outputs, hidden)


# --------------------------------------------------------------------------- discrete actions


def _expert_probs(expert: BaseAlgorithm, obs: Any) -> np.ndarray:
    obs_t, _ = expert.policy.obs_to_tensor(obs)
    if isinstance(expert.policy, ActorCriticPolicy):  # the expert's own action probabilities
        with th.no_grad():
            return expert.policy.get_distribution(obs_t).distribution.probs.cpu().double().numpy()
    # DQN: greedy on its Q-values (policy_utilities refuses any other policy).
    return utilities_to_policy(policy_utilities(expert.policy, obs_t).cpu().double().numpy(), "argmax")


def _fit_categorical(
    expert: BaseAlgorithm,
    env: gym.Env,
    restriction: Any,
    samples: int,
    seed: int,
    epochs: int,
    name: str,
    hidden: int,
    report: dict,
) -> TabularTeacher | PolicyTeacher:
    n_actions = int(env.action_space.n)

    def look(obs: Any) -> tuple[np.ndarray, int]:
        probs = _expert_probs(expert, obs)[0]
        action, _ = expert.predict(obs, deterministic=False)
        return probs, int(action)

    visited, records = _visit(env, samples, seed, look)
    probs = np.asarray(records)
    visible = restriction.visible(stack_observations(visited))
    if isinstance(restriction, PartitionRestriction):  # exact per context, visit-weighted
        table = np.full((restriction.n_contexts, n_actions), 1.0 / n_actions)
        contexts = np.asarray(visible, dtype=np.int64).reshape(-1)
        sums = np.zeros_like(table)
        np.add.at(sums, contexts, probs)
        counts = np.bincount(contexts, minlength=restriction.n_contexts)
        seen = counts > 0
        table[seen] = sums[seen] / counts[seen, None]
        table /= table.sum(axis=1, keepdims=True)
        report["hidden_kl"] = categorical_kl(probs, table[contexts])
        return TabularTeacher(table, name)
    x = visible_features(restriction.visible_space, visible)
    net = _new_net(seed, x.shape[1], n_actions, hidden)
    target = th.as_tensor(probs, dtype=th.float32)

    def loss_of(idx: th.Tensor) -> th.Tensor:
        log_q = th.log_softmax(net(x[idx]), dim=-1)
        return -(target[idx] * log_q).sum(dim=1).mean()  # KL(expert ‖ net) up to a constant

    _minimise(net, len(target), epochs, seed, loss_of, anneal=False)
    with th.no_grad():
        fitted = th.softmax(net(x), dim=-1).double().numpy()
    report["hidden_kl"] = categorical_kl(probs, fitted)
    return PolicyTeacher(net, restriction.visible_space, n_actions, "softmax", 1.0, name)


def categorical_kl(p: np.ndarray, q: np.ndarray) -> float:
    """The mean over rows of KL(p ‖ q) for ``(N, A)`` probabilities (0 log 0 = 0; q floored at 1e-12)."""
    p = np.asarray(p, np.float64)
    ratio = np.where(p > 0, p / np.maximum(np.asarray(q, np.float64), 1e-12), 1.0)
    return float((p * np.log(ratio)).sum(axis=1).mean())


# --------------------------------------------------------------------------- Box actions


def _full_state_gaussian(expert: Any, env: gym.Env, squashed: bool | None) -> tuple[Any, bool]:
    """The expert as something with ``gaussian(full observations)``, and its convention (squashed or
    not). An SB3 model is wrapped (frozen), its convention read from its policy's class; any other
    object must have that method itself and the convention is ``squashed``."""
    if isinstance(expert, BaseAlgorithm):
        if space_layout(expert.observation_space) != space_layout(env.observation_space):
            raise RlimmError(
                f"the expert observes {short_space(expert.observation_space)} but the environment "
                f"observes {short_space(env.observation_space)} (an expert acts on the full observation)"
            )
        full = gaussian_policy_teacher(expert.policy, None, env.action_space, "expert")
        if squashed is not None and bool(squashed) != full.squashed:
            raise RlimmError(
                f"squashed={squashed} contradicts the expert, whose Gaussian is "
                f"{'before its tanh squash' if full.squashed else 'over the raw action'} "
                f"(squashed={full.squashed})"
            )
        return full, full.squashed
    # An expert that is not an SB3 model is duck-typed: anything with gaussian() (e.g. a test's oracle).
    if not callable(getattr(expert, "gaussian", None)):
        raise RlimmError(
            f"an expert must be an SB3 model (PPO, A2C, SAC) or have gaussian(observations); got "
            f"{type(expert).__name__}"
        )
    if squashed is None:
        raise RlimmError(
            f"the expert ({type(expert).__name__}, not an SB3 model) does not say whether its Gaussian "
            "is squashed: pass squashed=True or False"
        )
    return expert, bool(squashed)


def _fit_gaussian(
    expert: BaseAlgorithm | Any,
    env: gym.Env,
    restriction: Any,
    samples: int,
    seed: int,
    epochs: int,
    squashed: bool | None,
    name: str,
    hidden: int,
    report: dict,
) -> PolicyTeacher:
    if samples < 1 or epochs < 0:
        raise RlimmError(f"samples must be ≥ 1 and epochs ≥ 0, got samples={samples}, epochs={epochs}")
    restriction.check_space(env.observation_space)
    full, squashed = _full_state_gaussian(expert, env, squashed)
    low = np.asarray(env.action_space.low, np.float32).reshape(-1)
    high = np.asarray(env.action_space.high, np.float32).reshape(-1)
    d = len(low)
    rng = np.random.default_rng(seed)

    def look(obs: Any) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        mean, log_std = (np.asarray(v, np.float32) for v in full.gaussian(batch_of_one(obs)))
        if mean.shape != (1, d) or log_std.shape != (1, d):
            raise RlimmError(
                f"the expert's Gaussian has shapes {mean.shape}, {log_std.shape}; the environment "
                f"needs (1, {d})"
            )
        u = mean + np.exp(log_std) * rng.standard_normal((1, d))
        action = to_action(u, low, high, squashed).reshape(env.action_space.shape)
        return (mean[0], log_std[0]), action.astype(env.action_space.dtype)

    visited, records = _visit(env, samples, seed, look)
    x = visible_features(restriction.visible_space, restriction.visible(stack_observations(visited)))
    target_mean = th.as_tensor(np.stack([m for m, _ in records]))
    target_log_std = th.as_tensor(np.stack([s for _, s in records]))
    net = _new_net(seed, x.shape[1], 2 * d, hidden)
    with th.no_grad():
        std = x.std(dim=0) if len(x) > 1 else th.ones(x.shape[1])
        net.shift.copy_(x.mean(dim=0))
        net.scale.copy_(th.where(std > 1e-6, std, th.ones_like(std)))  # a constant feature stays as is
        # Start at the visit-average Gaussian: the fit then only learns how it varies with x̄.
        net.head.weight.mul_(0.1)
        net.head.bias.copy_(th.cat([target_mean.mean(dim=0), target_log_std.mean(dim=0)]))

    def loss_of(idx: th.Tensor) -> th.Tensor:
        q_mean, q_log_std = net.gaussian(x[idx])
        return gaussian_kl(target_mean[idx], target_log_std[idx], q_mean, q_log_std).mean()

    _minimise(net, len(x), epochs, seed, loss_of, anneal=True)
    with th.no_grad():
        fit_kl = float(gaussian_kl(target_mean, target_log_std, *net.gaussian(x)).mean())
    report["hidden_kl"] = fit_kl
    return PolicyTeacher(
        net, restriction.visible_space, env.action_space, name=name, squashed=squashed, fit_kl=fit_kl
    )
