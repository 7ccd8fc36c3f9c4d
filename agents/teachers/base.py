"""What every restricted teacher is: the :class:`Teacher` protocol, the :class:`ActionFamily` its
``params`` describe, and the helpers the teacher modules share (space layouts and messages, visible
batches as tensors, acting from categorical probabilities)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces

from rlimm.errors import RlimmError


class ActionFamily(str, enum.Enum):
    """What distribution a teacher's ``params`` describe, and their layout."""

    #: Discrete actions: probabilities, ``(B, n)``.
    CATEGORICAL = "categorical"
    #: MultiDiscrete actions: per-dimension probabilities concatenated, ``(B, sum(nvec))``.
    MULTI_CATEGORICAL = "multi_categorical"
    #: Box actions, PPO/A2C convention (the raw action, clipped): ``mean ‖ log_std``, ``(B, 2d)``.
    GAUSSIAN = "gaussian"
    #: Box actions, SAC convention (the pre-tanh action): ``mean ‖ log_std``, ``(B, 2d)``.
    SQUASHED_GAUSSIAN = "squashed_gaussian"


@runtime_checkable
class Teacher(Protocol):
    """A restricted teacher: a distribution over actions for a batch of visible parts (what
    ``restriction.visible`` returns: context indices for a partition, visible coordinates for a Box
    restriction, visible keys for a Dict one).

    ``params`` is what the regulariser stores and compares, laid out as ``family`` says; ``act`` is the
    teacher acting on its own (for its own score on the full task).
    """

    name: str

    @property
    def family(self) -> ActionFamily: ...

    @property
    def n_params(self) -> int: ...

    def params(self, visible: Any) -> np.ndarray: ...

    def act(self, visible: Any, rng: np.random.Generator, deterministic: bool) -> np.ndarray: ...

    def check_compatible(self, restriction: Any, action_space: gym.Space) -> None: ...


def act_categorical(
    probs: np.ndarray, nvec: list[int] | None, rng: np.random.Generator, deterministic: bool
) -> np.ndarray:
    """Actions for a batch of action probabilities ``(B, n)``: per row (and, with ``nvec``, per
    dimension of a MultiDiscrete action, in order) the argmax when ``deterministic``, else one draw
    ``rng.choice``. ``(B,)`` int64, or ``(B, len(nvec))`` with ``nvec``."""
    rows = []
    for row in np.asarray(probs, dtype=np.float64):
        parts = [row] if nvec is None else np.split(row, np.cumsum(nvec)[:-1])
        if deterministic:
            actions = [int(np.argmax(p)) for p in parts]
        else:
            actions = [int(rng.choice(len(p), p=p / p.sum())) for p in parts]
        rows.append(actions[0] if nvec is None else actions)
    return np.asarray(rows)


# --------------------------------------------------------------------------- spaces


def short_space(space: gym.Space) -> str:
    """A space for one-line messages: ``Box(3,)`` rather than every bound (numpy wraps long arrays)."""
    if isinstance(space, spaces.Box):
        return f"Box{space.shape}"
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {short_space(v)}" for k, v in space.spaces.items()) + ")"
    return str(space)


def space_layout(space: gym.Space) -> Any:
    """What a value of ``space`` looks like (bounds aside, as normalisation may change them),
    JSON-native so that a file can record it and compare it after loading."""
    if isinstance(space, spaces.Dict):
        return {k: space_layout(v) for k, v in space.spaces.items()}
    if isinstance(space, spaces.Discrete):
        return ["Discrete", int(space.n)]
    if isinstance(space, spaces.MultiDiscrete):
        return ["MultiDiscrete", np.asarray(space.nvec).tolist()]
    return [type(space).__name__, list(space.shape or ())]


