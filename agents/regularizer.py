"""The teacher regulariser shared by every rlimm algorithm.

``loss = algorithm loss + λ · R`` where R is

- ``none``:  0 (the plain algorithm);
- ``naive``: mean over the batch of KL(P̄(·|x̄) ‖ π(·|x))    — pointwise, at each visited state;
- ``imm``:   mean over the batch of KL(P̄(·|x̄) ‖ π̄(·|x̄))  — π̄ is the policy induced over the
  hidden part with the restriction's belief, computed exactly: one batched forward over the members
  of the contexts that occur in the batch.

The divergences are :func:`rlimm.losses.imm_loss` and :func:`rlimm.losses.naive_loss`; this module
only gathers their inputs from a batch. Both KLs are computed as diagnostics whichever one is
optimised, so IMM and naive runs can be compared on one TensorBoard view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.logger import HParam, TensorBoardOutputFormat

from rlimm.agents.buffers import ContextRolloutBuffer
from rlimm.agents.policies import DistributionEvaluationMixin
from rlimm.agents.teachers import TabularTeacher
from rlimm.coefficients import TeacherCoef, as_coefficient, lambda_at
from rlimm.envs.restriction import PartitionRestriction
from rlimm.errors import RlimmError
from rlimm.losses import imm_loss, naive_loss

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


def action_logits(distribution: Distribution) -> torch.Tensor:
    """The logits of a categorical action distribution (the actions the regulariser supports)."""
    if not isinstance(distribution, CategoricalDistribution):
        raise RlimmError(
            f"the teacher regulariser needs a Discrete action space; got a {type(distribution).__name__} "
            "(continuous actions: use regularizer 'none')"
        )
    return distribution.distribution.logits


class TeacherRegularizer:
    """λ times the divergence between a restricted teacher and the policy.

    :param kind: ``none``, ``naive`` or ``imm``.
    :param teacher: the restricted teacher (required unless ``kind == "none"``).
    :param restriction: what the teacher sees of an observation (required with a teacher).
    :param coef: λ as a number or a callable of SB3's ``progress_remaining``
        (see :mod:`rlimm.coefficients`).
    :param device: where the lookup tables live (the policy's device).
    """

    def __init__(
        self,
        kind: str,
        teacher: TabularTeacher | None,
        restriction: PartitionRestriction | None,
        coef: TeacherCoef,
        device: torch.device | str = "cpu",
    ) -> None:
        self.kind = check_regularizer(kind)
        self.coef: Callable[[float], float] = as_coefficient(coef)
        self.teacher = teacher
        self.restriction = restriction
        if teacher is not None:
            if restriction is None:
                raise RlimmError("a teacher needs a restriction that says what it sees")
            dev = torch.device(device)
            self._members = torch.as_tensor(restriction.members, device=dev)
            self._belief = torch.as_tensor(restriction.belief, dtype=torch.float32, device=dev)
            self._teacher = torch.as_tensor(teacher.table, dtype=torch.float32, device=dev)

    @property
    def enabled(self) -> bool:
        """Whether training computes this regulariser at all: it has a teacher (for the loss or, with
        ``none``, for the diagnostics) or is asked for one. Off, training is the plain algorithm."""
        return self.teacher is not None or self.kind != "none"

    def compute(
        self,
        policy: torch.nn.Module,
        contexts: torch.Tensor,
        distribution: Distribution,
        progress_remaining: float,
        diagnostics: bool = True,
    ) -> RegularizerOutput:
        """Evaluate the regulariser on a batch.

        :param policy: the SB3 policy being trained.
        :param contexts: ``(batch,)`` visible context of each observation, recorded at collection
            time (:class:`~rlimm.agents.buffers.ContextRolloutBuffer`).
        :param distribution: the policy's action distribution at the batch's observations (already
            computed for the algorithm's own loss).
        :param progress_remaining: SB3's training progress (1 → 0), for λ schedules.
        :param diagnostics: also compute the KL that is not optimised (without gradient).
        """
        lam = lambda_at(self.coef, progress_remaining)
        if self.teacher is None:
            if self.kind != "none":
                raise RlimmError(
                    f"regularizer '{self.kind}' has no teacher: pass teacher=... to the "
                    "constructor or to load()"
                )
            return RegularizerOutput(torch.zeros(()), lam, float("nan"), float("nan"))

        logits = action_logits(distribution)
        contexts = contexts.long().reshape(-1).to(self._teacher.device)
        teacher_probs = self._teacher[contexts]
        use_imm = self.kind == "imm" and lam > 0
        use_naive = self.kind == "naive" and lam > 0

        with torch.set_grad_enabled(torch.is_grad_enabled() and use_naive):
            naive = naive_loss(teacher_probs, logits)
        imm = None
        if use_imm or diagnostics:
            with torch.set_grad_enabled(torch.is_grad_enabled() and use_imm):
                imm = self._imm_loss(policy, contexts, teacher_probs)

        loss = logits.new_zeros(())
        if use_imm:
            loss = lam * imm
        elif use_naive:
            loss = lam * naive
        return RegularizerOutput(loss, lam, float("nan") if imm is None else imm.item(), naive.item())

    def _imm_loss(
        self, policy: torch.nn.Module, contexts: torch.Tensor, teacher_probs: torch.Tensor
    ) -> torch.Tensor:
        # Induce once per distinct context in the batch: one forward over its members.
        unique, rows = torch.unique(contexts, return_inverse=True)
        members = self._members[unique]  # (U, H) observations
        logits = action_logits(policy.get_distribution(members.reshape(-1).to(torch.float32)))
        hidden_logits = logits.reshape(members.shape[0], members.shape[1], -1)
        return imm_loss(teacher_probs, hidden_logits, self._belief[unique], rows=rows)


class RegularizedMixin:
    """What every rlimm algorithm adds to its SB3 base (put it first in the bases):

    - the constructor arguments ``regularizer``, ``teacher``, ``restriction``, ``teacher_coef``
      (all with defaults, so SB3's ``load`` can rebuild the object), stored by :meth:`_init_teacher`
      before the model is set up;
    - a :class:`~rlimm.agents.buffers.ContextRolloutBuffer` when there is a restriction, so the
      teacher's view of each observation is recorded at collection time;
    - the shared :class:`TeacherRegularizer` (:meth:`_teacher_loss`, the one call each algorithm's
      ``train()`` adds) and its fixed TensorBoard keys (``train/…``), the hyperparameters in
      TensorBoard's HPARAMS tab, and run folders named ``<Algo>_<regularizer>``;
    - save/load that keeps the teacher out of the zip: ``Algo.load(path, teacher=t)`` re-attaches
      one (SB3's ``load`` sets keyword arguments on the model before ``_setup_model``); a model
      loaded without one predicts normally and refuses to train with an active regulariser.
    """

    regularizer_kind: str
    teacher: TabularTeacher | None
    restriction: PartitionRestriction | None
    teacher_coef: TeacherCoef
    regularizer: TeacherRegularizer

    def _init_teacher(
        self,
        regularizer: str,
        teacher: TabularTeacher | None,
        restriction: PartitionRestriction | None,
        teacher_coef: TeacherCoef,
    ) -> None:
        self.regularizer_kind = check_regularizer(regularizer)
        as_coefficient(teacher_coef)  # validate early, with a clear message
        if regularizer != "none" and teacher is None:
            raise RlimmError(f"regularizer '{regularizer}' needs a teacher")
        self.teacher = teacher
        self.restriction = restriction
        self.teacher_coef = teacher_coef

    def _setup_model(self) -> None:
        if self.restriction is not None:
            custom = self.rollout_buffer_class  # type: ignore[attr-defined]
            if custom is not None and not issubclass(custom, ContextRolloutBuffer):
                raise RlimmError(
                    f"rollout_buffer_class {custom.__name__} cannot record the teacher's contexts; "
                    "leave it unset (rlimm uses ContextRolloutBuffer)"
                )
            self.rollout_buffer_class = ContextRolloutBuffer
            self.rollout_buffer_kwargs = {  # type: ignore[attr-defined]
                **self.rollout_buffer_kwargs,  # type: ignore[attr-defined]
                "context_of": self.restriction.context_of,
            }
        super()._setup_model()  # type: ignore[misc]
        if not isinstance(self.policy, DistributionEvaluationMixin):  # type: ignore[attr-defined]
            raise RlimmError(
                f"policy {type(self.policy).__name__} cannot return its action distribution; use "  # type: ignore[attr-defined]
                "'MlpPolicy', 'CnnPolicy', 'MultiInputPolicy' or a policy of rlimm.agents.policies"
            )
        self._setup_regularizer()

    def _setup_regularizer(self) -> None:
        teacher = getattr(self, "teacher", None)
        if teacher is not None:
            if self.restriction is None:  # checked here, before the spaces are compared
                raise RlimmError("a teacher needs a restriction that says what it sees")
            self.restriction.check_space(self.observation_space)  # type: ignore[attr-defined]
            teacher.check_compatible(self.restriction, self.action_space)  # type: ignore[attr-defined]
        self.regularizer = TeacherRegularizer(
            self.regularizer_kind,
            teacher,
            self.restriction,
            self.teacher_coef,
            self.device,  # type: ignore[attr-defined]
        )

    def _excluded_save_params(self) -> list[str]:
        # The teacher can be large or live elsewhere (another model): never pickled with the agent.
        return [*super()._excluded_save_params(), "teacher", "regularizer"]  # type: ignore[misc]

    def learn(self, total_timesteps: int, *args: Any, tb_log_name: str | None = None, **kwargs: Any) -> Any:
        """SB3's ``learn``; TensorBoard runs are named ``<Algo>_<regularizer>`` unless given."""
        name = tb_log_name or f"{type(self).__name__}_{self.regularizer_kind}"
        return super().learn(total_timesteps, *args, tb_log_name=name, **kwargs)  # type: ignore[misc]

    def _setup_learn(self, *args: Any, **kwargs: Any) -> Any:
        out = super()._setup_learn(*args, **kwargs)  # type: ignore[misc]
        self._record_hparams()
        return out

    def hparams(self) -> dict[str, str | float | int | bool]:
        """The hyperparameters shown in TensorBoard's HPARAMS tab."""
        coef = self.teacher_coef
        lr = self.learning_rate  # type: ignore[attr-defined]
        return {
            "algorithm": type(self).__name__,
            "regularizer": self.regularizer_kind,
            "lambda": float(coef) if isinstance(coef, (int, float)) else repr(coef),
            "teacher": getattr(self.teacher, "name", "") if getattr(self, "teacher", None) else "",
            "restriction": self.restriction.describe() if self.restriction is not None else "",
            "learning_rate": lr if isinstance(lr, (int, float)) else "schedule",
            "n_steps": int(self.n_steps),  # type: ignore[attr-defined]
            "gamma": float(self.gamma),  # type: ignore[attr-defined]
            "seed": -1 if self.seed is None else int(self.seed),  # type: ignore[attr-defined]
        }

    def _record_hparams(self) -> None:
        logger = self.logger  # type: ignore[attr-defined]
        if not any(isinstance(f, TensorBoardOutputFormat) for f in logger.output_formats):
            return
        metrics = {"rollout/ep_rew_mean": 0.0, "train/imm_kl": 0.0, "train/naive_kl": 0.0}
        logger.record("hparams", HParam(self.hparams(), metrics), exclude=("stdout", "log", "json", "csv"))

    def _teacher_loss(self, batch: Any, distribution: Distribution) -> torch.Tensor:
        """``λ · R`` on a (mini)batch of the buffer, recorded under the fixed ``train/`` keys (averaged
        over the minibatches of an update); exactly zero when the regulariser is off.

        :param batch: the buffer's samples (their ``contexts`` are read only when the regulariser is on).
        :param distribution: the policy's action distribution at the batch's observations.
        """
        if not self.regularizer.enabled:
            return torch.zeros(())
        out = self.regularizer.compute(
            self.policy,  # type: ignore[attr-defined]
            batch.contexts,
            distribution,
            self._current_progress_remaining,  # type: ignore[attr-defined]
        )
        logger = self.logger  # type: ignore[attr-defined]
        logger.record_mean("train/regularizer_loss", out.loss.item())
        logger.record("train/lambda", out.lam)
        logger.record_mean("train/imm_kl", out.imm_kl)
        logger.record_mean("train/naive_kl", out.naive_kl)
        return out.loss
