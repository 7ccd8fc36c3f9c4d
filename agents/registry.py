"""The rlimm algorithms by name, imported only when asked for.

Configs name an algorithm (``algo.name``) and its constructor arguments (``algo.kwargs``); this module
turns them into a class and checks the arguments against its explicit constructor. It imports neither
stable-baselines3 nor torch itself, so loading a config stays light.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from rlimm.errors import RlimmError

#: name → ``module:Class``
ALGORITHMS = {
    "reinforce": "rlimm.agents.reinforce:REINFORCE",
    "ppo": "rlimm.agents.ppo:PPO",
    "a2c": "rlimm.agents.a2c:A2C",
    "sac": "rlimm.agents.sac:SAC",
}

#: Off-policy algorithms: an update every ``train_freq`` steps, from a replay buffer.
OFF_POLICY = frozenset({"sac"})

#: Constructor arguments that the experiment code sets itself, never ``algo.kwargs``.
RESERVED = frozenset(
    {"policy", "env", "regularizer", "teacher", "restriction", "teacher_coef", "induction", "seed"}
)


def algorithm_class(name: str) -> type:
    """The algorithm class registered as ``name``."""
    try:
        target = ALGORITHMS[name]
    except KeyError:
        raise RlimmError(f"unknown algorithm '{name}'; accepted: {', '.join(ALGORITHMS)}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def _parameters(name: str) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(algorithm_class(name).__init__).parameters)


def accepted_kwargs(name: str) -> list[str]:
    """The constructor arguments ``algo.kwargs`` may set for ``name``."""
    return sorted(set(_parameters(name)) - RESERVED - {"self", "_init_setup_model"})


def check_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Raise, naming the config key, unless every key of ``kwargs`` is a constructor argument of ``name``."""
    accepted = accepted_kwargs(name)
    for key in kwargs:
        if key not in accepted:
            raise RlimmError(
                f"'algo.kwargs.{key}': not an argument of {name}; accepted: {', '.join(accepted)}"
            )


def steps_per_update(name: str, kwargs: dict[str, Any]) -> int:
    """Environment steps collected per update (per environment): ``n_steps`` from ``kwargs`` or the
    constructor's default; for off-policy algorithms (:data:`OFF_POLICY`, whose ``n_steps`` is the
    n-step return), ``train_freq`` in steps."""
    if name in OFF_POLICY:
        freq = kwargs.get("train_freq", _parameters(name)["train_freq"].default)
        frequency, unit = (freq, "step") if isinstance(freq, int) else tuple(freq)
        if unit != "step":
            raise RlimmError(
                f"'algo.kwargs.train_freq': {freq!r} has no fixed number of steps per update; "
                "give it in steps"
            )
        return int(frequency)
    if "n_steps" in kwargs:
        return int(kwargs["n_steps"])
    return int(_parameters(name)["n_steps"].default)
