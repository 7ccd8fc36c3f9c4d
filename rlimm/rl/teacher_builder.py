"""The configured restricted teacher: one builder per ``teacher.solver`` (:data:`BUILDERS`), and the
teacher's own measurements (its score on the full env, its return in training units for the trust rule).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

import rlimm.envs  # noqa: F401  (registers the environments)
from rlimm.agents.teachers import (
    Teacher,
    fit_induced_expert,
    load_model,
    load_teacher,
    optimal_policy,
    paper_alpha_teacher,
    policy_teacher,
    pomdp_teacher,
    train_full_expert,
    train_restricted_teacher,
)
from rlimm.agents.teachers.base import short_space, space_layout, with_about
from rlimm.envs.restrictions import Restriction
from rlimm.errors import RlimmError
from rlimm.rl.config import CompareConfig, TrainConfig
from rlimm.rl.environments import (
    DEFAULT_EVAL_STEPS,
    EVAL_SEED_OFFSET,
    env_name,
    evaluate,
    make_env,
    make_restriction,
)
from rlimm.rl.induced_teacher import about_of, expert_about, optimal_about


def _alphas_path(path: str | None) -> Path:
    if path:
        return Path(path)
    data = os.environ.get("RLIMM_DATA_DIR")
    if not data:
        raise RlimmError(
            "solver 'paper_alphas' needs teacher.path or RLIMM_DATA_DIR (the folder holding "
            "imm_reference/grid_fib_alphas.csv)"
        )
    return Path(data) / "imm_reference" / "grid_fib_alphas.csv"


#: What a builder returns: the teacher, and the SB3 model it was trained as (``trained``,
#: ``induced_expert``; else ``None``).
Built = tuple[Teacher, BaseAlgorithm | None]


def _from_file(config: CompareConfig | TrainConfig, env: gym.Env, restriction: Restriction) -> Built:
    saved = load_teacher(config.teacher.path)
    saved.check_visible(config.restriction.visible)  # type: ignore[union-attr]
    return saved.teacher, None


def _from_model(config: CompareConfig | TrainConfig, env: gym.Env, restriction: Restriction) -> Built:
    t = config.teacher
    # The model's policy decides the teacher (policy_teacher); the name says which the env asks for.
    name = "model-gaussian" if isinstance(env.action_space, gym.spaces.Box) else f"model-{t.policy}"
    return policy_teacher(load_model(t.path), restriction, t.policy, t.temperature, name), None


def _trained(config: CompareConfig | TrainConfig, env: gym.Env, restriction: Restriction) -> Built:
    t = config.teacher
    return train_restricted_teacher(
        env, restriction, t.algo, t.timesteps, t.seed, t.policy, t.temperature, t.kwargs
    )


def _induced_expert(config: CompareConfig | TrainConfig, env: gym.Env, restriction: Restriction) -> Built:
    t = config.teacher
    if not isinstance(env.action_space, (gym.spaces.Discrete, gym.spaces.Box)):
        # checked before the expert trains: the fit serves Discrete and Box actions only
        raise RlimmError(
            f"'teacher.solver': induced_expert needs a Discrete or Box action space; "
            f"{env_name(env)} has {env.action_space}"
        )
    if t.path:
        model = load_model(t.path)
        check_expert_space(model, env, t.path)
    else:
        model = train_full_expert(
            make_env(config.env, config.env.episode_steps), t.algo, t.timesteps, t.seed, t.kwargs
        )
    fit: dict = {}
    teacher = fit_induced_expert(model, make_env(config.env), restriction, t.samples, t.seed, report=fit)
    return with_about(teacher, expert_about(config, model, fit, t.path)), model


def _paper_alphas(config: CompareConfig | TrainConfig, env: gym.Env, restriction: Restriction) -> Built:
    return paper_alpha_teacher(_alphas_path(config.teacher.path), restriction), None


def _induced_optimal(config: CompareConfig | TrainConfig, env: gym.Env, restriction: Restriction) -> Built:
    t = config.teacher
    optimal = optimal_policy(env, t.policy, t.temperature, t.discount)
    teacher = pomdp_teacher(env, restriction, t.solver, t.policy, t.temperature, t.discount, optimal)
    return with_about(teacher, optimal_about(config, env, restriction, optimal, teacher)), None


def _solved(config: CompareConfig | TrainConfig, env: gym.Env, restriction: Restriction) -> Built:
    t = config.teacher
    return pomdp_teacher(env, restriction, t.solver, t.policy, t.temperature, t.discount), None


#: ``teacher.solver`` → its builder ``(config, env, restriction) -> (teacher, model)``; a builder decides
#: the teacher's action family inside, from the env and the SB3 policy's class (Box actions: a Gaussian
#: teacher), where it has a choice.
BUILDERS: dict[str, Callable[[CompareConfig | TrainConfig, gym.Env, Restriction], Built]] = {
    "fib": _solved,
    "qmdp": _solved,
    "induced_optimal": _induced_optimal,
    "trained": _trained,
    "model": _from_model,
    "file": _from_file,
    "induced_expert": _induced_expert,
    "paper_alphas": _paper_alphas,
}


def build_teacher(config: CompareConfig | TrainConfig) -> Built:
    """The configured restricted teacher (:data:`BUILDERS`): solved exactly, trained on the visible
    part, distilled from a full-state expert, or loaded; with the SB3 model it was trained as
    (``trained``, ``induced_expert``; else ``None``)."""
    env = make_env(config.env, config.env.episode_steps)
    restriction = make_restriction(config, env)
    if restriction is None:
        raise RlimmError("a teacher needs restriction.visible: the observation parts it sees")
    teacher, model = BUILDERS[config.teacher.solver](config, env, restriction)
    teacher.check_compatible(restriction, env.action_space)
    return teacher, model


def check_expert_space(model: BaseAlgorithm, env: gym.Env, path: str) -> None:
    """An ``induced_expert`` loaded from ``path`` must act on the env's full observation and actions."""
    for what, theirs, ours in (
        ("observes", model.observation_space, env.observation_space),
        ("acts in", model.action_space, env.action_space),
    ):
        if space_layout(theirs) != space_layout(ours):
            raise RlimmError(
                f"'teacher.path': the expert {path} {what} {short_space(theirs)}, but {env_name(env)} "
                f"has {short_space(ours)} (an induced expert acts on the full observation)"
            )


