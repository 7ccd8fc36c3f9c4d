"""One run of the RL experiment: build env, restriction, teacher and agent from a config, train,
evaluate. Shared by ``compare`` (:func:`run_one`), ``train``, ``teacher`` and ``tune``."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

import rlimm.envs  # noqa: F401  (registers the environments)
from rlimm.agents.registry import algorithm_class, check_kwargs
from rlimm.agents.teachers import (
    Teacher,
    fit_induced_expert,
    gaussian_policy_teacher,
    load_model,
    load_teacher,
    optimal_policy,
    paper_alpha_teacher,
    policy_teacher,
    pomdp_teacher,
    train_full_expert,
    train_restricted_gaussian_teacher,
    train_restricted_teacher,
)
from rlimm.agents.teachers.base import short_space, space_layout, with_about
from rlimm.common.device import as_device
from rlimm.envs.restrictions import Restriction, restriction_for
from rlimm.errors import RlimmError
from rlimm.rl.config import (
    AlgoConfig,
    CompareConfig,
    EnvConfig,
    EvalConfig,
    InductionConfig,
    RunSpec,
    TrainConfig,
)
from rlimm.rl.evaluation import EvaluationCallback, evaluate_side_by_side
from rlimm.rl.hidden_part import measure_run
from rlimm.rl.induced_teacher import about_of, expert_about, optimal_about
from rlimm.rl.zoo import constructor_kwargs, normalize_kwargs


def make_env(env_config: EnvConfig, episode_steps: int | None = None, checked: bool = True) -> gym.Env:
    """The configured environment, with a time limit of ``episode_steps`` if given; ``checked=False``
    leaves out gymnasium's ``PassiveEnvChecker`` and ``OrderEnforcing`` (for evaluation loops that
    step many envs: the same steps, without two wrapper calls per step)."""
    try:
        if not checked:
            spec = dataclasses.replace(gym.spec(env_config.id), order_enforce=False)
            return gym.make(
                spec, max_episode_steps=episode_steps, disable_env_checker=True, **env_config.kwargs
            )
        return gym.make(env_config.id, max_episode_steps=episode_steps, **env_config.kwargs)
    except gym.error.Error as err:
        raise RlimmError(f"cannot make environment '{env_config.id}': {err}") from None
    except ImportError as err:  # an env family whose simulator is an optional install (MuJoCo, Box2D)
        raise RlimmError(
            f"cannot make environment '{env_config.id}': {err}; install its extra, e.g. "
            "pip install -e '.[mujoco]' for MuJoCo envs"
        ) from None
    except (TypeError, ValueError, AssertionError) as err:
        raise RlimmError(f"bad env.kwargs {env_config.kwargs} for '{env_config.id}': {err}") from None


def make_training_env(config: CompareConfig | TrainConfig, seed: int | None) -> VecEnv:
    """The training environment: ``algo.n_envs`` copies of the configured env (time limit
    ``env.episode_steps``) built by SB3's ``make_vec_env`` — each in SB3's ``Monitor``, in a
    ``DummyVecEnv`` or ``SubprocVecEnv`` (``algo.vec_env``), env ``i`` seeded from ``seed + i`` at its
    first reset — under ``VecNormalize`` when ``algo.normalize`` asks for it. One env in a
    ``DummyVecEnv`` is what SB3 makes of a single env, so such runs are number for number the same."""
    algo = config.algo
    if algo.vec_env == "subproc":
        make_env(config.env, config.env.episode_steps)  # a bad env is refused here, not in a worker
    venv = make_vec_env(
        partial(make_env, config.env, config.env.episode_steps),
        n_envs=algo.n_envs,
        seed=seed,
        vec_env_cls=SubprocVecEnv if algo.vec_env == "subproc" else DummyVecEnv,
    )
    normalize = normalize_kwargs(algo.normalize, algo.kwargs)
    if normalize is None:
        return venv
    try:
        return VecNormalize(venv, **normalize)
    except (TypeError, ValueError, AssertionError) as err:  # e.g. observations VecNormalize cannot scale
        venv.close()
        raise RlimmError(f"bad 'algo.normalize' {algo.normalize}: {err}") from None


class NormalizedActor:
    """An agent trained under ``VecNormalize`` acting on raw observations: it normalises each with the
    training env's statistics before ``predict`` (as SB3's ``EvalCallback`` and the RL Zoo's player
    do), so :func:`evaluate` scores it on the env it was trained for."""

    def __init__(self, model: BaseAlgorithm, vec_normalize: VecNormalize) -> None:
        self.model, self.vec_normalize = model, vec_normalize

    def predict(self, obs, deterministic: bool = False) -> tuple[np.ndarray, None]:  # noqa: ANN001
        return self.model.predict(self.vec_normalize.normalize_obs(obs), deterministic=deterministic)


def acting(model: BaseAlgorithm) -> BaseAlgorithm | NormalizedActor:
    """What acts on the env's raw observations for ``model``: itself, or under ``VecNormalize`` a
    :class:`NormalizedActor`."""
    vec_normalize = model.get_vec_normalize_env()
    return model if vec_normalize is None else NormalizedActor(model, vec_normalize)


def _env_name(env: gym.Env | VecEnv) -> str:
    spec = env.get_attr("spec", [0])[0] if isinstance(env, VecEnv) else env.spec
    if spec is not None:
        return spec.id
    return type(env.unwrapped).__name__ if isinstance(env, gym.Env) else type(env).__name__


def make_restriction(config: CompareConfig | TrainConfig, env: gym.Env) -> Restriction | None:
    """What the teacher sees of ``env``'s observations (``None`` without a restriction)."""
    r = config.restriction
    if r is None:
        return None
    restriction = restriction_for(env, r.visible, factors=r.factors)
    # The induction settings' own check (the regulariser makes it too), here before a teacher is built.
    config.induction.settings().method_for(restriction)
    return restriction


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


