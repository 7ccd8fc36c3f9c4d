"""One run of the RL experiment: the agent of a config (:func:`build_agent`) trained and evaluated at
each budget (:func:`run_budgets`). Shared by ``compare`` (:func:`run_one`), ``train`` and ``tune``; the
envs and the evaluation protocol are :mod:`rlimm.rl.environments`, the teacher
:mod:`rlimm.rl.teacher_builder`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

import rlimm.envs  # noqa: F401  (registers the environments)
from rlimm.agents.registry import algorithm_class, check_kwargs
from rlimm.agents.teachers import Teacher
from rlimm.common.device import as_device
from rlimm.envs.restrictions import Restriction
from rlimm.errors import RlimmError
from rlimm.rl.config import AlgoConfig, CompareConfig, InductionConfig
from rlimm.rl.environments import (
    EVAL_SEED_OFFSET,
    acting,
    curve_scorer,
    env_name,
    evaluate,
    make_env,
    make_restriction,
    make_training_env,
)
from rlimm.rl.evaluation import EvaluationCallback
from rlimm.rl.hidden_part import measure_run
from rlimm.rl.matrix import RunSpec
from rlimm.rl.teacher_builder import make_teacher, teacher_label, with_trust_score
from rlimm.rl.zoo import constructor_kwargs


def build_agent(
    algo: AlgoConfig,
    env: gym.Env | VecEnv,
    regularizer: str,
    teacher: Teacher | None,
    restriction: Restriction | None,
    teacher_coef: Any,
    seed: int | None = None,
    tensorboard_log: str | None = None,
    device: torch.device | str | None = None,
    induction: InductionConfig | None = None,
) -> BaseAlgorithm:
    """An rlimm agent of ``algo`` on ``env`` (one env, or the vectorised one of
    :func:`make_training_env`) with its regulariser, teacher and λ (``teacher_coef``), on ``device``
    (``None``: the algorithm's default, or ``algo.kwargs.device``). ``algo.kwargs`` in the RL Zoo's
    forms (``lin_<x>``, ``dict(...)`` strings) are turned into objects first."""
    check_kwargs(algo.name, algo.kwargs)
    if algo.name == "sac" and not isinstance(env.action_space, gym.spaces.Box):
        raise RlimmError(
            f"'algo.name': sac needs a Box (continuous) action space; {env_name(env)} has "
            f"{env.action_space} (use reinforce, ppo or a2c)"
        )
    kwargs = constructor_kwargs(algo.kwargs)
    if device is not None:
        if "device" in kwargs:
            raise RlimmError(
                "'algo.kwargs.device' and 'device' are both set; give the device once, as the top-level "
                "'device' key (or --device)"
            )
        kwargs["device"] = device
    try:
        return algorithm_class(algo.name)(
            "MlpPolicy",
            env,
            regularizer=regularizer,
            teacher=teacher,
            restriction=restriction,
            teacher_coef=teacher_coef,
            induction=induction.settings() if induction is not None else None,
            seed=seed,
            tensorboard_log=tensorboard_log,
            **kwargs,
        )
    except RlimmError:
        raise
    except (TypeError, ValueError, AssertionError) as err:
        raise RlimmError(
            f"bad 'algo.kwargs' {algo.kwargs} for {algo.name}: {type(err).__name__}: {err}"
        ) from None


def run_one(
    config: CompareConfig,
    spec: RunSpec,
    tensorboard_log: str | None = None,
    teacher: Teacher | None = None,
    device: torch.device | str | None = None,
) -> dict:
    """Train one agent and evaluate it; returns one row of ``results.csv`` (see :func:`run_budgets`)."""
    return run_budgets(config, [spec], tensorboard_log, teacher, device)[0]


def run_budgets(
    config: CompareConfig,
    specs: list[RunSpec],
    tensorboard_log: str | None = None,
    teacher: Teacher | None = None,
    device: torch.device | str | None = None,
    on_checkpoint: Callable[[int, BaseAlgorithm], None] | None = None,
) -> list[dict]:
    """Train one agent for the longest budget of ``specs`` (runs that differ only in their budget)
    and evaluate, for each budget, the model state a run for that budget ends with
    (:class:`~rlimm.rl.evaluation.EvaluationCallback`); returns one row of ``results.csv`` per spec,
    in the order of ``specs``. With ``evaluation.every`` the row of the longest budget holds the
    learning curve (``curve``: :class:`~rlimm.rl.evaluation.CurvePoint` s; the others an empty one).

    :param teacher: the restricted teacher (built from the config when ``None`` and needed).
    :param device: the agent's torch device (``None``: the config's ``device``); a name such as
        ``auto`` is resolved here, on the machine that trains (a cluster worker may have a GPU that
        the driver lacks).
    :param on_checkpoint: called with each budget's timesteps and the model before it is evaluated.
    """
    start = time.perf_counter()
    first = specs[0]
    if {(s.method, s.seed, s.lambda_ratio) for s in specs} != {
        (first.method, first.seed, first.lambda_ratio)
    }:
        raise RlimmError("run_budgets: the runs must differ in their budget only")
    longest = max(specs, key=lambda s: s.budget)
    timesteps = {s.budget: config.updates_and_timesteps(s.budget)[1] for s in specs}
    env = make_env(config.env, config.env.episode_steps)
    restriction = make_restriction(config, env)
    # `none` trains without the teacher but is measured against it (the runner hands it to every run).
    measured_against = teacher
    if first.method == "none":
        teacher = None
    elif teacher is None:
        teacher = measured_against = make_teacher(config)
    device = as_device(config.device if device is None else device)
    config = with_trust_score(config, teacher)  # a no-op when the runner measured it already
    model = build_agent(
        config.algo,
        make_training_env(config, first.seed),
        first.method,
        teacher,
        restriction,
        config.teacher_coef(longest),
        first.seed,
        tensorboard_log,
        device,
        config.induction,
    )
    ev = config.evaluation
    eval_seed = first.seed + EVAL_SEED_OFFSET

    def score(agent: BaseAlgorithm) -> np.ndarray:
        # A fresh env per evaluation: each starts from the same seeded reset as a final evaluation.
        return evaluate(
            acting(agent), make_env(config.env), ev.episodes, ev.steps, eval_seed, ev.deterministic
        )

    callback = EvaluationCallback(
        score,
        ev.every,
        sorted(set(timesteps.values())),
        start,
        on_checkpoint,
        curve_scorer(config.env, ev, eval_seed),
    )
    model.learn(
        timesteps[longest.budget],
        callback=callback,
        tb_log_name=f"{config.algo.name}_{first.method}_b{longest.budget}_s{first.seed}",
    )
    model.get_env().close()  # a SubprocVecEnv's workers end with the run
    checkpoints = {c.timesteps: c for c in callback.finish(model)}
    # At the longest budget only: the learner's induced policy against the teacher (measures.csv).
    measures = measure_run(
        model,
        measured_against,
        restriction,
        config.induction.settings(),
        make_env(config.env),
        first.seed,
    )
    label = teacher_label(config) if teacher else ""
    rows = []
    for spec in specs:
        c = checkpoints[timesteps[spec.budget]]
        rows.append(
            {
                **asdict(spec),
                "algo": config.algo.name,
                "teacher": label,
                "updates": config.updates_and_timesteps(spec.budget)[0],
                "timesteps": timesteps[spec.budget],
                "score": float(c.returns.mean()),
                "score_std": float(c.returns.std()),
                "train_seconds": round(c.train_seconds, 3),
                "curve": callback.curve if spec is longest else [],
                "measures": measures if spec is longest else None,
            }
        )
    return rows
