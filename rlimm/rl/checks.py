"""What a config asks of its environment, checked before any training: :func:`check_against_env`.

Every command calls it first (``train`` through :func:`~rlimm.rl.training.prepare`, ``compare`` and
``tune`` through :func:`~rlimm.rl.comparison.preflight`, ``suite`` for every task before the first one is
timed, ``teacher`` before it builds one), because what follows can be long: building a teacher may
train an expert or a policy for minutes, and a bad algorithm argument found after that costs them.
What needs the teacher itself (its visible space, its action family) is checked once it is built.
"""

from __future__ import annotations

import warnings

import gymnasium as gym

from rlimm.agents.imm.regularizer import TeacherRegularizer
from rlimm.envs.restrictions import Restriction
from rlimm.rl.config import CompareConfig, TrainConfig
from rlimm.rl.environments import make_env, make_restriction
from rlimm.rl.runs import build_agent


def check_against_env(config: CompareConfig | TrainConfig, env: gym.Env | None = None) -> Restriction | None:
    """Check ``config`` against ``env`` (default: the config's env, built here), cheapest first, each
    failure a one-line :class:`~rlimm.errors.RlimmError` naming the key: the restriction (the visible
    fields exist in the observation; the induction method suits it), the algorithm (its arguments, the
    env's spaces: an agent without a teacher is built on the CPU and dropped), the induction settings
    against the restriction and the action space, the evaluation cadence against the budgets and, for a
    comparison, its run matrix. No teacher is built. Returns the restriction (``None`` without one)."""
    env = env if env is not None else make_env(config.env, config.env.episode_steps)
    restriction = make_restriction(config, env)
    # On one env, not algo.n_envs of them: SB3's warnings about the rollout size would be wrong here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        build_agent(config.algo, env, "none", None, None, 0.0, device="cpu")
    if restriction is not None:
        TeacherRegularizer("imm", restriction, env.action_space, config.induction.settings())
    if isinstance(config, CompareConfig):
        config.evaluation.check_every(min(config.updates_and_timesteps(b)[1] for b in config.budgets))
        config.runs()
    else:
        config.evaluation.check_every(config.n_timesteps)
    return restriction
