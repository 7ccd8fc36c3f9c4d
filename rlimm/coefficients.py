"""λ, the weight of the regulariser: constants, ratios, schedules and the paper's data-size rule.

λ may be given directly or as the ratio r = λ / (1 + λ) ∈ [0, 1) (the paper's parametrisation:
the share of the regulariser in ``loss + λ · reg``); λ = r / (1 − r).

λ follows SB3's convention for schedules (``learning_rate``, ``clip_range``): a number, or a callable
of ``progress_remaining``, which goes from 1 at the start of training to 0 at its end. The schedules
here (:class:`Constant`, :class:`Linear`) are small picklable objects of that kind, so that SB3's
``save``/``load`` and worker processes can carry them; any other callable works too. Ratios are
converted to λ here and nowhere else, and λ is checked here (:func:`lambda_at`) and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from rlimm.errors import RlimmError


def check_lambda(lam: float) -> float:
    """Return ``lam`` as a float, or raise if it is not a finite number ≥ 0."""
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise RlimmError(f"lambda must be a finite number >= 0, got {lam}")
    return lam


def check_ratio(ratio: float) -> float:
    """Return ``ratio`` as a float, or raise if it is outside [0, 1)."""
    ratio = float(ratio)
    if not (0.0 <= ratio < 1.0):
        raise RlimmError(f"lambda ratio must lie in [0, 1), got {ratio}")
    return ratio


def ratio_to_lambda(ratio: float) -> float:
    """λ = r / (1 − r) for a ratio r ∈ [0, 1)."""
    ratio = check_ratio(ratio)
    return ratio / (1.0 - ratio)


def lambda_to_ratio(lam: float) -> float:
    """r = λ / (1 + λ)."""
    lam = check_lambda(lam)
    return lam / (1.0 + lam)


def paper_grid_ratio(epochs: int) -> float:
    """The λ-ratio rule of the paper's grid experiment: r = round(−0.0002 · epochs + 0.1891, 1).

    It gives 0.2 up to 175 epochs and 0.1 from 200 to 500 (the range the authors tuned it on).
    """
    if epochs <= 0:
        raise RlimmError(f"the paper's lambda rule needs a positive number of epochs, got {epochs}")
    ratio = round(-0.0002 * epochs + 0.1891, 1)
    return check_ratio(max(ratio, 0.0))


class Coefficient:
    """Base class of the picklable λ schedules: ``coef(progress_remaining)`` returns λ."""

    def value(self, progress_remaining: float) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, progress_remaining: float) -> float:
        return self.value(progress_remaining)


@dataclass(frozen=True)
class Constant(Coefficient):
    """A constant λ."""

    lam: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", check_lambda(self.lam))

    @classmethod
    def from_ratio(cls, ratio: float) -> Constant:
        return cls(ratio_to_lambda(ratio))

    def value(self, progress_remaining: float) -> float:
        return self.lam


def check_until(until: float) -> float:
    """Return ``until`` as a float, or raise if it is outside (0, 1]."""
    try:
        until = float(until)
    except (TypeError, ValueError):
        raise RlimmError(f"lambda_until must be a number in (0, 1], got {until!r}") from None
    if not (0.0 < until <= 1.0):
        raise RlimmError(f"lambda_until must lie in (0, 1], got {until}")
    return until


@dataclass(frozen=True)
class Linear(Coefficient):
    """λ moving linearly from ``start`` (start of training, progress_remaining = 1) to ``end``, reached
    once the fraction ``until`` of the budget is done and kept from then on. ``Linear(λ, 0)`` anneals
    the teacher away over the whole run; ``Linear(λ, 0, until=0.5)`` over its first half, as
    kickstarting anneals its teacher over a fixed part of training, leaving the learner the rest (and
    the RL Zoo's decaying learning rate something to learn with)."""

    start: float
    end: float
    until: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", check_lambda(self.start))
        object.__setattr__(self, "end", check_lambda(self.end))
        object.__setattr__(self, "until", check_until(self.until))

    @classmethod
    def from_ratios(cls, start: float, end: float, until: float = 1.0) -> Linear:
        return cls(ratio_to_lambda(start), ratio_to_lambda(end), until)

    def value(self, progress_remaining: float) -> float:
        done = 1.0 - min(max(float(progress_remaining), 0.0), 1.0)
        # until = 1: done / 1.0 == done exactly, so the schedule is the plain linear one bit for bit.
        return self.start + (self.end - self.start) * min(done / self.until, 1.0)


#: What ``teacher_coef`` accepts: λ as a number, or a schedule of ``progress_remaining``.
TeacherCoef = float | Callable[[float], float]


def as_coefficient(value: TeacherCoef) -> Callable[[float], float]:
    """A number (λ, checked) becomes a :class:`Constant`; a callable of ``progress_remaining`` (a
    :class:`Coefficient` or an SB3-style schedule) is kept as it is."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Constant(float(value))
    if callable(value):
        return value
    raise RlimmError(
        f"teacher_coef must be a number (lambda) or a callable of progress_remaining, got {value!r}"
    )


def lambda_at(coef: Callable[[float], float], progress_remaining: float) -> float:
    """λ of the schedule ``coef`` at ``progress_remaining``, checked (finite, ≥ 0)."""
    return check_lambda(coef(progress_remaining))
