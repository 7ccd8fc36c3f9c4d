"""Restrictions: which part of an observation a restricted model (the teacher) sees.

An observation x splits into a visible part x̄ and a hidden part x̲. A :class:`Restriction` answers,
for any common observation space:

- ``visible(obs)``            the teacher's input for a batch of full observations (its layout is
                              ``visible_space``);
- ``visible_features(obs)``   numeric visible features ``(n, f)`` for distances between visible parts,
                              with ``discrete_features`` (``(f,)`` bool) marking those that must match
                              exactly;
- ``combine(a, b)``           the observations made of the visible part of ``a`` and the hidden part
                              of ``b`` (sampled induction builds (x̄_i, x̲_j) with it);
- ``exact``                   whether the hidden parts of a visible part can be *enumerated* with a
                              belief (then ``enumerate_hidden`` and, for ``Discrete`` spaces, the
                              ``context_of``/``members``/``belief`` tables exist), or only sampled.

``visible_features``, ``combine`` and ``enumerate_hidden`` accept numpy arrays and torch tensors and
return the same kind (the regulariser calls them on the rollout buffer's tensors, where a ``Discrete``
observation is a float ``(n, 1)``).

The kinds:

- :class:`PartitionRestriction`: ``Discrete(S)`` partitioned into contexts, with a belief over the
  members of each; the tables turn exact induction into indexing plus one batched forward pass:
  ``context_of[obs]`` ``(S,)``, ``members[c, h]`` ``(C, H)``, ``belief[c, h]`` = π(h | c) ``(C, H)``;
- :class:`FactoredRestriction`: ``Discrete(∏ sizes)`` read as named factors (the grid ``obs = y·W + x``,
  Taxi, FrozenLake, CliffWalking), some visible; exact unless the hidden part has more than
  ``max_hidden`` values;
- :class:`CoordinateRestriction`: a 1-D ``Box``, some coordinates visible (sampled induction);
- :class:`KeyRestriction`: a ``Dict``, some keys visible (sampled induction);
- :class:`IdentityRestriction`: nothing hidden, any space (IMM and naive coincide with it).

:func:`restriction_for` builds the right one from an environment and a list of visible names or
indices (names known per env id are in :mod:`rlimm.envs.known`).
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlimm.envs.known import COORDINATES, DISCRETE_FACTORS, NOVEL, NOVEL_HIDDEN, env_id
from rlimm.errors import RlimmError

#: Above this many hidden values per visible part, a factored restriction is induced by sampling.
DEFAULT_MAX_HIDDEN = 64

#: The token that makes everything visible (the identity restriction).
ALL = "all"

_SB3_SPACES = "Box, Discrete, MultiDiscrete, MultiBinary or Dict"


# --------------------------------------------------------------------------- numpy / torch helpers


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor exists only if torch is imported
    return torch is not None and isinstance(x, torch.Tensor)


def _as_index(obs: Any) -> Any:
    """A batch of ``Discrete`` observations as integers: ``(n,)`` or ``(n, 1)``, possibly float, gives
    ``(n,)`` int64 (numpy) or long (torch); a scalar gives a 0-d array."""
    if _is_tensor(obs):
        x = obs[:, 0] if obs.ndim == 2 and obs.shape[1] == 1 else obs
        return (x.round() if x.is_floating_point() else x).long()
    x = np.asarray(obs)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if not np.issubdtype(x.dtype, np.integer):
        x = np.rint(x)
    return x.astype(np.int64)


def _flat_features(space: gym.Space, value: Any) -> Any:
    """A batch of values of ``space`` as float32 features ``(n, f)`` (numpy or torch)."""
    if isinstance(space, spaces.Dict):
        parts = [_flat_features(sub, value[key]) for key, sub in space.spaces.items()]
        if _is_tensor(parts[0]):
            return sys.modules["torch"].cat(parts, dim=1)
        return np.concatenate(parts, axis=1)
    if _is_tensor(value):
        return value.reshape(value.shape[0], -1).float()
    value = np.asarray(value)
    return value.reshape(value.shape[0], -1).astype(np.float32)


def _discrete_mask(space: gym.Space) -> np.ndarray:
    """Which of ``_flat_features(space, ·)`` are discrete (must match exactly)."""
    if isinstance(space, spaces.Discrete):
        return np.ones(1, dtype=bool)
    if isinstance(space, spaces.MultiDiscrete | spaces.MultiBinary):
        return np.ones(int(np.prod(space.shape)), dtype=bool)
    if isinstance(space, spaces.Box):
        return np.zeros(int(np.prod(space.shape)), dtype=bool)
    if isinstance(space, spaces.Dict):
        return np.concatenate([_discrete_mask(sub) for sub in space.spaces.values()])
    raise RlimmError(
        f"observation space {space} is not supported: restrictions apply to {_SB3_SPACES} spaces"
    )


def _same_layout(a: gym.Space, b: gym.Space) -> bool:
    """Whether two spaces give observations of the same layout (bounds may differ, e.g. after
    normalisation)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, spaces.Discrete):
        return int(a.n) == int(b.n) and int(a.start) == int(b.start)
    if isinstance(a, spaces.Dict):
        return list(a.spaces) == list(b.spaces) and all(_same_layout(a[k], b[k]) for k in a.spaces)
    if isinstance(a, spaces.MultiDiscrete):
        return np.array_equal(a.nvec, b.nvec)
    if isinstance(a, spaces.Box | spaces.MultiBinary):
        return a.shape == b.shape
    return a == b


