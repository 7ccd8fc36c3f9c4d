"""Batch helpers shared by every kind of restriction: numpy or torch in, the same kind out.

A tensor is recognised only if torch is already imported (``sys.modules``), so the restrictions work on
numpy arrays without importing torch. Here live:

- :func:`is_tensor`, :func:`as_index`: what a batch is, and ``Discrete`` observations as integers;
- :func:`flat_features`, :func:`discrete_mask`: the values of any supported space as float32 features,
  and which of those must match exactly;
- :func:`torch_table`: a numpy lookup table as a tensor on a batch's device, cached on its owner.
"""

from __future__ import annotations

import sys
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlimm.errors import RlimmError

#: The observation spaces restrictions (and SB3) support, for messages.
SB3_SPACES = "Box, Discrete, MultiDiscrete, MultiBinary or Dict"


def is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (never imports torch)."""
    torch = sys.modules.get("torch")  # a tensor exists only if torch is imported
    return torch is not None and isinstance(x, torch.Tensor)


def as_index(obs: Any) -> Any:
    """A batch of ``Discrete`` observations as integers: ``(n,)`` or ``(n, 1)``, possibly float, gives
    ``(n,)`` int64 (numpy) or long (torch); a scalar gives a 0-d array."""
    if is_tensor(obs):
        x = obs[:, 0] if obs.ndim == 2 and obs.shape[1] == 1 else obs
        return (x.round() if x.is_floating_point() else x).long()
    x = np.asarray(obs)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if not np.issubdtype(x.dtype, np.integer):
        x = np.rint(x)
    return x.astype(np.int64)


def flat_features(space: gym.Space, value: Any) -> Any:
    """A batch of values of ``space`` as float32 features ``(n, f)`` (numpy or torch)."""
    if isinstance(space, spaces.Dict):
        parts = [flat_features(sub, value[key]) for key, sub in space.spaces.items()]
        if is_tensor(parts[0]):
            return sys.modules["torch"].cat(parts, dim=1)
        return np.concatenate(parts, axis=1)
    if is_tensor(value):
        return value.reshape(value.shape[0], -1).float()
    value = np.asarray(value)
    return value.reshape(value.shape[0], -1).astype(np.float32)


def discrete_mask(space: gym.Space) -> np.ndarray:
    """Which of ``flat_features(space, ·)`` are discrete (must match exactly)."""
    if isinstance(space, spaces.Discrete):
        return np.ones(1, dtype=bool)
    if isinstance(space, spaces.MultiDiscrete | spaces.MultiBinary):
        return np.ones(int(np.prod(space.shape)), dtype=bool)
    if isinstance(space, spaces.Box):
        return np.zeros(int(np.prod(space.shape)), dtype=bool)
    if isinstance(space, spaces.Dict):
        return np.concatenate([discrete_mask(sub) for sub in space.spaces.values()])
    raise RlimmError(f"observation space {space} is not supported: restrictions apply to {SB3_SPACES} spaces")


def torch_table(owner: Any, name: str, array: np.ndarray, like: Any) -> Any:
    """``array`` as a torch tensor on ``like``'s device, cached on ``owner`` (whose pickled state
    leaves the cache out: see :meth:`Restriction.__getstate__`)."""
    cache = owner.__dict__.setdefault("_torch_cache", {})
    key = (name, str(like.device))
    if key not in cache:
        cache[key] = sys.modules["torch"].as_tensor(array, device=like.device)
    return cache[key]
