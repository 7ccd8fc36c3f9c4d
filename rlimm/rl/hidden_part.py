"""How much the hidden part matters to a learner at the end of training, and how its induced policy
fits the teacher (issue 27's measures, one row of ``measures.csv`` per run).

On N states the trained learner visits (its own sampled actions, a fresh env seeded apart from the
evaluation's), with x̄ the visible part, π the learner, Q̄ its induced policy and P̄ the teacher:

- ``induced_kl`` = mean over the states of KL(P̄(·|x̄) ‖ Q̄(·|x̄)) — what IMM minimises; small when the
  learner *averaged over the hidden part* acts like the teacher.
- ``pointwise_kl`` = mean of KL(P̄(·|x̄) ‖ π(·|x)) — what naive minimises; small only when the learner
  copies the teacher at every state.
- ``hidden_left`` — the share of the hidden part left once the visible part is known, on these states:
  with k nearest neighbours in standardised visible space (the induction's own draw, same k and
  exclusion), the mean over states of the variance of each hidden feature among a state's neighbours,
  over its variance among all N states, averaged over the hidden features. 1: the visible part says
  nothing of the hidden one; 0: it determines it — then Q̄ is π at each state and IMM cannot differ
  from naive. A partition of discrete states has no feature to take a variance of: there it is
  H(hidden | context) / H(hidden) of the visited states (the same 1 and 0).

Q̄ is estimated as during training (:class:`~rlimm.agents.imm.regularizer.TeacherRegularizer` with the
run's induction settings), here with the N states as its pool. Every random stream it touches is its
own: measuring changes no result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm

from rlimm.agents.common.hidden import hidden_left_of
from rlimm.agents.imm import draws as draws_
from rlimm.agents.imm.draws import Pool
from rlimm.agents.imm.observations import hidden_features, per_key
from rlimm.agents.imm.regularizer import TeacherRegularizer
from rlimm.agents.imm.settings import InductionSettings
from rlimm.agents.teachers import Teacher
from rlimm.envs.restrictions import PartitionRestriction, Restriction

#: States the learner is run for by default, and the seed offset of that run's env.
STATES, SEED_OFFSET = 2048, 3_000_017
#: The columns of ``measures.csv`` (after the run's key: method, budget, seed, lambda_ratio).
MEASURES = ("induced_kl", "pointwise_kl", "hidden_left", "states")


@dataclass(frozen=True)
class Visited:
    """States a policy visited: raw observations (the env's form, stacked), and each one's episode
    and step (for the induction's exclusion of a state's own episode)."""

    raw: Any
    episode: np.ndarray
    step: np.ndarray


def visit(model: BaseAlgorithm, env: gym.Env, states: int, seed: int) -> Visited:
    """Run ``model`` (its sampled actions, under ``VecNormalize`` as in training) on ``env`` for
    ``states`` steps from ``env.reset(seed=seed)``, keeping torch's and numpy's global random state as
    it was."""
    from rlimm.rl.environments import acting
    from rlimm.rl.evaluation import preserved_random_state

    actor = acting(model)
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    raw, episode, step = [], np.zeros(states, np.int64), np.zeros(states, np.int64)
    with preserved_random_state():
        th.manual_seed(seed)
        obs, _ = env.reset(seed=seed)
        ep = t = 0
        for i in range(states):
            raw.append(obs)
            episode[i], step[i] = ep, t
            action, _ = actor.predict(obs, deterministic=False)
            obs, _, terminated, truncated, _ = env.step(int(action) if discrete else action)
            t += 1
            if terminated or truncated:
                obs, _ = env.reset()
                ep, t = ep + 1, 0
    env.close()
    stacked = (
        {key: np.stack([o[key] for o in raw]) for key in raw[0]}
        if isinstance(raw[0], dict)
        else np.stack(raw)
    )
    return Visited(stacked, episode, step)


def measure(
    model: BaseAlgorithm,
    teacher: Teacher,
    restriction: Restriction,
    induction: InductionSettings | None,
    visited: Visited,
    seed: int = 0,
) -> dict[str, float]:
    """The module docstring's measures of ``model`` against ``teacher`` on ``visited``."""
    settings = InductionSettings.of(induction)
    device = model.device
    regularizer = TeacherRegularizer("imm", restriction, model.action_space, settings, seed, device)
    family = regularizer.family
    assert family is not None
    raw = visited.raw
    n = len(visited.episode)
    visible = restriction.visible(raw)
    teacher_params = th.as_tensor(
        np.asarray(teacher.params(visible), np.float32).reshape(n, -1), device=device
    )
    obs = _policy_observations(model, raw)
    trajectories = draws_.Trajectories(
        th.as_tensor(visited.episode, device=device), th.as_tensor(visited.step, device=device)
    )
    pool = Pool(obs, None, trajectories)
    contexts = (
        th.as_tensor(np.asarray(visible, np.int64).reshape(-1), device=device)
        if isinstance(restriction, PartitionRestriction)
        else None
    )
    with th.no_grad():
        params = family.normalise(model.action_params(obs))
        out = regularizer.compute(
            th.as_tensor(teacher_params, device=device),
            params,
            model.action_params,
            contexts=contexts,
            observations=obs,
            indices=th.arange(n, device=device),
            pool=pool,
            diagnostics=True,
        )
    if isinstance(restriction, PartitionRestriction):
        left = partition_hidden_left(restriction, np.asarray(raw).reshape(-1))
    elif regularizer.method == "knn":  # the draws the induced policy was just estimated with
        left = hidden_left(restriction, obs, regularizer.pool_draws(pool).draws.index)  # type: ignore[union-attr]
    else:
        ties = th.Generator(device=device).manual_seed(seed)
        left = hidden_left_of(restriction, obs, trajectories, settings, ties)
    return {"induced_kl": out.imm_kl, "pointwise_kl": out.naive_kl, "hidden_left": left, "states": n}


def _policy_observations(model: BaseAlgorithm, raw: Any) -> Any:
    """Raw observations as the policy's buffers hold them: normalised as in training, float32 tensors
    (a Discrete observation as a column of state indices)."""
    normalizer = model.get_vec_normalize_env()
    seen = normalizer.normalize_obs(raw) if normalizer is not None else raw

    def tensor(v: np.ndarray) -> th.Tensor:
        v = np.asarray(v, dtype=np.float32)
        return th.as_tensor(v.reshape(-1, 1) if v.ndim == 1 else v, device=model.device)

    return per_key(seen, tensor)


def hidden_left(restriction: Restriction, observations: Any, neighbours: th.Tensor) -> float:
    """:func:`~rlimm.agents.imm.draws.hidden_spread` of the hidden features of ``observations``
    (:func:`~rlimm.agents.imm.observations.hidden_features`) among each row's ``neighbours`` (N, k)."""
    return draws_.hidden_spread(hidden_features(restriction, observations), neighbours)


def partition_hidden_left(restriction: PartitionRestriction, states: np.ndarray) -> float:
    """H(hidden | context) / H(hidden) of the visited ``states`` of a partition (``nan`` when the
    hidden value never varies). A state's hidden value is its place among its context's members."""
    states = states.astype(np.int64)
    contexts = restriction.context_of[states]
    place = np.argmax(restriction.members[contexts] == states[:, None], axis=1)
    joint = np.zeros((restriction.n_contexts, restriction.n_hidden))
    np.add.at(joint, (contexts, place), 1.0)
    joint /= joint.sum()
    hidden = joint.sum(axis=0)
    h_hidden = _entropy(hidden)
    if h_hidden <= 1e-12:
        return float("nan")
    context = joint.sum(axis=1)
    return float((_entropy(joint.reshape(-1)) - _entropy(context)) / h_hidden)


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def measure_run(
    model: BaseAlgorithm,
    teacher: Teacher | None,
    restriction: Restriction | None,
    induction: InductionSettings | None,
    env: gym.Env,
    seed: int,
    states: int = STATES,
) -> dict[str, float] | None:
    """:func:`measure` on ``states`` states the model visits on ``env`` (reset with ``seed`` +
    :data:`SEED_OFFSET`); ``None`` without a teacher and a restriction to measure against."""
    if teacher is None or restriction is None:
        env.close()
        return None
    visited = visit(model, env, states, seed + SEED_OFFSET)
    return measure(model, teacher, restriction, induction, visited, seed)