def _torch_table(owner: Any, name: str, array: np.ndarray, like: Any) -> Any:
    """``array`` as a torch tensor on ``like``'s device, cached on ``owner``."""
    cache = owner.__dict__.setdefault("_torch_cache", {})
    key = (name, str(like.device))
    if key not in cache:
        cache[key] = sys.modules["torch"].as_tensor(array, device=like.device)
    return cache[key]


# --------------------------------------------------------------------------- the interface


class Restriction(ABC):
    """What a restricted model sees of an observation (see the module docstring).

    :ivar observation_space: the full observation space the restriction applies to.
    :ivar visible_space: what the restricted model (teacher) observes: the layout of ``visible``.
    :ivar exact: ``True`` if the hidden parts of a visible part can be enumerated with a belief
        (``enumerate_hidden``; for ``Discrete`` spaces also the ``context_of``/``members``/``belief``
        tables); ``False``: sampled induction only.
    :ivar discrete_features: bool ``(f,)``: which of ``visible_features`` must match exactly.
    :ivar visible_names: names of the visible parts (factors, coordinates or keys).
    """

    observation_space: gym.Space
    visible_space: gym.Space
    exact: bool
    discrete_features: np.ndarray
    visible_names: tuple[str, ...]

    def check_space(self, observation_space: gym.Space) -> None:
        """Raise :class:`RlimmError` unless this restriction fits ``observation_space``."""
        if not _same_layout(self.observation_space, observation_space):
            raise RlimmError(
                f"the restriction ({self.describe()}) applies to observations {self.observation_space}, "
                f"but the environment observes {observation_space}"
            )

    @property
    def n_features(self) -> int:
        """Number of columns of ``visible_features``."""
        return len(self.discrete_features)

    @abstractmethod
    def visible(self, obs: Any) -> Any:
        """The teacher's input for a batch of full observations, in ``visible_space``'s layout."""

    @abstractmethod
    def visible_features(self, obs: Any) -> Any:
        """Numeric visible features ``(n, f)`` float32 of a batch (numpy in, numpy out; torch in, torch
        out), for distances between visible parts; ``discrete_features`` marks exact-match columns."""

    @abstractmethod
    def combine(self, visible_from: Any, hidden_from: Any) -> Any:
        """Observations (same batch size ``n``) with the visible part of ``visible_from`` and the hidden
        part of ``hidden_from``, in the full layout, of the inputs' kind, dtype and shape."""

    def enumerate_hidden(self, obs: Any) -> tuple[Any, Any]:
        """For an exact restriction: every full observation sharing each observation's visible part.

        :return: ``(candidates, weights)``: ``candidates`` are ``n·H`` full observations in the input's
            layout (row ``i·H + h`` = visible part of ``obs[i]`` with hidden value ``h``), ``weights``
            the belief ``(n, H)`` float32 over them (rows sum to one).
        """
        raise NotImplementedError(f"{type(self).__name__} is not exact: its hidden parts can only be sampled")

    @abstractmethod
    def describe(self) -> str:
        """One line for logs: what is visible and what is hidden."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_torch_cache", None)  # device tensors are rebuilt on demand
        return state


# --------------------------------------------------------------------------- Discrete


class PartitionRestriction(Restriction):
    """A restriction given by the context of every observation of a ``Discrete(S)`` space.

    The visible part is the context index; the teacher's input is that index (``Discrete(C)``).

    :param context_of: integer array ``(S,)``: the visible context ``0 … C-1`` of each observation.
        Every context must occur.
    :param belief: ``None`` for a uniform belief over each context's members, or an array ``(S,)``
        of non-negative weights, normalised within each context.
    """

    exact = True

    def __init__(self, context_of: np.ndarray, belief: np.ndarray | None = None) -> None:
        context_of = np.asarray(context_of)
        if context_of.ndim != 1 or not np.issubdtype(context_of.dtype, np.integer):
            raise RlimmError("context_of must be a 1-D integer array, one context per observation")
        n_contexts = int(context_of.max()) + 1
        counts = np.bincount(context_of.clip(min=0), minlength=n_contexts)
        if context_of.min() < 0 or (counts == 0).any():
            raise RlimmError(f"contexts must be 0..{n_contexts - 1} and each must occur")
        weights = np.ones(len(context_of)) if belief is None else np.asarray(belief, float)
        if weights.shape != context_of.shape or (weights < 0).any():
            raise RlimmError("belief must be non-negative weights, one per observation")
        n_hidden = int(counts.max())
        # Members of each context in increasing order; contexts with fewer members are padded with
        # their first member at belief 0 (safe to index with).
        order = np.argsort(context_of, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        position = np.arange(len(context_of)) - starts[context_of[order]]
        members = np.repeat(order[starts][:, None], n_hidden, axis=1).astype(np.int64)
        members[context_of[order], position] = order
        bel = np.zeros((n_contexts, n_hidden))
        bel[context_of[order], position] = weights[order]
        totals = bel.sum(axis=1, keepdims=True)
        if (totals <= 0).any():
            raise RlimmError("belief gives zero weight to every member of some context")
        self.context_of = context_of.astype(np.int64)
        self.members = members
        self.belief = bel / totals

    @property
    def n_observations(self) -> int:
        return len(self.context_of)

    @property
    def n_contexts(self) -> int:
        return self.members.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.members.shape[1]

    @property
    def observation_space(self) -> spaces.Discrete:  # type: ignore[override]
        return spaces.Discrete(self.n_observations)

    @property
    def visible_space(self) -> spaces.Discrete:  # type: ignore[override]
        return spaces.Discrete(self.n_contexts)

    @property
    def discrete_features(self) -> np.ndarray:  # type: ignore[override]
        return np.ones(1, dtype=bool)

    @property
    def visible_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("context",)

    def visible(self, obs: Any) -> Any:
        """Context index of each observation: ``(n,)`` int64 (long for a tensor; 0-d for a scalar)."""
        index = _as_index(obs)
        if _is_tensor(index):
            return _torch_table(self, "context_of", self.context_of, index)[index]
        return self.context_of[index]

    def visible_features(self, obs: Any) -> Any:
        """The context index as one float32 feature ``(n, 1)``."""
        context = self.visible(obs)
        if _is_tensor(context):
            return context.reshape(-1, 1).float()
        return context.reshape(-1, 1).astype(np.float32)

    def combine(self, visible_from: Any, hidden_from: Any) -> Any:
        raise NotImplementedError(
            "a partition without named factors has no hidden part to swap; use a FactoredRestriction"
        )

    def enumerate_hidden(self, obs: Any) -> tuple[Any, Any]:
        context = self.visible(obs)
        if _is_tensor(context):
            members = _torch_table(self, "members", self.members, context)[context]
            belief = _torch_table(self, "belief", self.belief.astype(np.float32), context)[context]
            candidates = members.reshape(-1).to(obs.dtype)
        else:
            members, belief = self.members[context], self.belief[context].astype(np.float32)
            candidates = members.reshape(-1).astype(np.asarray(obs).dtype)
        shape = (-1,) + tuple(obs.shape[1:])
        return candidates.reshape(shape), belief

    def state_belief(self) -> np.ndarray:
        """π as a ``(C, S)`` matrix: the belief over observations of each context."""
        b = np.zeros((self.n_contexts, self.n_observations))
        rows = np.repeat(np.arange(self.n_contexts), self.n_hidden)
        np.add.at(b, (rows, self.members.reshape(-1)), self.belief.reshape(-1))
        return b

    def check_space(self, observation_space: gym.Space) -> None:
        """Raise unless ``observation_space`` is the ``Discrete(S)`` this restriction partitions."""
        if not isinstance(observation_space, spaces.Discrete):
            raise RlimmError(f"this restriction needs a Discrete observation space, got {observation_space}")
        if int(observation_space.n) != self.n_observations or int(observation_space.start) != 0:
            raise RlimmError(
                f"restriction covers {self.n_observations} observations but the environment has "
                f"{observation_space}"
            )

    def describe(self) -> str:
        return f"partition into {self.n_contexts} contexts of up to {self.n_hidden} members"


def _check_factors(factors: Mapping[str, int]) -> dict[str, int]:
    if not isinstance(factors, Mapping) or not factors:
        raise RlimmError(f"factors must be a non-empty mapping name -> size, got {factors!r}")
    checked = {}
    for name, size in factors.items():
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise RlimmError(f"factor '{name}' must have an integer size >= 1, got {size!r}")
        checked[str(name)] = int(size)
    return checked


class FactoredRestriction(PartitionRestriction):
    """Observation ``Discrete(∏ sizes)`` read as a row-major tuple of named factors; the restricted
    model sees the factors in ``visible`` and the belief over the rest is uniform.

    The teacher's input is the index of the visible factors' values (row-major in the order given);
    ``visible_features`` are those values; ``combine`` swaps digits with ``//`` and ``%``.

    :param factors: ordered mapping name → size, slowest-varying first (the grid: ``{"y": H, "x": W}``).
    :param visible: names of the visible factors.
    :param max_hidden: above this many hidden values per context the restriction is not ``exact``
        (induction samples hidden parts); the tables are built anyway.
    """

    def __init__(
        self, factors: dict[str, int], visible: Sequence[str], max_hidden: int = DEFAULT_MAX_HIDDEN
    ) -> None:
        factors = _check_factors(factors)
        names = list(factors)
        visible = [v for v in ([visible] if isinstance(visible, str) else list(visible))]
        unknown = [v for v in visible if v not in factors]
        if unknown or not visible:
            raise RlimmError(
                f"restriction names field(s) {unknown or visible} that the observation lacks; "
                f"fields: {', '.join(names)}"
            )
        if len(set(visible)) != len(visible) or len(visible) == len(names):
            raise RlimmError(
                f"visible fields must be distinct and leave something hidden, got {visible} of {names}"
            )
        sizes = [factors[n] for n in names]
        coords = np.unravel_index(np.arange(int(np.prod(sizes))), sizes)
        vis_idx = [names.index(v) for v in visible]
        context_of = np.ravel_multi_index(tuple(coords[i] for i in vis_idx), [sizes[i] for i in vis_idx])
        super().__init__(context_of.astype(np.int64))
        self.factors = dict(factors)
        self.visible_fields = visible
        self.max_hidden = int(max_hidden)
        self.exact = self.n_hidden <= self.max_hidden
        strides = np.cumprod([1] + sizes[::-1])[:-1][::-1]  # stride of each factor, row-major
        #: (stride, size) of each visible factor, in the order of ``visible``
        self._visible_digits = [(int(strides[i]), sizes[i]) for i in vis_idx]

    @property
    def visible_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.visible_fields)

    @property
    def hidden_fields(self) -> list[str]:
        return [n for n in self.factors if n not in self.visible_fields]

    @property
    def discrete_features(self) -> np.ndarray:  # type: ignore[override]
        return np.ones(len(self.visible_fields), dtype=bool)

    @classmethod
    def for_env(
        cls,
        env: gym.Env,
        visible: Sequence[str],
        factors: dict[str, int] | None = None,
        max_hidden: int = DEFAULT_MAX_HIDDEN,
    ) -> FactoredRestriction:
        """Build from an environment's factors: ``factors`` if given, else the ``observation_factors``
        (name → size) it declares, else those rlimm knows for its id (:mod:`rlimm.envs.known`)."""
        restriction = cls(_discrete_factors(env, factors, visible), visible, max_hidden)
        restriction.check_space(env.observation_space)
        return restriction

    def visible_features(self, obs: Any) -> Any:
        """The values of the visible factors, float32 ``(n, len(visible))``."""
        index = _as_index(obs).reshape(-1)
        columns = [index // stride % size for stride, size in self._visible_digits]
        if _is_tensor(index):
            return sys.modules["torch"].stack(columns, dim=1).float()
        return np.stack(columns, axis=1).astype(np.float32)

    def _visible_part(self, x: Any) -> Any:
        total = 0
        for stride, size in self._visible_digits:
            total = total + x // stride % size * stride
        return total

    def combine(self, visible_from: Any, hidden_from: Any) -> Any:
        """``visible digits of visible_from + (hidden_from − its visible digits)``, elementwise in the
        inputs' dtype (exact for float observations below 2²⁴)."""
        return self._visible_part(visible_from) + (hidden_from - self._visible_part(hidden_from))

    def describe(self) -> str:
        induction = "uniform belief" if self.exact else f"sampled: {self.n_hidden} hidden values"
        return f"visible {'+'.join(self.visible_fields)}, hidden {'+'.join(self.hidden_fields)} ({induction})"


