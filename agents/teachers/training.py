"""Teachers and experts trained with plain SB3 algorithms: a restricted teacher trained on the visible
part of an environment, a full-state expert to induce one from, and loading saved SB3 models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm

from rlimm.agents.teachers.policy import PolicyTeacher, policy_teacher
from rlimm.agents.teachers.tabular import TabularTeacher
from rlimm.errors import RlimmError

#: SB3 algorithms a restricted Gaussian (Box-action) teacher is trained with.
GAUSSIAN_ALGOS = ("ppo", "sac", "a2c")
#: SB3 algorithms a restricted teacher with discrete actions is trained with.
DISCRETE_ALGOS = ("ppo", "a2c", "dqn")


def load_model(path: str | Path) -> BaseAlgorithm:
    """Load any saved SB3 model whose policy gives actions (on-policy algorithms, REINFORCE, DQN, SAC)."""
    path = Path(path)
    if not path.is_file():
        raise RlimmError(f"teacher model file not found: {path}")
    from stable_baselines3 import DQN, PPO, SAC

    errors = []
    # PPO's loader rebuilds any actor-critic policy (A2C's, REINFORCE's): only the policy is used.
    for cls in (PPO, DQN, SAC):
        try:
            return cls.load(path, device="cpu")
        except Exception as err:  # noqa: BLE001 - try the next loader, report all if none fits
            errors.append(f"{cls.__name__}: {type(err).__name__}")
    raise RlimmError(f"cannot load {path} as an SB3 model ({'; '.join(errors)})")


def _sb3_class(algo: str, what: str) -> type[BaseAlgorithm]:
    """The plain SB3 algorithm ``algo`` (``ppo``, ``a2c``, ``dqn``, ``sac``) a teacher or an expert is
    trained with; ``what`` names it in the error."""
    from stable_baselines3 import A2C, DQN, PPO, SAC

    classes = {"ppo": PPO, "a2c": A2C, "dqn": DQN, "sac": SAC}
    if algo not in classes:
        raise RlimmError(f"unknown {what} algorithm '{algo}'; accepted: {', '.join(classes)}")
    return classes[algo]


def train_restricted_teacher(
    env: gym.Env,
    restriction: Any,
    algo: str = "ppo",
    total_timesteps: int = 20_000,
    seed: int = 0,
    mode: str = "softmax",
    temperature: float = 1.0,
    algo_kwargs: dict | None = None,
) -> tuple[TabularTeacher | PolicyTeacher, BaseAlgorithm]:
    """Train an SB3 policy on the restricted view of ``env`` (only the visible part observed) and
    return it as a teacher (:func:`~rlimm.agents.teachers.policy.policy_teacher`), with the trained
    model. The env's actions decide the teacher: discrete actions a categorical one (``mode``,
    ``temperature``), Box actions a Gaussian one.

    :param algo: a plain SB3 algorithm: :data:`DISCRETE_ALGOS` for discrete actions,
        :data:`GAUSSIAN_ALGOS` (without gSDE) for Box actions.
    """
    from rlimm.envs.wrappers import VisibleObservation

    box = isinstance(env.action_space, spaces.Box)
    what = "Gaussian teacher" if box else "teacher"
    accepted = GAUSSIAN_ALGOS if box else DISCRETE_ALGOS
    if algo not in accepted:
        raise RlimmError(f"unknown {what} algorithm '{algo}'; accepted: {', '.join(accepted)}")
    cls = _sb3_class(algo, what)
    kwargs = dict(algo_kwargs or {})
    if box and kwargs.get("use_sde"):  # refused by the teacher anyway: say so before training
        raise RlimmError("Gaussian teachers do not support gSDE: train the teacher with use_sde=False")
    partial = VisibleObservation(env, restriction)
    policy = "MultiInputPolicy" if isinstance(partial.observation_space, spaces.Dict) else "MlpPolicy"
    model = cls(policy, partial, seed=seed, **kwargs)
    model.learn(total_timesteps)
    name = f"trained-{algo}" if box else f"trained-{algo}-{mode}"
    return policy_teacher(model, restriction, mode, temperature, name), model


def train_restricted_gaussian_teacher(
    env: gym.Env,
    restriction: Any,
    algo: str = "ppo",
    total_timesteps: int = 20_000,
    seed: int = 0,
    algo_kwargs: dict | None = None,
) -> tuple[PolicyTeacher, BaseAlgorithm]:
    """:func:`train_restricted_teacher` for an env with Box actions (a Gaussian teacher); raise for any
    other.

    :param algo: ``ppo``, ``sac`` or ``a2c`` (plain SB3 algorithms).
    """
    if not isinstance(env.action_space, spaces.Box):
        raise RlimmError(f"Gaussian teachers need a Box action space, got {env.action_space}")
    teacher, model = train_restricted_teacher(
        env, restriction, algo, total_timesteps, seed, algo_kwargs=algo_kwargs
    )
    assert isinstance(teacher, PolicyTeacher)  # Box actions never give a table
    return teacher, model


def train_full_expert(
    env: gym.Env,
    algo: str = "ppo",
    total_timesteps: int = 50_000,
    seed: int = 0,
    algo_kwargs: dict | None = None,
) -> BaseAlgorithm:
    """An SB3 policy trained on the *full* observation: the expert an induced expert is made from."""
    model = _sb3_class(algo, "expert")("MlpPolicy", env, seed=seed, **(algo_kwargs or {}))
    model.learn(total_timesteps)
    return model
