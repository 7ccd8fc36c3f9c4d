"""One run of the RL experiment: build env, restriction, teacher and agent from a config, train,
evaluate. Shared by ``compare`` (:func:`run_one`), ``train``, ``teacher`` and ``tune``."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

import rlimm.envs  # noqa: F401  (registers the environments)
from rlimm.agents.gaussian_teachers import (
    fit_induced_gaussian_expert,
    gaussian_policy_teacher,
    train_restricted_gaussian_teacher,
)
from rlimm.agents.registry import algorithm_class, check_kwargs
from rlimm.agents.teacher_files import load_teacher
from rlimm.agents.teachers import (
    Teacher,
    fit_induced_expert,
    load_model,
    paper_alpha_teacher,
    policy_teacher,
    pomdp_teacher,
    train_full_expert,
    train_restricted_teacher,
)
from rlimm.common.device import as_device
from rlimm.envs.restriction import Restriction, restriction_for
from rlimm.errors import RlimmError
from rlimm.rl.config import AlgoConfig, CompareConfig, EnvConfig, InductionConfig, RunSpec, TrainConfig


def make_env(env_config: EnvConfig, episode_steps: int | None = None) -> gym.Env:
    """The configured environment, with a time limit of ``episode_steps`` if given."""
    try:
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


def make_restriction(config: CompareConfig | TrainConfig, env: gym.Env) -> Restriction | None:
    """What the teacher sees of ``env``'s observations (``None`` without a restriction)."""
    r = config.restriction
    if r is None:
        return None
    restriction = restriction_for(env, r.visible, factors=r.factors)
    if config.induction.method == "exact" and not restriction.exact:
        raise RlimmError(
            f"'induction: exact' needs a restriction whose hidden part can be enumerated; "
            f"{restriction.describe()} cannot: use knn or marginal"
        )
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
    # Box actions take Gaussian teachers (rlimm.agents.gaussian_teachers); Discrete ones, the others.
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
        if t.path:
            model = load_model(t.path)
        else:
            model = train_full_expert(
                make_env(config.env, config.env.episode_steps), t.algo, t.timesteps, t.seed, t.kwargs
            )
        fit = fit_induced_gaussian_expert if box else fit_induced_expert
        teacher = fit(model, make_env(config.env), restriction, t.samples, t.seed)
    elif t.solver == "paper_alphas":
        teacher = paper_alpha_teacher(_alphas_path(t.path), restriction)
    else:
        teacher = pomdp_teacher(env, restriction, t.solver, t.policy, t.temperature, t.discount)
    teacher.check_compatible(restriction, env.action_space)
    return teacher, model


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
    env: gym.Env,
    regularizer: str,
    teacher: Teacher | None,
    restriction: Restriction | None,
    teacher_coef: float,
    seed: int | None = None,
    tensorboard_log: str | None = None,
    device: torch.device | str | None = None,
    induction: InductionConfig | None = None,
) -> BaseAlgorithm:
    """An rlimm agent of ``algo`` on ``env`` with its regulariser, teacher and λ (``teacher_coef``), on
    ``device`` (``None``: the algorithm's default, or ``algo.kwargs.device``)."""
    check_kwargs(algo.name, algo.kwargs)
    if algo.name == "sac" and not isinstance(env.action_space, gym.spaces.Box):
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise RlimmError(
            f"'algo.name': sac needs a Box (continuous) action space; {name} has {env.action_space} "
            "(use reinforce, ppo or a2c)"
        )
    kwargs = dict(algo.kwargs)
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
            induction=induction.method if induction is not None else "auto",
            induction_k=induction.k if induction is not None else 16,
            kl_estimator=induction.estimator if induction is not None else "mc",
            kl_samples=induction.samples if induction is not None else 16,
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


def teacher_label(config: CompareConfig) -> str:
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
    (termination or its time limit), or for at most ``steps`` steps when given (the grid's protocol)."""
    steps = evaluation_steps(env, steps)
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    returns = np.zeros(episodes)
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed if ep == 0 else None)
        t = 0
        while steps is None or t < steps:
            action, _ = model.predict(obs, deterministic=deterministic)
            # SB3 predicts an array; toy-text envs index their tables with the action itself.
            obs, reward, terminated, truncated, _ = env.step(int(action) if discrete else action)
            returns[ep] += float(reward)
            t += 1
            if terminated or truncated:
                break
    return returns


def evaluation_steps(env: gym.Env, steps: int | None) -> int | None:
    """The step cap of an evaluation episode: ``steps`` if given, else the env's own evaluation
    protocol (``evaluation_steps``, the grid's 22), else ``None`` (the env's own end); raises unless
    episodes end."""
    steps = steps if steps is not None else getattr(env.unwrapped, "evaluation_steps", None)
    if steps is None and (env.spec is None or env.spec.max_episode_steps is None):
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise RlimmError(
            f"'evaluation.steps' is needed: {name} has no time limit, so its episodes may never end"
        )
    return steps


EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never reuse the training seed's start states


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
        if hasattr(self.teacher, "sample"):  # a Gaussian teacher: a draw, squashed or clipped to the bounds
            return self.teacher.sample(self.restriction.visible(batch), self.rng, deterministic)[0], None
        probs = np.asarray(self.teacher.probs(self.restriction.visible(batch)), dtype=np.float64)[0]
        nvec = getattr(self.teacher, "nvec", None)  # MultiDiscrete: one distribution per dimension
        parts = [probs] if nvec is None else np.split(probs, np.cumsum(nvec)[:-1])
        if deterministic:
            actions = [int(np.argmax(p)) for p in parts]
        else:
            actions = [int(self.rng.choice(len(p), p=p / p.sum())) for p in parts]
        return np.asarray(actions[0] if nvec is None else actions), None


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
    return {"teacher": teacher_label(config), "scores": scores}


def run_one(
    config: CompareConfig,
    spec: RunSpec,
    tensorboard_log: str | None = None,
    teacher: Teacher | None = None,
    device: torch.device | str | None = None,
) -> dict:
    """Train one agent and evaluate it; returns one row of ``results.csv``.

    :param teacher: the restricted teacher (built from the config when ``None`` and needed).
    :param device: the agent's torch device (``None``: the config's ``device``); a name such as
        ``auto`` is resolved here, on the machine that trains (a cluster worker may have a GPU that
        the driver lacks).
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
    device = as_device(config.device if device is None else device)
    model = build_agent(
        config.algo,
        env,
        spec.method,
        teacher,
        restriction,
        config.teacher_coef(spec),
        spec.seed,
        tensorboard_log,
        device,
        config.induction,
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
