"""The RL experiment's environments and evaluation protocol: the configured env (one, or vectorised for
training), the restriction of its observations, and the undiscounted return of evaluation episodes
(final scores, learning curves), shared by every command."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

import rlimm.envs  # noqa: F401  (registers the environments)
from rlimm.envs.restrictions import Restriction, restriction_for
from rlimm.errors import RlimmError
from rlimm.rl.config import CompareConfig, EnvConfig, EvalConfig, TrainConfig
from rlimm.rl.evaluation import evaluate_side_by_side
from rlimm.rl.zoo import normalize_kwargs


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


def env_name(env: gym.Env | VecEnv) -> str:
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
