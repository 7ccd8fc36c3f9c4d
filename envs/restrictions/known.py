"""Names of observation parts that rlimm knows without code, keyed by gymnasium environment id.

- :data:`DISCRETE_FACTORS`: ``Discrete`` observations that are row-major products of named factors
  (slowest first), as a function of the (unwrapped) environment, so map sizes are read from it;
- :data:`COORDINATES`: the names of a 1-D ``Box`` observation's coordinates;
- :data:`NOVEL_HIDDEN`: the RL Zoo's "NoVel" masks (``MaskVelocityWrapper``): the velocity coordinates
  that ``visible=["novel"]`` hides.

Ids are gymnasium 1.4's. An environment of our own declares its factors with an ``observation_factors``
attribute instead (the toroidal grid), and any other ``Discrete`` environment can be given its factors
in a config (``factors: {name: size, ...}``).

:func:`env_id` and :func:`env_label` read the id (or, for messages, a name) of an environment.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym


def _taxi(env: gym.Env) -> dict[str, int]:
    # obs = ((taxi_row·5 + taxi_col)·5 + passenger)·4 + destination; passenger 4 = in the taxi.
    return {"taxi_row": 5, "taxi_col": 5, "passenger": 5, "destination": 4}


def _frozen_lake(env: gym.Env) -> dict[str, int]:
    # s = row·ncol + col, for the 4x4, 8x8 or any custom map.
    base = env.unwrapped
    return {"row": int(base.nrow), "col": int(base.ncol)}


def _cliff_walking(env: gym.Env) -> dict[str, int]:
    # s = row·12 + col on the 4x12 board.
    rows, cols = getattr(env.unwrapped, "shape", (4, 12))
    return {"row": int(rows), "col": int(cols)}


#: env id → function of the environment giving its factors ``{name: size}``, slowest first.
DISCRETE_FACTORS: dict[str, Callable[[gym.Env], dict[str, int]]] = {
    "Taxi-v4": _taxi,
    "Taxi-v3": _taxi,
    "FrozenLake-v1": _frozen_lake,
    "FrozenLake8x8-v1": _frozen_lake,
    "CliffWalking-v1": _cliff_walking,
    "CliffWalkingSlippery-v1": _cliff_walking,
}

_CARTPOLE = ("x", "x_dot", "theta", "theta_dot")
_MOUNTAIN_CAR = ("position", "velocity")
_LUNAR_LANDER = ("x", "y", "vx", "vy", "angle", "angular_velocity", "left_leg", "right_leg")
_INVERTED_PENDULUM = ("x", "theta", "x_dot", "theta_dot")  # MuJoCo: positions first, then velocities

#: env id → names of the coordinates of its 1-D ``Box`` observation, in order.
COORDINATES: dict[str, tuple[str, ...]] = {
    "CartPole-v0": _CARTPOLE,
    "CartPole-v1": _CARTPOLE,
    "MountainCar-v0": _MOUNTAIN_CAR,
    "MountainCarContinuous-v0": _MOUNTAIN_CAR,
    "Pendulum-v1": ("cos_theta", "sin_theta", "theta_dot"),
    "Acrobot-v1": ("cos1", "sin1", "cos2", "sin2", "dtheta1", "dtheta2"),
    "LunarLander-v3": _LUNAR_LANDER,
    "LunarLanderContinuous-v3": _LUNAR_LANDER,
    "InvertedPendulum-v4": _INVERTED_PENDULUM,
    "InvertedPendulum-v5": _INVERTED_PENDULUM,
}

#: The token that selects the "NoVel" mask.
NOVEL = "novel"

#: env id → indices of the coordinates the RL Zoo's ``MaskVelocityWrapper`` zeroes (the velocities);
#: MuJoCo's InvertedPendulum, which the Zoo does not list, by the same rule.
NOVEL_HIDDEN: dict[str, tuple[int, ...]] = {
    "CartPole-v0": (1, 3),
    "CartPole-v1": (1, 3),
    "MountainCar-v0": (1,),
    "MountainCarContinuous-v0": (1,),
    "Pendulum-v1": (2,),
    "LunarLander-v3": (2, 3, 5),
    "LunarLanderContinuous-v3": (2, 3, 5),
    "InvertedPendulum-v4": (2, 3),
    "InvertedPendulum-v5": (2, 3),
}


def env_id(env: gym.Env) -> str | None:
    """The gymnasium id the environment was made with (``env.spec.id``), or ``None``."""
    for candidate in (env, getattr(env, "unwrapped", None)):
        spec = getattr(candidate, "spec", None)
        if spec is not None and getattr(spec, "id", None):
            return spec.id
    return None


def env_label(env: gym.Env) -> str:
    """The environment's id for messages, or the class name of an environment made without one."""
    return env_id(env) or type(env.unwrapped).__name__
