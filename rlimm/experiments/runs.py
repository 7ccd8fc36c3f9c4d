"""One run of a comparison: build env, restriction and teacher from a config, train, evaluate."""

from __future__ import annotations

import inspect
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

import rlimm.envs  # noqa: F401  (registers the environments)
from rlimm.agents.a2c import A2C
from rlimm.agents.ppo import PPO
from rlimm.agents.reinforce import REINFORCE
from rlimm.agents.teacher_files import load_teacher
from rlimm.agents.teachers import (
    TabularTeacher,
    load_model,
    policy_teacher,
    pomdp_teacher,
    train_restricted_teacher,
)
from rlimm.coefficients import ratio_to_lambda
from rlimm.envs.restriction import FactoredRestriction
from rlimm.errors import RlimmError
from rlimm.experiments.config import AlgoConfig, CompareConfig, EnvConfig

if TYPE_CHECKING:
    from rlimm.experiments.train_config import TrainConfig

_ALGOS = {"reinforce": REINFORCE, "ppo": PPO, "a2c": A2C}


def algo_class(name: str) -> type:
    try:
        return _ALGOS[name]
    except KeyError:
        raise RlimmError(f"unknown algorithm '{name}'; accepted: {', '.join(_ALGOS)}") from None


def make_env(env_config: EnvConfig, episode_steps: int | None = None) -> gym.Env:
    """The configured environment, with a time limit of ``episode_steps`` if given."""
    try:
        return gym.make(env_config.id, max_episode_steps=episode_steps, **env_config.kwargs)
    except gym.error.Error as err:
        raise RlimmError(f"cannot make environment '{env_config.id}': {err}") from None
    except TypeError as err:
        raise RlimmError(f"bad env.kwargs for '{env_config.id}': {err}") from None


def make_restriction(config: CompareConfig | TrainConfig, env: gym.Env) -> FactoredRestriction:
    return FactoredRestriction.for_env(env, config.restriction.visible)


def build_teacher(config: CompareConfig | TrainConfig) -> tuple[TabularTeacher, BaseAlgorithm | None]:
    """The configured restricted teacher: solved exactly, trained on the visible part, or loaded; with
    the SB3 model it was trained as (``solver: trained``; else ``None``)."""
    t = config.teacher
    env = make_env(config.env, config.env.episode_steps)
    restriction = make_restriction(config, env)
    model = None
    if t.solver == "file":
        saved = load_teacher(t.path)
        saved.check_visible(config.restriction.visible)
        teacher = saved.teacher
    elif t.solver == "model":
        teacher = policy_teacher(
            load_model(t.path), restriction, t.policy, t.temperature, f"model-{t.policy}"
        )
    elif t.solver == "trained":
        teacher, model = train_restricted_teacher(
            env, restriction, t.algo, t.timesteps, t.seed, t.policy, t.temperature, t.kwargs
        )
    else:
        teacher = pomdp_teacher(env, restriction, t.solver, t.policy, t.temperature, t.discount)
    teacher.check_compatible(restriction, env.action_space)
    return teacher, model


def teacher_description(config: CompareConfig | TrainConfig) -> dict:
    """What a teacher file records of the teacher of ``config``: environment, visible fields, settings."""
    env = {"env_id": config.env.id, "env_kwargs": config.env.kwargs, "visible": config.restriction.visible}
    return {**env, **config.teacher.model_dump()}


def make_teacher(config: CompareConfig | TrainConfig) -> TabularTeacher:
    """The configured restricted teacher (see :func:`build_teacher`).

    The runner builds it once, in the parent process, and hands the table to every run.
    """
    return build_teacher(config)[0]


def build_agent(
    algo: AlgoConfig,
    env: gym.Env,
    regularizer: str,
    teacher: TabularTeacher | None,
    restriction: FactoredRestriction | None,
    lambda_ratio: float,
    seed: int | None = None,
    tensorboard_log: str | None = None,
) -> BaseAlgorithm:
    """An rlimm agent of ``algo`` on ``env`` with its regulariser, teacher and λ (as a ratio)."""
    return algo_class(algo.name)(
        "MlpPolicy",
        env,
        regularizer=regularizer,
        teacher=teacher,
        restriction=restriction,
        teacher_coef=ratio_to_lambda(lambda_ratio),
        seed=seed,
        tensorboard_log=tensorboard_log,
        **algo.kwargs,
    )


