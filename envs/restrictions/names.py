"""The name parser: :func:`restriction_for` builds the restriction of an environment's observation
space from a list of visible names or indices.

``Discrete`` observations are restricted by factor names (:mod:`rlimm.envs.restrictions.factored`),
1-D ``Box`` ones by coordinate indices, names or ``novel`` (:mod:`rlimm.envs.restrictions.coordinates`),
``Dict`` ones by key (:mod:`rlimm.envs.restrictions.keys`); ``all``, or every part, gives the identity.
The names known per environment id are in :mod:`rlimm.envs.restrictions.known`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlimm.envs.restrictions.arrays import SB3_SPACES
from rlimm.envs.restrictions.base import Restriction
from rlimm.envs.restrictions.coordinates import CoordinateRestriction
from rlimm.envs.restrictions.factored import DEFAULT_MAX_HIDDEN, FactoredRestriction, discrete_factors
from rlimm.envs.restrictions.identity import IdentityRestriction
from rlimm.envs.restrictions.keys import KeyRestriction
from rlimm.envs.restrictions.known import COORDINATES, NOVEL, NOVEL_HIDDEN, env_id, env_label
from rlimm.errors import RlimmError

#: The token that makes everything visible (the identity restriction).
ALL = "all"


def _is_index(item: Any) -> bool:
    if isinstance(item, bool):
        return False
    if isinstance(item, int | np.integer):
        return True
    return isinstance(item, str) and item.strip().lstrip("-").isdigit()


def _short(space: gym.Space) -> str:
    """A space for messages: ``Box(4,)`` rather than every bound."""
    if isinstance(space, spaces.Box):
        return f"Box{space.shape}"
    return str(space)


def restriction_for(
    env: gym.Env,
    visible: Sequence[str | int] | str | None = None,
    *,
    factors: Mapping[str, int] | None = None,
    max_hidden: int = DEFAULT_MAX_HIDDEN,
) -> Restriction:
    """The restriction of ``env``'s observation space that shows ``visible``.

    :param visible: ``None`` or ``["all"]``: everything (:class:`IdentityRestriction`). Otherwise, by
        observation space: ``Discrete`` — factor names (``factors``, else the env's
        ``observation_factors``, else the names known for its id, e.g. Taxi-v4 ``taxi_row, taxi_col,
        passenger, destination``); 1-D ``Box`` — coordinate indices (ints or digit strings) or names
        known for its id (CartPole-v1 ``x, x_dot, theta, theta_dot``, ...), or ``["novel"]`` for the RL
        Zoo's no-velocity view; ``Dict`` — keys. Showing every part gives the identity.
    :param factors: ``{name: size}`` of a ``Discrete`` observation, slowest first (overrides the others).
    :param max_hidden: see :class:`FactoredRestriction`.
    """
    space = env.observation_space
    label = env_label(env)
    if visible is None:
        items: list[Any] = [ALL]
    else:
        items = [visible] if isinstance(visible, str | int | np.integer) else list(visible)
    if not items:
        raise RlimmError("the restriction shows nothing: give at least one visible part, or 'all'")
    if any(isinstance(i, str) and i.strip().lower() == ALL for i in items):
        if len(items) != 1:
            raise RlimmError(f"'{ALL}' shows everything and cannot be combined with other parts, got {items}")
        return IdentityRestriction(space)
    if factors is not None and not isinstance(space, spaces.Discrete):
        raise RlimmError(f"factors apply to Discrete observations; {label} observes {_short(space)}")
    if isinstance(space, spaces.Discrete):
        return _discrete_restriction(env, items, factors, max_hidden)
    if isinstance(space, spaces.Box):
        return _coordinate_restriction(env, items)
    if isinstance(space, spaces.Dict):
        if any(not isinstance(i, str) for i in items):
            raise RlimmError(
                f"Dict observations are restricted by key; got {items}; keys: {', '.join(space.spaces)}"
            )
        if sorted(set(items)) == sorted(space.spaces) and len(items) == len(space.spaces):
            return IdentityRestriction(space)
        return KeyRestriction(space, items)
    raise RlimmError(
        f"{label} observes {_short(space)}: restrictions by part apply to Discrete, 1-D Box and Dict "
        f"observations (visible: all works for {SB3_SPACES})"
    )


def _discrete_restriction(
    env: gym.Env, items: list[Any], factors: Mapping[str, int] | None, max_hidden: int
) -> Restriction:
    space = env.observation_space
    label = env_label(env)
    if int(space.start) != 0:
        raise RlimmError(f"Discrete observation spaces must start at 0, got {space} for {label}")
    named = discrete_factors(env, factors, items)
    n = int(np.prod(list(named.values())))
    if n != int(space.n):
        raise RlimmError(f"factors {named} give {n} observations but {label} observes {space}")
    indices = [i for i in items if _is_index(i)]
    if indices:
        raise RlimmError(
            f"coordinate indices {indices} apply to Box observations; {label} observes {space}, restricted "
            f"by factor names: {', '.join(named)}"
        )
    if any(isinstance(i, str) and i.strip().lower() == NOVEL for i in items):
        raise RlimmError(
            f"'{NOVEL}' hides the velocities of a Box observation; {label} observes {space}, restricted by "
            f"factor names: {', '.join(named)}"
        )
    unknown = [i for i in items if i not in named]
    if unknown:
        raise RlimmError(f"unknown factor(s) {unknown} of {label}'s observation; fields: {', '.join(named)}")
    if len(set(items)) != len(items):
        raise RlimmError(f"visible factors repeated: {items}")
    if len(items) == len(named):
        return IdentityRestriction(space)
    return FactoredRestriction(named, items, max_hidden)


def _coordinate_restriction(env: gym.Env, items: list[Any]) -> Restriction:
    space = env.observation_space
    ident = env_id(env)
    label = env_label(env)
    if len(space.shape) != 1:
        raise RlimmError(
            f"{label} observes a Box of shape {space.shape}, not 1-D: coordinate restrictions need a flat "
            "Box (flatten it first, e.g. gymnasium.wrappers.FlattenObservation), or use visible: all"
        )
    dim = space.shape[0]
    known = COORDINATES.get(ident or "")
    names = known if known is not None and len(known) == dim else None
    accepted = f"indices 0..{dim - 1}" + (f", names {', '.join(names)}" if names else "")
    if ident in NOVEL_HIDDEN:
        accepted += f", or '{NOVEL}'"
    if any(isinstance(i, str) and i.strip().lower() == NOVEL for i in items):
        if len(items) != 1:
            raise RlimmError(f"'{NOVEL}' is a whole view and cannot be combined with other parts: {items}")
        if ident not in NOVEL_HIDDEN or known is None or len(known) != dim:
            raise RlimmError(
                f"no '{NOVEL}' mask is known for {label} ({_short(space)}); known for: "
                f"{', '.join(NOVEL_HIDDEN)}. Give the visible coordinates instead ({accepted})"
            )
        hidden = set(NOVEL_HIDDEN[ident])
        return CoordinateRestriction(space, [i for i in range(dim) if i not in hidden], names)
    resolved = []
    for item in items:
        if _is_index(item):
            index = int(item)
            if not 0 <= index < dim:
                raise RlimmError(
                    f"visible coordinate {item!r} out of range for {label} ({_short(space)}); "
                    f"accepted: {accepted}"
                )
            resolved.append(index)
        elif isinstance(item, str) and names is not None and item in names:
            resolved.append(names.index(item))
        else:
            what = f"not a coordinate name of {label}" if names else f"{label} has no coordinate names"
            raise RlimmError(f"unknown visible part {item!r}: {what} ({_short(space)}); accepted: {accepted}")
    if len(set(resolved)) != len(resolved):
        raise RlimmError(f"visible coordinates repeated: {items} (indices {resolved})")
    if len(resolved) == dim:
        return IdentityRestriction(space)
    return CoordinateRestriction(space, resolved, names)