# --------------------------------------------------------------------------- Box and Dict


class CoordinateRestriction(Restriction):
    """A 1-D ``Box`` observation of which the coordinates ``visible`` are seen (sampled induction).

    :param observation_space: the full ``Box``, 1-D.
    :param visible: indices of the visible coordinates (kept in increasing order).
    :param names: names of all coordinates, for messages (default their indices).
    """

    exact = False

    def __init__(
        self, observation_space: spaces.Box, visible: Sequence[int], names: Sequence[str] | None = None
    ) -> None:
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise RlimmError(
                f"coordinate restrictions need a 1-D Box observation space, got {observation_space}"
            )
        dim = observation_space.shape[0]
        names = tuple(str(n) for n in names) if names is not None else tuple(str(i) for i in range(dim))
        if len(names) != dim:
            raise RlimmError(f"{len(names)} coordinate names given for {dim} coordinates")
        visible = list(visible)
        bad = [
            i
            for i in visible
            if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < dim
        ]
        if bad:
            raise RlimmError(f"visible coordinate(s) {bad} out of range: indices 0..{dim - 1} accepted")
        if len(set(visible)) != len(visible):
            raise RlimmError(f"visible coordinates repeated: {visible}")
        if not visible:
            raise RlimmError("the restriction shows nothing: give at least one visible coordinate")
        if len(visible) == dim:
            raise RlimmError("the restriction hides nothing: use IdentityRestriction")
        self.observation_space = observation_space
        self.indices = np.array(sorted(int(i) for i in visible), dtype=np.int64)
        self.mask = np.zeros(dim, dtype=bool)
        self.mask[self.indices] = True
        self.names = names
        self.visible_names = tuple(names[i] for i in self.indices)
        self.hidden_names = tuple(n for i, n in enumerate(names) if not self.mask[i])
        self.visible_space = spaces.Box(
            low=observation_space.low[self.indices],
            high=observation_space.high[self.indices],
            dtype=observation_space.dtype,
        )
        self.discrete_features = np.zeros(len(self.indices), dtype=bool)

    def visible(self, obs: Any) -> Any:
        """The visible coordinates, ``(..., v)`` (works on one observation or a batch)."""
        if _is_tensor(obs):
            return obs[..., _torch_table(self, "indices", self.indices, obs)]
        return np.asarray(obs)[..., self.indices]

    def visible_features(self, obs: Any) -> Any:
        visible = self.visible(obs)
        return visible.float() if _is_tensor(visible) else visible.astype(np.float32)

    def combine(self, visible_from: Any, hidden_from: Any) -> Any:
        if _is_tensor(visible_from):
            mask = _torch_table(self, "mask", self.mask, visible_from)
            return sys.modules["torch"].where(mask, visible_from, hidden_from)
        return np.where(self.mask, visible_from, hidden_from)

    def describe(self) -> str:
        return f"visible {', '.join(self.visible_names)}; hidden {', '.join(self.hidden_names)} (sampled)"


