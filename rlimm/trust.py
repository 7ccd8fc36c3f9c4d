"""λ that trusts the teacher only while it helps: the trust signal and the rule that moves λ.

A constant λ caps the learner wherever the teacher is weaker than what the learner can become, and a
schedule fixed in advance (linear decay) dies with the RL Zoo's decaying learning rate. :class:`Trust`
is a λ coefficient (``teacher_coef=Trust(λ, teacher_score=…)``) whose value ``λ · w`` follows a trust
weight ``w ∈ [floor, 1]`` that the algorithm updates once per update from data the update already has.

**The signal: would moving towards the teacher improve on the learner, at the learner's own states?**
Each regulariser compares the teacher P̄ with the distribution it pulls, C, by the first-order change
of the learner's return in that direction, E_x[Σ_a (P̄(a|x̄) − C(a|x)) · A(x, a)]:

- ``naive`` pulls π(·|x) itself: C = π, and the signal is the advantage of acting like the teacher;
- ``imm`` pulls the induced policy Q̄(·|x̄) = E[π(·|x̄, x̲) | x̄]: C = Q̄. The signal is 0 when the teacher
  already *is* the learner's induced policy (a correct induced teacher keeps its λ) and negative where
  the teacher would move the induced policy to worse actions.

On-policy (REINFORCE, PPO, A2C) the rollout gives actions a_t ~ π(·|x_t) with advantage estimates Â_t,
and the sum over actions is estimated by importance sampling with clipped ratios
ρ^D_t = min(D(a_t|·)/π(a_t|x_t), c) (:func:`on_policy_evidence`)::

    s = mean_t[(ρ^P̄_t − ρ^C_t) · (Â_t − mean Â)]        (ρ^π_t = 1 for naive)

Subtracting the rollout's mean advantage is a baseline: E_{a~π}[ρ^P̄ − ρ^C] = Σ_a (P̄ − C) = 0 at every
state, so it changes the estimate's expectation by nothing and removes the critic's overall bias from
it. The clip bounds the weight of any one action; the standard error is that of the per-row terms.
(Self-normalising each ratio estimator instead would compare states rather than actions when the
rollout holds one action per state: its normalisation is global, not per state.)

Off-policy (SAC), the critic gives the action values themselves: s is the batch mean of
min_i Q_i(x, a^P̄) − min_i Q_i(x, a^C) with a^P̄ ~ P̄(·|x̄) and a^C ~ C (:func:`critic_evidence`).

**The rule.** Each update's estimate becomes a z-score ``z_t = s/se``, clipped to ±:data:`Z_CLIP` so
that no single update decides. They are pooled over updates (Stouffer's sum) with an exponential
memory of ``memory`` (a fraction of the budget)::

    S ← γ S + z_t,   V ← γ² V + 1,   z = S / √max(V, 1),   γ = exp(−Δprogress / memory)

— a test over several updates, in which a small effect that persists adds up and evidence that is not
renewed fades (without fresh updates S shrinks while the denominator stays at one update's worth).
An update that cannot tell the teacher's direction from the policy's is skipped: one whose advantages
(or action-value differences) hardly vary, or whose importance weights hardly vary (the same action
throughout the rollout: the ratios then differ by rounding, and so would the estimate).

Each update then moves ``log w`` by ``d · ln(1/floor) / fall · Δprogress`` (clipped to [ln floor, 0]),
so persistent evidence takes w from 1 to ``floor`` within the fraction ``fall`` of the budget,
whatever the number of updates:

- d = −1 (distrust) when the learner's mean return over its last ``episodes`` training episodes,
  less its standard error, exceeds the teacher's measured score (the *reference*: ``teacher_score``;
  for ``imm``, ``source_score`` if given — the score of the policy the teacher is the induced model
  of, e.g. an induced expert's expert), or when z < −``threshold``;
- d = +1 (trust back, up to the configured λ) when z > ``threshold`` and the learner is below the
  reference;
- d = 0 otherwise: no evidence either way keeps λ where it is.

Why both: the first-order signals are informative early and vanish with the advantages near the
ceiling, and a weak teacher can look locally useful to a mediocre learner (measured on CartPole: a
teacher scoring 51 gives positive signals to a learner at 137), so a rule on the signal alone would not
lower λ once the learner has passed the teacher. The return test does; the signal catches a harmful
teacher before the learner passes it (a teacher worse than random), and brings trust back if the
learner falls below the teacher again.

**Assumptions and failure modes.** (1) The advantages are those of the policy that collected the
rollout; PPO's later epochs are not used. (2) The importance ratios are noisy with near-deterministic
policies; the clip trades that for bias. (3) Â and the critic are estimates:
early in training they are poor, and rows of one rollout are correlated, so ``z`` overstates the
evidence; ``threshold`` and the memory temper it. (4) The return test needs the teacher's score in the
units of the learner's training episodes (the same time limit and reward); without one (``None``)
only the signal acts. (5) An induced teacher scores poorly when acting (it averages over what it
cannot see): with ``imm`` give ``source_score``, or the return test drops it as soon as the learner
passes its acting score — safe (λ falls, as for ``none``), but it gives up IMM's consistency.
(6) ``floor`` > 0 keeps a small λ so that the signal (which needs the regulariser's forward) can
still bring trust back; at ``floor`` the pull is ``floor · λ``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rlimm.coefficients import Coefficient, check_lambda
from rlimm.errors import RlimmError

#: Importance ratios above this are clipped (on-policy signal).
RATIO_CLIP = 10.0
#: Each update's z-score is clipped to ± this before pooling.
Z_CLIP = 5.0
#: An update whose values vary by less than this share of their mean magnitude carries no information.
DEGENERATE = 1e-4
#: Nor does one whose importance weights vary by less than this coefficient of variation.
WEIGHT_SPREAD = 1e-2


@dataclass(frozen=True)
class Evidence:
    """One update's estimate of the trust signal.

    :param mean: the estimate s (in the units of the advantages or action values).
    :param se: its standard error.
    :param scale: the spread of the advantages (or action values) it was estimated from; ``mean /
        scale`` is the signal TensorBoard shows (``train/trust_signal``).
    :param n: the rows it was estimated from.
    """

    mean: float
    se: float
    scale: float
    n: int

    @property
    def signal(self) -> float:
        return self.mean / self.scale if self.scale > 0 else 0.0


@torch.no_grad()
def on_policy_evidence(
    advantages: torch.Tensor,
    log_pi: torch.Tensor,
    log_teacher: torch.Tensor,
    log_compared: torch.Tensor | None = None,
    clip: float = RATIO_CLIP,
) -> Evidence:
    """The on-policy trust signal of a rollout: E_{a~P̄}[A] − E_{a~C}[A] by importance sampling of
    the rollout's actions, with its mean advantage as baseline (see the module docstring).

    :param advantages: ``(N,)`` the advantage estimates Â_t of the rollout's actions.
    :param log_pi: ``(N,)`` log π(a_t|x_t), the probability (density) the acting policy gave them.
    :param log_teacher: ``(N,)`` log P̄(a_t|x̄_t).
    :param log_compared: ``(N,)`` log C(a_t|·) of the distribution the regulariser pulls (imm: the
        induced policy Q̄(a_t|x̄_t)); ``None``: π itself (naive), every ratio 1.
    :param clip: the ratios' upper clip.
    """
    a = advantages.detach().double().reshape(-1)
    n = a.numel()
    if n < 2 or float(a.std()) <= DEGENERATE * float(a.abs().mean()):
        return Evidence(0.0, float("inf"), 0.0, n)  # no spread of advantages: nothing to tell actions apart
    log_pi = log_pi.detach().double().reshape(-1)

    def weights(log_d: torch.Tensor | None) -> torch.Tensor:
        if log_d is None:
            return torch.ones_like(a)
        return torch.exp(log_d.detach().double().reshape(-1) - log_pi).clamp(max=clip)

    w_t, w_c = weights(log_teacher), weights(log_compared)
    if max(_spread(w_t), _spread(w_c)) < WEIGHT_SPREAD:
        return Evidence(0.0, float("inf"), 0.0, n)  # the same action throughout: no direction to compare
    terms = (w_t - w_c) * (a - a.mean())
    return Evidence(float(terms.mean()), float(terms.std() / math.sqrt(n)), float(a.std()), n)


def _spread(w: torch.Tensor) -> float:
    """The coefficient of variation of non-negative weights (0 when they are all 0)."""
    mean = float(w.mean())
    return float(w.std()) / mean if mean > 0 else 0.0


@torch.no_grad()
def critic_evidence(q_teacher: torch.Tensor, q_compared: torch.Tensor, q_scale: torch.Tensor) -> Evidence:
    """The off-policy trust signal of a minibatch: the mean of Q(x, a^P̄) − Q(x, a^C) over its states,
    one action drawn from each distribution per state.

    :param q_teacher: ``(B,)`` the critic's value of an action drawn from the teacher at each state.
    :param q_compared: ``(B,)`` the critic's value of an action drawn from the distribution the
        regulariser pulls (naive: the policy; imm: the induced policy).
    :param q_scale: ``(B,)`` action values whose spread scales the signal (the policy's own).
    """
    d = (q_teacher.detach() - q_compared.detach()).double().reshape(-1)
    n = d.numel()
    q = q_compared.detach().double()
    if n < 2 or float(d.std()) <= DEGENERATE * float(q.abs().mean()):
        return Evidence(0.0, float("inf"), 0.0, n)
    return Evidence(float(d.mean()), float(d.std() / math.sqrt(n)), float(q_scale.detach().double().std()), n)


def _positive(name: str, value: object, low_open: bool = True) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RlimmError(f"trust.{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (low_open and number == 0):
        raise RlimmError(f"trust.{name} must be a finite number {'>' if low_open else '>='} 0, got {value!r}")
    return number


def _score(name: str, value: object) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RlimmError(f"trust.{name} must be a number or null, got {value!r}") from None
    if not math.isfinite(number):
        raise RlimmError(f"trust.{name} must be a finite number or null, got {value!r}")
    return number


class Trust(Coefficient):
    """λ = ``lam`` · w: the configured λ scaled by a trust weight w ∈ [``floor``, 1] that the algorithm
    updates once per update (:meth:`observe`); see the module docstring for the rule.

    :param lam: the configured λ, the most the teacher is ever trusted with.
    :param teacher_score: the teacher's own score (mean episode return on the full environment, in the
        units of the learner's training episodes); ``None``: no return test.
    :param source_score: ``imm`` only: the score of the policy the teacher is the induced model of (an
        induced expert's expert); ``None``: ``teacher_score``.
    :param threshold: |z| beyond which the pooled signal counts as evidence.
    :param fall: the fraction of the budget in which persistent evidence moves w from 1 to ``floor``.
    :param memory: the signal's memory, a fraction of the budget.
    :param floor: the least trust (w never reaches 0, so that the signal can still act).
    :param episodes: the learner's last training episodes whose mean return, less its standard
        error, is tested against the reference score.
    """

    def __init__(
        self,
        lam: float,
        teacher_score: float | None = None,
        source_score: float | None = None,
        threshold: float = 2.0,
        fall: float = 0.1,
        memory: float = 0.05,
        floor: float = 0.01,
        episodes: int = 20,
    ) -> None:
        self.lam = check_lambda(lam)
        self.teacher_score = _score("teacher_score", teacher_score)
        self.source_score = _score("source_score", source_score)
        self.threshold = _positive("threshold", threshold, low_open=False)
        self.fall = _positive("fall", fall)
        self.memory = _positive("memory", memory)
        self.floor = _positive("floor", floor)
        if self.floor > 1:
            raise RlimmError(f"trust.floor must lie in (0, 1], got {floor!r}")
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise RlimmError(f"trust.episodes must be a whole number >= 1, got {episodes!r}")
        self.episodes = episodes
        self.reset()

    def reset(self) -> None:
        """Full trust, no evidence (the state at the start of training)."""
        self.weight = 1.0
        self.z = 0.0
        self.signal = 0.0
        self.passed = False
        self._pooled = 0.0
        self._variance = 0.0
        self._progress = 1.0

    def value(self, progress_remaining: float) -> float:
        return self.lam * self.weight

    def reference(self, kind: str) -> float | None:
        """The score the learner's returns are tested against: for ``imm`` the induced teacher's
        source if known, else the teacher's own."""
        if kind == "imm" and self.source_score is not None:
            return self.source_score
        return self.teacher_score

    def observe(
        self,
        evidence: Evidence | None,
        learner_returns: Sequence[float] | float | None,
        progress_remaining: float,
        kind: str,
    ) -> float:
        """Fold one update's evidence in and move the trust weight; returns the new λ.

        :param evidence: this update's signal (``None``: none was measured).
        :param learner_returns: the returns of the learner's training episodes so far, oldest first
            (the last ``episodes`` are tested), or one mean return; ``None``/empty: none has ended.
        :param progress_remaining: SB3's training progress (1 → 0) at this update.
        :param kind: ``naive`` or ``imm`` (which reference score applies).
        """
        progress = min(max(float(progress_remaining), 0.0), 1.0)
        step = max(self._progress - progress, 0.0)
        self._progress = progress
        decay = math.exp(-step / self.memory)
        self._pooled *= decay
        self._variance *= decay * decay
        if evidence is not None and math.isfinite(evidence.se) and evidence.se > 0:
            self._pooled += min(max(evidence.mean / evidence.se, -Z_CLIP), Z_CLIP)
            self._variance += 1.0
            self.signal = evidence.signal
        self.z = self._pooled / math.sqrt(max(self._variance, 1.0))
        reference = self.reference(kind)
        self.passed = reference is not None and self._learner_low(learner_returns) > reference
        direction = (
            -1.0 if self.passed or self.z < -self.threshold else 1.0 if self.z > self.threshold else 0.0
        )
        rate = math.log(1.0 / self.floor) / self.fall if self.floor < 1 else 0.0
        log_w = math.log(self.weight) + direction * rate * step
        self.weight = math.exp(min(max(log_w, math.log(self.floor)), 0.0))
        return self.value(progress)

    def _learner_low(self, returns: Sequence[float] | float | None) -> float:
        """The learner's recent mean return less its standard error (−inf without an episode)."""
        if returns is None:
            return -math.inf
        if isinstance(returns, int | float):
            return float(returns)
        recent = [float(r) for r in list(returns)[-self.episodes :]]
        if not recent:
            return -math.inf
        mean = sum(recent) / len(recent)
        if len(recent) < 2:
            return mean
        variance = sum((r - mean) ** 2 for r in recent) / (len(recent) - 1)
        return mean - math.sqrt(variance / len(recent))

    def __repr__(self) -> str:
        return (
            f"Trust(lam={self.lam:g}, teacher_score={self.teacher_score}, source_score={self.source_score}, "
            f"weight={self.weight:.4g})"
        )
