"""How the IMM term averages the policy over the hidden part: the four induction settings, spelled once.

Every algorithm's ``induction=`` argument, the config's ``induction:`` section and the regulariser take
these names (``method``, ``k``, ``estimator``, ``samples``, ``exclude``, ``pool``, ``belief``) and these
defaults. The defaults of ``exclude`` and ``pool`` were chosen with ``benchmarks/induction_error.py``,
which measures the estimate of the induced policy against the truth (docs/results.md). This module imports
neither torch nor stable-baselines3, so that loading a config stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from rlimm.errors import RlimmError


class EnumerableRestriction(Protocol):
    """What the settings read of a restriction (:class:`rlimm.envs.restrictions.Restriction`)."""

    exact: bool

    def describe(self) -> str: ...


#: ``auto``: ``exact`` when the restriction can enumerate its hidden part, else ``knn``.
METHODS = ("auto", "exact", "knn", "marginal")
#: Estimators of KL(teacher ‖ induced Gaussian mixture), as :data:`rlimm.gaussian_kl.ESTIMATORS`
#: (not imported: that module imports torch).
ESTIMATORS = ("mc", "quadrature", "moment")
#: ``exclude``: no neighbour from the state's own episode at all.
WHOLE_EPISODE = "episode"
#: Exact induction's belief over the hidden part: the restriction's fixed one, or the rollout's.
BELIEFS = ("fixed", "on_policy")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _whole_or_zero(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _one_of(name: str, accepted: tuple[str, ...]) -> Callable[[Any], Any]:
    """The check of a setting that takes one of ``accepted``."""

    def check(value: Any) -> Any:
        if value not in accepted:
            raise RlimmError(f"unknown induction {name} '{value}'; accepted: {', '.join(accepted)}")
        return value

    return check


def _at_least_one(name: str, unit: str = "") -> Callable[[Any], Any]:
    """The check of a setting that takes a whole number >= 1 (of ``unit``)."""

    def check(value: Any) -> Any:
        if not _whole(value):
            raise RlimmError(f"induction {name} must be a whole number{unit} >= 1, got {value!r}")
        return value

    return check


def _exclude(value: Any) -> int | str | None:
    if value == "none":  # `--set induction.exclude=none` (a null there means "not set")
        return None
    if not (value is None or value == WHOLE_EPISODE or _whole_or_zero(value)):
        raise RlimmError(
            f"induction exclude must be a whole number of steps >= 0, '{WHOLE_EPISODE}' or 'none'/None "
            f"(no exclusion), got {value!r}"
        )
    return value


#: Each setting's check, the one source of their validation (the settings' constructor and the
#: config's ``induction:`` section, :class:`rlimm.rl.config.InductionConfig`): the value, normalised, or
#: a one-line :class:`RlimmError`.
CHECKS: dict[str, Callable[[Any], Any]] = {
    "method": _one_of("method", METHODS),
    "k": _at_least_one("k"),
    "estimator": _one_of("estimator", ESTIMATORS),
    "samples": _at_least_one("samples"),
    "exclude": _exclude,
    "pool": _at_least_one("pool", " of rollouts"),
    "belief": _one_of("belief", BELIEFS),
}


@dataclass(frozen=True)
class InductionSettings:
    """The induction settings.

    :param method: ``exact`` (enumerate the hidden part with the restriction's belief), ``knn`` or
        ``marginal`` (k hidden parts drawn from the rollout, :mod:`rlimm.agents.imm.draws`), or
        ``auto`` (exact when the restriction can enumerate its hidden part, else knn).
    :param k: hidden parts per state for ``knn`` and ``marginal``.
    :param estimator: Box actions: how KL(teacher ‖ induced Gaussian mixture) is estimated, ``mc``,
        ``quadrature`` (≤ 2 action dimensions) or ``moment`` (:mod:`rlimm.gaussian_kl`).
    :param samples: Box actions, ``mc``: actions drawn from the teacher per state (the default is
        :data:`rlimm.gaussian_kl.DEFAULT_SAMPLES`).
    :param exclude: ``knn``: no neighbour from the state's own episode within this many steps of it
        (``"episode"``: none from its episode; ``None`` or ``"none"``: no exclusion). Their hidden part
        is nearly the state's own, which pulls the estimate towards the naive loss.
    :param pool: sampled induction draws hidden parts from this many rollouts (PPO, A2C, REINFORCE: the
        current one and those before it; their observations only, the policy is evaluated now) or, for
        SAC, minibatches' worth of replay rows (the minibatch and rows drawn from the replay buffer).
        Default 1, the current rollout or minibatch: earlier rollouts shrink the estimate's error when
        π(h | x̄) stays put (benchmarks/induction_error.py) but come from earlier policies, and on
        CartPole without velocities four rollouts cost IMM 35 points (docs/results.md).
    :param belief: exact induction's weights over the hidden values: ``fixed`` (the restriction's
        belief, uniform by default) or ``on_policy`` (how often the current rollout visits each hidden
        value of a context, smoothed towards the fixed belief by one pseudo-visit).
    """

    method: str = "auto"
    k: int = 16
    estimator: str = "mc"
    samples: int = 16
    exclude: int | str | None = 20
    pool: int = 1
    belief: str = "fixed"

    def __post_init__(self) -> None:
        for name, check in CHECKS.items():
            object.__setattr__(self, name, check(getattr(self, name)))

    @classmethod
    def of(cls, value: InductionSettings | Mapping[str, Any] | None) -> InductionSettings:
        """``value`` as settings: settings as they are, a mapping with some of the four keys (the rest
        default), ``None`` for the defaults."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            accepted = [f.name for f in fields(cls)]
            for key in value:
                if key not in accepted:
                    raise RlimmError(f"unknown induction setting '{key}'; accepted: {', '.join(accepted)}")
            return cls(**value)
        raise RlimmError(
            "induction must be InductionSettings, a dict with some of the keys "
            f"{', '.join(f.name for f in fields(cls))}, or None; got {value!r}"
        )

    def method_for(self, restriction: EnumerableRestriction) -> str:
        """The method used with ``restriction``: ``auto`` is ``exact`` when the restriction can enumerate
        its hidden part, else ``knn``; ``exact`` with a restriction that cannot is refused."""
        if self.method == "auto":
            return "exact" if restriction.exact else "knn"
        if self.method == "exact" and not restriction.exact:
            raise RlimmError(
                f"'induction: exact' needs a restriction whose hidden part can be enumerated; "
                f"{restriction.describe()} cannot: use knn or marginal"
            )
        return self.method

    def exclude_window(self) -> float | None:
        """``exclude`` as the draws take it: a number of steps, ``inf`` for the whole episode, ``None``."""
        if self.exclude is None:
            return None
        return float("inf") if self.exclude == WHOLE_EPISODE else float(self.exclude)

    def as_dict(self) -> dict[str, Any]:
        """The four settings by name."""
        return asdict(self)


#: The defaults, for signatures and the config.
DEFAULT_INDUCTION = InductionSettings()
