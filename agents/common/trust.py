"""The trust λ's glue to SB3 (:class:`rlimm.trust.Trust`): what an update gives the trust rule.

On-policy (REINFORCE, PPO, A2C) the evidence of an update is gathered from the minibatches of its first
pass over the rollout (:class:`RolloutEvidence`): each minibatch's actions, advantages and the
probability the acting policy gave them, with the teacher's probability and, for ``imm``, the
induced policy's — read off the regulariser's own forward, so the signal costs no extra pass. Once
every row of the rollout has been seen, the trust rule folds the evidence in. SAC's evidence comes
from its critic, per gradient step (:meth:`rlimm.agents.sac.SAC.train`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch as th
from gymnasium import spaces

from rlimm.agents.imm.regularizer import RegularizerOutput
from rlimm.trust import Evidence, Trust, on_policy_evidence


def trust_of(coef: Any) -> Trust | None:
    """The :class:`Trust` coefficient of an algorithm, or ``None`` for any other λ."""
    return coef if isinstance(coef, Trust) else None


def episode_returns(episodes: Iterable[dict]) -> list[float]:
    """The returns of the finished training episodes SB3 keeps (its ``ep_info_buffer``, raw rewards
    from its ``Monitor``), oldest first."""
    return [float(info["r"]) for info in episodes]


def action_column(actions: th.Tensor, action_space: spaces.Space) -> th.Tensor:
    """A buffer's actions in the form the families read: indices for ``Discrete``, rows otherwise."""
    if isinstance(action_space, spaces.Discrete):
        return actions.long().flatten()
    return actions


def record(logger: Any, trust: Trust) -> None:
    """The trust rule's state under fixed TensorBoard keys (``train/teacher_coef``, λ, is the algorithm's)."""
    logger.record("train/trust", trust.weight)
    logger.record("train/trust_signal", trust.signal)
    logger.record("train/trust_z", trust.z)
    logger.record("train/trust_passed", float(trust.passed))


class RolloutEvidence:
    """The rows of one rollout's first pass, gathered minibatch by minibatch.

    :param rows: the rollout's size (``n_steps · n_envs``): the pass is complete once that many rows
        were added.
    :param kind: ``naive`` (compared with the policy itself) or ``imm`` (with the induced policy).
    """

    def __init__(self, rows: int, kind: str) -> None:
        self.rows, self.kind = rows, kind
        self.seen = 0
        self._columns: list[tuple[th.Tensor, ...]] = []

    def add(self, batch: Any, out: RegularizerOutput, family: Any, action_space: spaces.Space) -> None:
        """Add a minibatch (its ``actions``, ``advantages``, ``old_log_prob``) with the regulariser's
        output on it (computed with ``keep=True``)."""
        self.seen += len(batch.advantages)
        if out.teacher is None or (self.kind == "imm" and out.induced is None):
            return  # nothing to compare (imm with λ = 0 computes no induced policy)
        with th.no_grad():
            actions = action_column(batch.actions, action_space)
            log_teacher = family.teacher_log_prob(out.teacher, actions)
            log_compared = family.induced_log_prob(*out.induced, actions) if self.kind == "imm" else None
        columns = (batch.advantages.detach(), batch.old_log_prob.detach(), log_teacher)
        self._columns.append(columns if log_compared is None else (*columns, log_compared))

    @property
    def complete(self) -> bool:
        return self.seen >= self.rows

    def evidence(self) -> Evidence | None:
        """The signal of the rows gathered (:func:`rlimm.trust.on_policy_evidence`)."""
        if not self._columns:
            return None
        stacked = [th.cat(parts).reshape(-1) for parts in zip(*self._columns, strict=True)]
        advantages, log_pi, log_teacher = stacked[:3]
        return on_policy_evidence(advantages, log_pi, log_teacher, stacked[3] if len(stacked) > 3 else None)
