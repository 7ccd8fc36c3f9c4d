"""One run of the RL experiment: build env, restriction, teacher and agent from a config, train,
evaluate. Shared by ``compare`` (:func:`run_one`), ``train``, ``teacher`` and ``tune``."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

import rlimm.envs  # noqa: F401  (registers the environments)
from rlimm.agents.registry import algorithm_class, check_kwargs
from rlimm.agents.teacher_files import load_teacher
from rlimm.agents.teachers import (
    TabularTeacher,
    load_model,
    policy_teacher,
    pomdp_teacher,
    train_restricted_teacher,
)
from rlimm.envs.restriction import FactoredRestriction
from rlimm.errors import RlimmError
from rlimm.rl.config import AlgoConfig, CompareConfig, EnvConfig, RunSpec, TrainConfig


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
    teacher_coef: float,
    seed: int | None = None,
    tensorboard_log: str | None = None,
) -> BaseAlgorithm:
    """An rlimm agent of ``algo`` on ``env`` with its regulariser, teacher and λ (``teacher_coef``)."""
    check_kwargs(algo.name, algo.kwargs)
    return algorithm_class(algo.name)(
        "MlpPolicy",
        env,
        regularizer=regularizer,
        teacher=teacher,
        restriction=restriction,
        teacher_coef=teacher_coef,
        seed=seed,
        tensorboard_log=tensorboard_log,
        **algo.kwargs,
    )


def teacher_label(config: CompareConfig) -> str:
    """A short name of the configured teacher for results tables."""
    t = config.teacher
    return f"file:{Path(t.path).name}" if t.solver == "file" else f"{t.solver}-{t.policy}"


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
    updates, timesteps = config.updates_and_timesteps(spec.budget)
    episode_steps = config.env.episode_steps
    env = make_env(config.env, episode_steps)
    restriction = make_restriction(config, env)
    if spec.method == "none":
        teacher = None
    elif teacher is None:
        teacher = make_teacher(config)
    model = build_agent(
        config.algo, env, spec.method, teacher, restriction, spec.teacher_coef, spec.seed, tensorboard_log
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