def action_sizes(action_space: gym.Space) -> list[int]:
    """The number of actions of each dimension: ``[n]`` for ``Discrete(n)``, ``nvec`` for a 1-D
    ``MultiDiscrete``."""
    if isinstance(action_space, spaces.Discrete):
        return [int(action_space.n)]
    if isinstance(action_space, spaces.MultiDiscrete) and np.ndim(action_space.nvec) == 1:
        return [int(n) for n in action_space.nvec]
    raise RlimmError(f"teachers need a Discrete or 1-D MultiDiscrete action space, got {action_space}")


def discrete_only(name: str, action_space: gym.Space) -> str:
    """The message refusing a categorical teacher for ``action_space``."""
    if isinstance(action_space, spaces.MultiDiscrete):
        return (
            f"teacher '{name}' is a table over Discrete actions but the environment's actions are "
            f"{action_space}: a MultiDiscrete action space needs a policy teacher (solver 'trained' or "
            "'model')"
        )
    return (
        f"teacher '{name}' gives probabilities over Discrete actions but the environment's actions are "
        f"{action_space}: a Box action space needs a Gaussian teacher (solver 'trained', 'model' or "
        "'induced_expert')"
    )


def check_visible(name: str, visible_space: gym.Space, restriction: Any) -> None:
    """Raise unless ``visible_space`` (what a teacher observes) is the restriction's visible part (when
    the restriction has one)."""
    expected = getattr(restriction, "visible_space", None)
    if expected is not None and space_layout(expected) != space_layout(visible_space):
        raise RlimmError(
            f"teacher '{name}' observes {short_space(visible_space)} but the restriction shows "
            f"{short_space(expected)} (a teacher acts on the visible part only)"
        )


def with_about(teacher: Any, about: dict[str, Any]) -> Any:
    """``teacher`` recording ``about``: how an induced teacher was made (its expert's score and budget,
    the hidden part's information; :mod:`rlimm.rl.induced_teacher`), kept in its teacher file. A frozen
    dataclass teacher is copied, any other gets the attribute."""
    if dataclasses.is_dataclass(teacher) and "about" in {f.name for f in dataclasses.fields(teacher)}:
        return dataclasses.replace(teacher, about=dict(about))
    teacher.about = dict(about)
    return teacher


# --------------------------------------------------------------------------- batches


def to_numpy(visible: Any) -> Any:
    """A batch (array, tensor, or dict of them) as numpy, which SB3's ``obs_to_tensor`` expects."""
    if isinstance(visible, dict):
        return {k: to_numpy(v) for k, v in visible.items()}
    if isinstance(visible, th.Tensor):
        return visible.detach().cpu().numpy()
    return np.asarray(visible)


def to_tensor(visible: Any) -> Any:
    """A batch (array, tensor, or dict of them) as CPU tensors of its own dtype (dicts stay dicts)."""
    if isinstance(visible, dict):
        return {k: to_tensor(v) for k, v in visible.items()}
    return th.as_tensor(to_numpy(visible))


def visible_features(space: gym.Space, visible: Any) -> th.Tensor:
    """A batch of ``space`` values as float features ``(n, f)`` for a network: Dict keys concatenated in
    the space's order, a Discrete value one-hot (an index is not a magnitude), anything else flattened."""
    if isinstance(space, spaces.Dict):
        return th.cat([visible_features(sub, visible[k]) for k, sub in space.spaces.items()], dim=1)
    x = to_tensor(visible)
    if isinstance(space, spaces.Discrete):
        index = x.reshape(-1).round().long() - int(space.start)
        return th.nn.functional.one_hot(index, int(space.n)).float()
    return x.reshape(x.shape[0], -1).float()


def batch_of_one(obs: Any) -> Any:
    """One observation (array or dict) as a batch of one."""
    if isinstance(obs, dict):
        return {k: np.asarray(v)[None] for k, v in obs.items()}
    return np.asarray(obs)[None]


def stack_observations(observations: list[Any]) -> Any:
    """A list of observations (arrays or dicts) as one batch."""
    if isinstance(observations[0], dict):
        return {k: np.stack([np.asarray(o[k]) for o in observations]) for k in observations[0]}
    return np.stack([np.asarray(o) for o in observations])