class KeyRestriction(Restriction):
    """A ``Dict`` observation of which the keys ``visible`` are seen (sampled induction).

    :param observation_space: the full ``Dict``.
    :param visible: the visible keys (kept in the space's order).
    """

    exact = False

    def __init__(self, observation_space: spaces.Dict, visible: Sequence[str]) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise RlimmError(f"key restrictions need a Dict observation space, got {observation_space}")
        keys = list(observation_space.spaces)
        visible = [visible] if isinstance(visible, str) else list(visible)
        unknown = [k for k in visible if k not in keys]
        if unknown:
            raise RlimmError(f"unknown observation key(s) {unknown}; keys: {', '.join(keys)}")
        if len(set(visible)) != len(visible):
            raise RlimmError(f"visible keys repeated: {visible}")
        if not visible:
            raise RlimmError("the restriction shows nothing: give at least one visible key")
        if len(visible) == len(keys):
            raise RlimmError("the restriction hides nothing: use IdentityRestriction")
        self.observation_space = observation_space
        self.visible_names = tuple(k for k in keys if k in visible)
        self.hidden_names = tuple(k for k in keys if k not in visible)
        self.visible_space = spaces.Dict({k: observation_space[k] for k in self.visible_names})
        self.discrete_features = _discrete_mask(self.visible_space)

    def visible(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        return {k: obs[k] for k in self.visible_names}

    def visible_features(self, obs: Mapping[str, Any]) -> Any:
        """The visible values flattened per observation and concatenated in key order."""
        return _flat_features(self.visible_space, obs)

    def combine(self, visible_from: Mapping[str, Any], hidden_from: Mapping[str, Any]) -> dict[str, Any]:
        """Per key: the visible keys from ``visible_from``, the others from ``hidden_from`` (not copied)."""
        keys = self.observation_space.spaces
        return {k: (visible_from[k] if k in self.visible_names else hidden_from[k]) for k in keys}

    def describe(self) -> str:
        hidden = ", ".join(self.hidden_names)
        return f"visible keys {', '.join(self.visible_names)}; hidden {hidden} (sampled)"


# --------------------------------------------------------------------------- nothing hidden


class IdentityRestriction(Restriction):
    """Nothing hidden, any space: the teacher sees the whole observation and ``combine(a, b)`` is ``a``.

    Exact with one hidden value. On a ``Discrete`` space the instance is also a
    :class:`PartitionRestriction` in which every observation is its own context (the tables exist).
    """

    exact = True
    n_hidden = 1

    def __new__(cls, *args: Any, **kwargs: Any) -> IdentityRestriction:
        space = args[0] if args else kwargs.get("observation_space")
        if cls is IdentityRestriction and isinstance(space, spaces.Discrete):
            cls = DiscreteIdentityRestriction
        return super().__new__(cls)

    def __init__(self, observation_space: gym.Space) -> None:
        self.observation_space = observation_space
        self.visible_space = observation_space
        self.discrete_features = _discrete_mask(observation_space)
        self.visible_names = ("all",)

    def visible(self, obs: Any) -> Any:
        return dict(obs) if isinstance(obs, Mapping) else obs

    def visible_features(self, obs: Any) -> Any:
        return _flat_features(self.observation_space, obs)

    def combine(self, visible_from: Any, hidden_from: Any) -> Any:
        return visible_from

    def enumerate_hidden(self, obs: Any) -> tuple[Any, Any]:
        first = next(iter(obs.values())) if isinstance(obs, Mapping) else obs
        if _is_tensor(first):
            torch = sys.modules["torch"]
            return obs, torch.ones((len(first), 1), dtype=torch.float32, device=first.device)
        return obs, np.ones((len(first), 1), dtype=np.float32)

    def describe(self) -> str:
        return "everything visible (identity: IMM and naive coincide)"


class DiscreteIdentityRestriction(PartitionRestriction, IdentityRestriction):
    """The identity on ``Discrete(S)``: the partition into ``S`` singleton contexts."""

    def __init__(self, observation_space: spaces.Discrete) -> None:
        if int(observation_space.start) != 0:
            raise RlimmError(f"Discrete observation spaces must start at 0, got {observation_space}")
        PartitionRestriction.__init__(self, np.arange(int(observation_space.n), dtype=np.int64))

    @property
    def visible_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("all",)

    # visible, visible_features, enumerate_hidden, check_space: the partition's (first in the MRO)

    def combine(self, visible_from: Any, hidden_from: Any) -> Any:
        return visible_from

    def describe(self) -> str:
        return IdentityRestriction.describe(self)


# --------------------------------------------------------------------------- the factory


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


def _env_label(env: gym.Env) -> str:
    return env_id(env) or type(env.unwrapped).__name__


def _discrete_factors(
    env: gym.Env, factors: Mapping[str, int] | None, visible: Sequence[Any]
) -> dict[str, int]:
    """The factors of a ``Discrete`` env: given, declared (``observation_factors``), or known by id."""
    if factors is not None:
        return _check_factors(factors)
    declared = getattr(env.unwrapped, "observation_factors", None)
    if isinstance(declared, Mapping):
        return _check_factors(declared)
    known = DISCRETE_FACTORS.get(env_id(env) or "")
    if known is not None:
        return known(env)
    raise RlimmError(
        f"{type(env.unwrapped).__name__} ({_env_label(env)}) declares no observation_factors and rlimm knows "
        f"no factors for it, so a restriction by field names ({list(visible)}) cannot be built for it; "
        f"give them as factors: {{name: size, ...}} (slowest first). Known: {', '.join(DISCRETE_FACTORS)}"
    )


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
    label = _env_label(env)
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
        f"observations (visible: all works for {_SB3_SPACES})"
    )


def _discrete_restriction(
    env: gym.Env, items: list[Any], factors: Mapping[str, int] | None, max_hidden: int
) -> Restriction:
    space = env.observation_space
    label = _env_label(env)
    if int(space.start) != 0:
        raise RlimmError(f"Discrete observation spaces must start at 0, got {space} for {label}")
    named = _discrete_factors(env, factors, items)
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
    label = _env_label(env)
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
