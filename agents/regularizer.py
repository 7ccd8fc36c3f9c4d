"""The teacher regulariser shared by every rlimm algorithm.

``loss = algorithm loss + λ · R`` where R is

- ``none``:  0 (the plain algorithm);
- ``naive``: mean over the batch of KL(P̄(·|x̄) ‖ π(·|x))    — pointwise, at each visited state;
- ``imm``:   mean over the batch of KL(P̄(·|x̄) ‖ π̄(·|x̄))  — π̄ is the policy induced over the
  hidden part with the restriction's belief, computed exactly: one batched forward over the members
  of the contexts that occur in the batch.

Both KLs are computed as diagnostics whichever one is optimised, so IMM and naive runs can be
compared on one TensorBoard view.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rlimm.agents.teachers import TabularTeacher
from rlimm.envs.restriction import PartitionRestriction

from rlimm.coefficients import Coefficient, as_coefficient
from rlimm.errors import RlimmError
from rlimm.induction import induced_log_probs
from rlimm.losses import kl_from_teacher

REGULARIZERS = ("none", "naive", "imm")


@dataclass
class RegularizerOutput:
    """What one evaluation of the regulariser gives.

    :param loss: ``λ · R`` with gradient (a zero tensor for ``none``).
    :param lam: the λ used.
    :param imm_kl: batch mean of KL(teacher ‖ induced policy), no gradient (``nan`` if not computed).
    :param naive_kl: batch mean of KL(teacher ‖ policy at the full state), no gradient.
    """

    loss: torch.Tensor
    lam: float
    imm_kl: float
    naive_kl: float


def check_regularizer(kind: str) -> str:
    if kind not in REGULARIZERS:
        raise RlimmError(f"unknown regularizer '{kind}'; accepted: {', '.join(REGULARIZERS)}")
    return kind


def policy_logits(policy: torch.nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """Action logits of an SB3 policy for a batch of (raw, unpreprocessed) observations."""
    return policy.get_distribution(obs).distribution.logits


class TeacherRegularizer:
    """λ times the divergence between a restricted teacher and the policy.

    :param kind: ``none``, ``naive`` or ``imm``.
    :param teacher: the restricted teacher (required unless ``kind == "none"``).
    :param restriction: what the teacher sees of an observation (required with a teacher).
    :param coef: λ as a number or a :class:`~rlimm.coefficients.Coefficient` of training progress.
    :param device: where the lookup tables live (the policy's device).
    """

    def __init__(
        self,
        kind: str,
        teacher: TabularTeacher | None,
        restriction: PartitionRestriction | None,
        coef: float | Coefficient,
        device: torch.device | str = "cpu",
    ) -> None:
        self.kind = check_regularizer(kind)
        self.coef = as_coefficient(coef)
        self.teacher = teacher
        self.restriction = restriction
        if teacher is not None:
            if restriction is None:
                raise RlimmError("a teacher needs a restriction that says what it sees")
            dev = torch.device(device)
            self._context_of = torch.as_tensor(restriction.context_of, device=dev)
            self._members = torch.as_tensor(restriction.members, device=dev)
            self._belief = torch.as_tensor(restriction.belief, dtype=torch.float32, device=dev)
            self._teacher = torch.as_tensor(teacher.table, dtype=torch.float32, device=dev)

    @property
    def active(self) -> bool:
        return self.kind != "none"

    def compute(
        self,
        policy: torch.nn.Module,
        obs: torch.Tensor,
        logits: torch.Tensor,
        progress: float,
        diagnostics: bool = True,
    ) -> RegularizerOutput:
        """Evaluate the regulariser on a batch.

        :param policy: the SB3 policy being trained.
        :param obs: the batch's observations as stored in the rollout buffer (discrete indices).
        :param logits: the policy's logits at ``obs`` (already computed by the algorithm's loss).
        :param progress: fraction of training done, for λ schedules.
        :param diagnostics: also compute the KL that is not optimised (without gradient).
        """
        lam = self.coef.value(progress)
        zero = logits.new_zeros(())
        if self.teacher is None:
            if self.active:
                raise RlimmError(
                    f"regularizer '{self.kind}' has no teacher: pass teacher=... to the "
                    "constructor or to load()"
                )
            return RegularizerOutput(zero, lam, float("nan"), float("nan"))

        contexts = self._context_of[obs.long().reshape(-1)]
        teacher_probs = self._teacher[contexts]
        use_imm = self.kind == "imm" and lam > 0
        use_naive = self.kind == "naive" and lam > 0

        with torch.set_grad_enabled(torch.is_grad_enabled() and use_naive):
            naive = kl_from_teacher(teacher_probs, torch.log_softmax(logits, dim=-1)).mean()
        imm = None
        if use_imm or diagnostics:
            with torch.set_grad_enabled(torch.is_grad_enabled() and use_imm):
                imm = self._imm_kl(policy, contexts, teacher_probs)

        loss = zero
        if use_imm:
            loss = lam * imm
        elif use_naive:
            loss = lam * naive
        return RegularizerOutput(loss, lam, float("nan") if imm is None else imm.item(), naive.item())

    def _imm_kl(
        self, policy: torch.nn.Module, contexts: torch.Tensor, teacher_probs: torch.Tensor
    ) -> torch.Tensor:
        # Induce once per distinct context in the batch: one forward over its members.
        unique, inverse = torch.unique(contexts, return_inverse=True)
        members = self._members[unique]  # (U, H) observations
        logits = policy_logits(policy, members.reshape(-1).to(torch.float32))
        logits = logits.reshape(members.shape[0], members.shape[1], -1)
        log_induced = induced_log_probs(logits, self._belief[unique])[inverse]
        return kl_from_teacher(teacher_probs, log_induced).mean()


class RegularizedMixin:
    """What every rlimm algorithm adds to its SB3 base: the teacher arguments, the regulariser
    built from them, and save/load that keeps the teacher out of the zip.

    ``Algo.load(path, teacher=t)`` re-attaches a teacher (SB3's ``load`` sets keyword arguments on
    the model before ``_setup_model``); a model loaded without one predicts normally and refuses
    to train with an active regulariser.
    """

    regularizer_kind: str
    teacher: TabularTeacher | None
    restriction: PartitionRestriction | None
    teacher_coef: float | Coefficient

    def _init_teacher(
        self,
        regularizer: str,
        teacher: TabularTeacher | None,
        restriction: PartitionRestriction | None,
        teacher_coef: float | Coefficient,
    ) -> None:
        self.regularizer_kind = check_regularizer(regularizer)
        as_coefficient(teacher_coef)  # validate early, with a clear message
        if regularizer != "none" and teacher is None:
            raise RlimmError(f"regularizer '{regularizer}' needs a teacher")
        self.teacher = teacher
        self.restriction = restriction
        self.teacher_coef = teacher_coef

    def _setup_regularizer(self) -> None:
        teacher = getattr(self, "teacher", None)
        if teacher is not None:
            if self.restriction is None:
                raise RlimmError("a teacher needs a restriction that says what it sees")
            self.restriction.check_space(self.observation_space)
            teacher.check_compatible(self.restriction, self.action_space)
        self.regularizer = TeacherRegularizer(
            self.regularizer_kind, teacher, self.restriction, self.teacher_coef, self.device
        )

    def _excluded_save_params(self) -> list[str]:
        # The teacher can be large or live elsewhere (another model): never pickled with the agent.
        return [*super()._excluded_save_params(), "teacher", "regularizer"]  # type: ignore[misc]

    def _regularize(self, obs: torch.Tensor, logits: torch.Tensor) -> RegularizerOutput:
        """Evaluate the regulariser and record it under the fixed ``train/`` keys."""
        progress = 1.0 - self._current_progress_remaining  # type: ignore[attr-defined]
        out = self.regularizer.compute(self.policy, obs, logits, progress)  # type: ignore[attr-defined]
        logger = self.logger  # type: ignore[attr-defined]
        logger.record("train/regularizer_loss", out.loss.item())
        logger.record("train/lambda", out.lam)
        logger.record("train/imm_kl", out.imm_kl)
        logger.record("train/naive_kl", out.naive_kl)
        return out