def teacher_description(config: CompareConfig | TrainConfig) -> dict:
    """What a teacher file records of the teacher of ``config``: environment, visible parts, settings."""
    visible = config.restriction.visible if config.restriction is not None else None
    env = {"env_id": config.env.id, "env_kwargs": config.env.kwargs, "visible": visible}
    return {**env, **config.teacher.model_dump()}


def make_teacher(config: CompareConfig | TrainConfig) -> Teacher:
    """The configured restricted teacher (see :func:`build_teacher`).

    The runner builds it once, in the parent process, and hands it to every run.
    """
    return build_teacher(config)[0]


def teacher_label(config: CompareConfig | TrainConfig) -> str:
    """A short name of the configured teacher for results tables."""
    t = config.teacher
    return f"file:{Path(t.path).name}" if t.solver == "file" else f"{t.solver}-{t.policy}"


class TeacherActor:
    """A restricted teacher acting on the full environment: it sees the visible part of each
    observation and samples from (or, deterministic, takes the argmax or mean of) its distribution.
    Has SB3's ``predict``, so :func:`evaluate` scores it as it scores a learner."""

    def __init__(self, teacher: Teacher, restriction: Restriction, seed: int) -> None:
        self.teacher, self.restriction = teacher, restriction
        self.rng = np.random.default_rng(seed)

    def predict(self, obs, deterministic: bool = False) -> tuple[np.ndarray, None]:  # noqa: ANN001
        batch = (
            {k: np.asarray(v)[None] for k, v in obs.items()}
            if isinstance(obs, dict)
            else np.asarray(obs)[None]
        )
        actions = self.teacher.act(self.restriction.visible(batch), self.rng, deterministic)
        return np.asarray(actions[0]), None


def evaluate_teacher(config: CompareConfig, teacher: Teacher) -> dict:
    """The teacher's own score on the full environment, with the learners' evaluation protocol and
    evaluation seeds: one score (mean return of ``evaluation.episodes`` episodes) per seed."""
    env = make_env(config.env)
    restriction = make_restriction(config, env)
    ev = config.evaluation
    scores = []
    for spec_seed in sorted({spec.seed for spec in config.runs()}):
        actor = TeacherActor(teacher, restriction, spec_seed)
        seed = spec_seed + EVAL_SEED_OFFSET
        scores.append(
            float(evaluate(actor, make_env(config.env), ev.episodes, ev.steps, seed, ev.deterministic).mean())
        )
    about = about_of(teacher)  # an induced teacher: its expert's score and the hidden part's information
    return {"teacher": teacher_label(config), "scores": scores, **({"about": about} if about else {})}


#: Episodes and seed of :func:`teacher_training_return`.
TRUST_EPISODES, TRUST_SEED = 30, 2_000_003


def teacher_training_return(config: CompareConfig | TrainConfig, teacher: Teacher) -> float:
    """The teacher's mean return over :data:`TRUST_EPISODES` episodes of the *training* env (its time
    limit ``env.episode_steps``, sampled actions): the units of the learner's training returns, which
    the trust rule (``lambda_schedule: trust``) tests against it."""
    env = make_env(config.env, config.env.episode_steps)
    restriction = make_restriction(config, env)
    assert restriction is not None
    limit = env.spec.max_episode_steps if env.spec is not None else None
    actor = TeacherActor(teacher, restriction, TRUST_SEED)
    return float(evaluate(actor, env, TRUST_EPISODES, limit or DEFAULT_EVAL_STEPS, TRUST_SEED, False).mean())


def with_trust_score(config: CompareConfig, teacher: Teacher | None) -> CompareConfig:
    """``config`` with ``trust.teacher_score`` measured (:func:`teacher_training_return`) when its
    schedule is ``trust``, a teacher is given and the config sets no score, and with
    ``trust.source_score`` taken from an induced teacher's expert (its score by the evaluation
    protocol, ``teacher.about``) when the config sets none; else ``config`` itself."""
    if config.lambda_schedule != "trust" or teacher is None:
        return config
    update = {}
    if config.trust.teacher_score is None:
        update["teacher_score"] = teacher_training_return(config, teacher)
    expert = about_of(teacher).get("expert")
    if config.trust.source_score is None and expert is not None:
        # IMM's teacher is the induced model of this expert: the return test compares with it.
        update["source_score"] = float(expert["score"])
    if not update:
        return config
    return config.model_copy(update={"trust": config.trust.model_copy(update=update)})