def teacher_label(config: CompareConfig) -> str:
    """A short name of the configured teacher for results tables."""
    t = config.teacher
    return f"file:{Path(t.path).name}" if t.solver == "file" else f"{t.solver}-{t.policy}"


@dataclass(frozen=True)
class RunSpec:
    """One cell of the comparison matrix."""

    method: str
    budget: int
    seed: int
    lambda_ratio: float

    def key(self) -> tuple[str, int, int, str]:
        return (self.method, self.budget, self.seed, f"{self.lambda_ratio:.4f}")


def lambda_ratio_for(config: CompareConfig, method: str, budget: int, ratio: float | None) -> float:
    """The λ-ratio of a run: 0 for ``none``, else the given ratio or the config's data-size rule."""
    if method == "none":
        return 0.0
    if ratio is not None:
        return ratio
    return config.ratio_at(budget, updates_and_timesteps(config, budget)[0])


def steps_per_update(config: CompareConfig) -> int:
    """Environment steps per update: ``n_steps`` from the config or the algorithm's default."""
    if "n_steps" in config.algo.kwargs:
        return int(config.algo.kwargs["n_steps"])
    for klass in algo_class(config.algo.name).__mro__:
        init = klass.__dict__.get("__init__")
        param = inspect.signature(init).parameters.get("n_steps") if init else None
        if param is not None and param.default is not inspect.Parameter.empty:
            return int(param.default)
    raise RlimmError(f"cannot tell how many steps an update of {config.algo.name} takes")


def updates_and_timesteps(config: CompareConfig, budget: int) -> tuple[int, int]:
    per = steps_per_update(config)
    if config.budget_unit == "updates":
        return budget, budget * per
    return max(budget // per, 1), budget


def evaluate(model, env: gym.Env, episodes: int, steps: int, seed: int, deterministic: bool) -> np.ndarray:  # noqa: ANN001
    """Undiscounted return of each of ``episodes`` rollouts of at most ``steps`` steps."""
    returns = np.zeros(episodes)
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed if ep == 0 else None)
        for _ in range(steps):
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[ep] += float(reward)
            if terminated or truncated:
                break
    return returns


EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never reuse the training seed's start states


def run_one(
    config: CompareConfig,
    spec: RunSpec,
    tensorboard_log: str | None = None,
    teacher: TabularTeacher | None = None,
) -> dict:
    """Train one agent and evaluate it; returns one row of ``results.csv``.

    :param teacher: the restricted teacher (built from the config when ``None`` and needed).
    """
    start = time.perf_counter()
    updates, timesteps = updates_and_timesteps(config, spec.budget)
    episode_steps = config.env.episode_steps
    env = make_env(config.env, episode_steps)
    restriction = make_restriction(config, env)
    if spec.method == "none":
        teacher = None
    elif teacher is None:
        teacher = make_teacher(config)
    model = build_agent(
        config.algo, env, spec.method, teacher, restriction, spec.lambda_ratio, spec.seed, tensorboard_log
    )
    model.learn(timesteps, tb_log_name=f"{config.algo.name}_{spec.method}_b{spec.budget}_s{spec.seed}")
    train_seconds = time.perf_counter() - start
    ev = config.evaluation
    returns = evaluate(
        model,
        make_env(config.env),
        ev.episodes,
        ev.steps,
        spec.seed + EVAL_SEED_OFFSET,
        ev.deterministic,
    )
    return {
        **asdict(spec),
        "algo": config.algo.name,
        "teacher": teacher_label(config) if teacher else "",
        "updates": updates,
        "timesteps": timesteps,
        "score": float(returns.mean()),
        "score_std": float(returns.std()),
        "train_seconds": round(train_seconds, 3),
    }