def build_teacher(config: CompareConfig | TrainConfig) -> tuple[Teacher, BaseAlgorithm | None]:
    """The configured restricted teacher: solved exactly, trained on the visible part, distilled from
    a full-state expert, or loaded; with the SB3 model it was trained as (``trained``,
    ``induced_expert``; else ``None``)."""
    t = config.teacher
    env = make_env(config.env, config.env.episode_steps)
    restriction = make_restriction(config, env)
    if restriction is None:
        raise RlimmError("a teacher needs restriction.visible: the observation parts it sees")
    model = None
    # Box actions take Gaussian teachers (family gaussian or squashed_gaussian); Discrete ones, the others.
    box = isinstance(env.action_space, gym.spaces.Box)
    if t.solver == "file":
        saved = load_teacher(t.path)
        saved.check_visible(config.restriction.visible)
        teacher = saved.teacher
    elif t.solver == "model" and box:
        teacher = gaussian_policy_teacher(load_model(t.path), restriction, env.action_space, "model-gaussian")
    elif t.solver == "model":
        teacher = policy_teacher(
            load_model(t.path), restriction, t.policy, t.temperature, f"model-{t.policy}"
        )
    elif t.solver == "trained" and box:
        teacher, model = train_restricted_gaussian_teacher(
            env, restriction, t.algo, t.timesteps, t.seed, t.kwargs
        )
    elif t.solver == "trained":
        teacher, model = train_restricted_teacher(
            env, restriction, t.algo, t.timesteps, t.seed, t.policy, t.temperature, t.kwargs
        )
    elif t.solver == "induced_expert":
        if not isinstance(env.action_space, (gym.spaces.Discrete, gym.spaces.Box)):
            # checked before the expert trains: the fit serves Discrete and Box actions only
            raise RlimmError(
                f"'teacher.solver': induced_expert needs a Discrete or Box action space; "
                f"{_env_name(env)} has {env.action_space}"
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
        teacher = with_about(teacher, expert_about(config, model, fit, t.path))
    elif t.solver == "paper_alphas":
        teacher = paper_alpha_teacher(_alphas_path(t.path), restriction)
    elif t.solver == "induced_optimal":
        optimal = optimal_policy(env, t.policy, t.temperature, t.discount)
        teacher = pomdp_teacher(env, restriction, t.solver, t.policy, t.temperature, t.discount, optimal)
        teacher = with_about(teacher, optimal_about(config, env, restriction, optimal, teacher))
    else:
        teacher = pomdp_teacher(env, restriction, t.solver, t.policy, t.temperature, t.discount)
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
                f"'teacher.path': the expert {path} {what} {short_space(theirs)}, but {_env_name(env)} "
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
            f"'algo.name': sac needs a Box (continuous) action space; {_env_name(env)} has "
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


def teacher_label(config: CompareConfig | TrainConfig) -> str:
    """A short name of the configured teacher for results tables."""
    t = config.teacher
    return f"file:{Path(t.path).name}" if t.solver == "file" else f"{t.solver}-{t.policy}"


def evaluate(
    model,  # noqa: ANN001 - anything with SB3's predict()
    env: gym.Env,
    episodes: int,
    steps: int | None,
    seed: int,
    deterministic: bool,
) -> np.ndarray:
    """Undiscounted return of each of ``episodes`` episodes: each runs to the env's own end
    (termination or its time limit), for at most ``steps`` steps when given (the grid's protocol),
    and at most :func:`evaluation_steps` steps in any case."""
    steps = evaluation_steps(env, steps)
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    returns = np.zeros(episodes)
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed if ep == 0 else None)
        t = 0
        while t < steps:
            action, _ = model.predict(obs, deterministic=deterministic)
            # SB3 predicts an array; toy-text envs index their tables with the action itself.
            obs, reward, terminated, truncated, _ = env.step(int(action) if discrete else action)
            returns[ep] += float(reward)
            t += 1
            if terminated or truncated:
                break
    return returns


#: The evaluation cap of an env without a time limit: the RL Zoo players' 1000 steps.
DEFAULT_EVAL_STEPS = 1000


def evaluation_steps(env: gym.Env, steps: int | None) -> int:
    """The step cap of an evaluation episode: ``steps`` if given, else the env's own evaluation
    protocol (``evaluation_steps``, the grid's 22), else its time limit, else
    :data:`DEFAULT_EVAL_STEPS` (an env without a time limit, e.g. CliffWalking-v1)."""
    if steps is not None:
        return steps
    own = getattr(env.unwrapped, "evaluation_steps", None)  # an env attribute, not a gymnasium API
    if own is not None:
        return int(own)
    if env.spec is not None and env.spec.max_episode_steps is not None:
        return int(env.spec.max_episode_steps)
    return DEFAULT_EVAL_STEPS


EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never reuse the training seed's start states


def curve_scorer(env: EnvConfig, evaluation: EvalConfig, seed: int) -> Callable[[BaseAlgorithm], np.ndarray]:
    """The protocol of a learning curve's points (``rlimm compare`` and ``rlimm train``):
    ``evaluation.episodes`` episodes played side by side from seed ``seed``, one forward pass per step
    (:func:`~rlimm.rl.evaluation.evaluate_side_by_side`), with the final evaluation's step cap."""
    cap = evaluation_steps(make_env(env), evaluation.steps)

    def curve_score(agent: BaseAlgorithm) -> np.ndarray:
        return evaluate_side_by_side(
            agent,
            partial(make_env, env, checked=False),
            evaluation.episodes,
            cap,
            seed,
            evaluation.deterministic,
        )

    return curve_score


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
