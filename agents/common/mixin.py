"""What every rlimm algorithm adds to its SB3 base: the thin glue around
:class:`~rlimm.agents.imm.regularizer.TeacherRegularizer` (:class:`RegularizedMixin`).

- the constructor arguments ``regularizer`` (``"none"``, ``"naive"``, ``"imm"``), ``teacher``,
  ``restriction``, ``teacher_coef`` and ``induction`` (all with defaults, so SB3's ``load`` can rebuild
  the object), stored by :meth:`RegularizedMixin._init_teacher` before the model is set up; the
  regulariser object is ``teacher_regularizer``;
- the teacher's view of a batch of raw observations (:meth:`RegularizedMixin._teacher_view`), which the
  on-policy glue (:mod:`rlimm.agents.common.on_policy`) computes once per rollout and the off-policy glue
  (:mod:`rlimm.agents.common.off_policy`) once per batch of new transitions;
- the loss line each algorithm's ``train()`` adds per minibatch,
  ``loss = loss + teacher_coef * self._teacher_term(batch, distribution, teacher_coef)`` with
  ``teacher_coef = self.current_teacher_coef()`` (λ now), its fixed TensorBoard keys (``train/…``), the
  hyperparameters in TensorBoard's HPARAMS tab, and run folders named ``<Algo>_<regularizer>``;
- save/load that keeps the teacher out of the zip (:class:`rlimm.agents.common.saving.SavedWithoutTeacher`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.logger import HParam, TensorBoardOutputFormat

from rlimm.agents.common.rollout_buffers import ViewColumns
from rlimm.agents.common.saving import SavedWithoutTeacher
from rlimm.agents.common.trust import RolloutEvidence, episode_returns, trust_of
from rlimm.agents.common.trust import record as record_trust
from rlimm.agents.imm.families import Params
from rlimm.agents.imm.observations import n_rows, per_key
from rlimm.agents.imm.regularizer import REGULARIZERS, RegularizerOutput, TeacherRegularizer
from rlimm.agents.imm.settings import InductionSettings
from rlimm.agents.teachers.base import ActionFamily, Teacher
from rlimm.coefficients import TeacherCoef, as_coefficient, lambda_at
from rlimm.envs.restrictions import PartitionRestriction, Restriction
from rlimm.errors import RlimmError

#: Rows of a rollout the teacher's view is computed on at once (bounds the teacher's batch).
VIEW_CHUNK = 4096


class RegularizedMixin(SavedWithoutTeacher):
    """The teacher regulariser's glue shared by every rlimm algorithm (put it first in the bases)."""

    regularizer: str
    teacher: Teacher | None
    restriction: Restriction | None
    teacher_coef: TeacherCoef
    induction: InductionSettings
    teacher_regularizer: TeacherRegularizer
    n_steps: int
    gamma: float
    #: Whether the policy's Gaussian is squashed by tanh (SAC), which decides the Gaussian teachers it takes.
    squashed_actions: bool = False
    #: Sampled induction: the diagnostics are computed once per this many updates (see ``_teacher_term``).
    diagnostic_period: int = 1
    _diagnosed_at: int | None = None
    #: ``lambda_schedule: trust``: the evidence of the current update, while it is being gathered.
    _trust_evidence: RolloutEvidence | None = None
    #: the regulariser's last output kept for the trust signal (SAC reads it after the loss call)
    _kept_output: RegularizerOutput | None = None

    def _init_teacher(
        self,
        regularizer: str,
        teacher: Teacher | None,
        restriction: Restriction | None,
        teacher_coef: TeacherCoef,
        induction: InductionSettings | Mapping[str, Any] | None,
    ) -> None:
        """Store the teacher's arguments (before ``_setup_model``, whose buffer and regulariser
        depend on them); the regulariser itself checks its kind and coefficient when it is built."""
        if regularizer in REGULARIZERS[1:] and teacher is None:
            raise RlimmError(f"regularizer '{regularizer}' needs a teacher")
        self.regularizer = regularizer
        self.teacher = teacher
        self.restriction = restriction
        as_coefficient(teacher_coef)  # checked here: a bad λ fails at construction
        self.teacher_coef = teacher_coef
        self.induction = InductionSettings.of(induction)

    def _setup_regularizer(self) -> None:
        """Check the teacher against the environment and the policy, and build the regulariser."""
        teacher = self.teacher
        if teacher is not None:
            if self.restriction is None:  # checked here, before the spaces are compared
                raise RlimmError("a teacher needs a restriction that says what it sees")
            self.restriction.check_space(self.observation_space)
            teacher.check_compatible(self.restriction, self.action_space)
            self._check_teacher_family(teacher)
            if self.use_sde:
                raise RlimmError("the teacher regulariser does not support gSDE: use use_sde=False")
        self.teacher_regularizer = TeacherRegularizer(
            self.regularizer,
            self.restriction if teacher is not None else None,
            self.action_space,
            self.induction,
            self.seed,
            self.device,
        )

    def _check_teacher_family(self, teacher: Teacher) -> None:
        """A Gaussian teacher must be over the same variable as the policy's Gaussian."""
        if teacher.family == ActionFamily.SQUASHED_GAUSSIAN and not self.squashed_actions:
            raise RlimmError(
                f"teacher '{teacher.name}' is a squashed (SAC) Gaussian but {type(self).__name__}'s "
                "Gaussian acts on the raw action: train the teacher with ppo or a2c"
            )
        if teacher.family == ActionFamily.GAUSSIAN and self.squashed_actions:
            raise RlimmError(
                f"teacher '{teacher.name}' is a Gaussian over the raw action (squashed=False, a PPO/A2C "
                f"teacher) but {type(self).__name__}'s Gaussian is before its tanh squash: use a SAC "
                "teacher (squashed=True)"
            )

    # --- the teacher's view ---------------------------------------------------------------------------

    def _teacher_view(self, raw: Any) -> ViewColumns:
        """The teacher's view of a batch of raw observations (the environment's form), one row each:
        ``contexts`` (the visible context, table restrictions only) and ``teacher_params`` (the
        teacher's distribution), computed in batches of :data:`VIEW_CHUNK` rows."""
        teacher, restriction = self.teacher, self.restriction
        assert teacher is not None and restriction is not None
        n = n_rows(raw)
        tables = isinstance(restriction, PartitionRestriction)
        columns = {"teacher_params": np.zeros((n, teacher.n_params), dtype=np.float32)}
        if tables:
            columns["contexts"] = np.zeros(n, dtype=np.int64)
        for start in range(0, n, VIEW_CHUNK):
            stop = min(start + VIEW_CHUNK, n)
            rows = slice(start, stop)
            visible = restriction.visible(per_key(raw, lambda v, rows=rows: v[rows]))
            if tables:
                columns["contexts"][start:stop] = np.asarray(visible, dtype=np.int64).reshape(-1)
            columns["teacher_params"][start:stop] = teacher.params(visible).reshape(stop - start, -1)
        return columns

    # --- the loss -------------------------------------------------------------------------------------

    def action_params(self, obs: Any) -> Params:
        """The policy's action-distribution parameters at a batch of observations: raw logits, or
        ``(mean, log_std)`` (the regulariser's ``evaluate``: the actor alone, no distribution object),
        from the policy's own ``action_params`` (rlimm's policies:
        :class:`~rlimm.agents.common.policies.DistributionReturningPolicy`,
        :class:`~rlimm.agents.sac.policies.ParamsReturningSACPolicy`)."""
        return self.policy.action_params(obs)  # type: ignore[operator]

    def current_teacher_coef(self) -> float:
        """λ now: ``teacher_coef`` (a number, a schedule of ``progress_remaining`` or the trust rule) at
        SB3's training progress, checked; 0 without a teacher (the plain algorithm's loss)."""
        if self.teacher is None:
            return 0.0
        return lambda_at(as_coefficient(self.teacher_coef), self._current_progress_remaining)

    def regularizer_output(
        self,
        batch: Any,
        distribution: Distribution,
        pool: Any = None,
        diagnostics: bool = True,
        optimise: bool = True,
        keep: bool = False,
    ) -> RegularizerOutput:
        """The regulariser on a (mini)batch of the buffer, without logging.

        :param batch: the buffer's samples (``teacher_params``, ``contexts``, ``observations``, ``indices``).
        :param distribution: the policy's action distribution at the batch's observations.
        :param pool: sampled induction: the observations hidden parts are drawn from (``indices`` are
            rows of it); ``None``: the algorithm's default (on-policy: the rollout).
        :param diagnostics: also compute the KL that is not optimised and the draws' statistics.
        :param optimise: compute the divergence with gradient (``False`` when λ is 0 now).
        :param keep: also return the teacher's distribution and the induced policy (the trust signal).
        """
        regularizer = self.teacher_regularizer
        assert regularizer.family is not None
        if regularizer.sampled and pool is None:
            pool = self.induction_pool(batch)
        return regularizer.compute(
            batch.teacher_params,
            regularizer.family.params_of(distribution.distribution),
            self.action_params,
            optimise=optimise,
            contexts=batch.contexts,
            observations=batch.observations,
            indices=batch.indices,
            pool=pool,
            diagnostics=diagnostics,
            keep=keep,
        )

    def induction_pool(self, batch: Any = None) -> Any:
        """Sampled induction's pool for ``batch`` when the loss call gives none (on-policy: the rollout's;
        off-policy: the minibatch's)."""
        raise RlimmError("sampled induction needs the pool of observations")

    def _teacher_term(
        self, batch: Any, distribution: Distribution, teacher_coef: float, pool: Any = None
    ) -> th.Tensor:
        """R, the regulariser's divergence on a (mini)batch of the buffer, which ``train()`` weighs by
        ``teacher_coef`` on its loss line; recorded with λ · R under the fixed ``train/`` keys (averaged
        over the minibatches of an update); exactly zero without a teacher.

        :param batch: the buffer's samples (what the teacher saw is read only with a teacher).
        :param distribution: the policy's action distribution at the batch's observations.
        :param teacher_coef: λ now (:meth:`current_teacher_coef`): at 0 nothing is optimised.
        :param pool: sampled induction: the observations hidden parts are drawn from (see
            :meth:`regularizer_output`).
        """
        if self.teacher is None:
            if self.regularizer != "none":
                raise RlimmError(
                    f"regularizer '{self.regularizer}' has no teacher: pass teacher=... to the "
                    "constructor or to load()"
                )
            return th.zeros(())
        # The KL that is not optimised and the draws' statistics are diagnostics: with sampled
        # induction (a batch × k forward) they are computed on the first minibatch of a pass only, and
        # at most once per `diagnostic_period` updates (off-policy algorithms update every step).
        sampled = self.teacher_regularizer.sampled
        bucket = self._n_updates // self.diagnostic_period
        diagnose = not sampled or self._diagnosed_at != bucket
        self._diagnosed_at = bucket
        # lambda_schedule: trust — on-policy, the first pass over a rollout is its evidence; SAC keeps
        # the output for its critic's evidence (see agents/common/trust.py).
        trust = trust_of(self.teacher_coef)
        gathering = self._trust_evidence
        keep = trust is not None and (gathering is not None or self.off_policy_trust)
        # (keep only when asked: a subclass's or a test's regularizer_output need not know it)
        extra = {"keep": True} if keep else {}
        out = self.regularizer_output(
            batch, distribution, pool, diagnostics=diagnose, optimise=teacher_coef > 0, **extra
        )
        self._kept_output = out if keep else None
        if trust is not None and gathering is not None:
            assert self.teacher_regularizer.family is not None
            gathering.add(batch, out, self.teacher_regularizer.family, self.action_space)
            if gathering.complete:
                self._trust_evidence = None
                self.observe_trust(gathering.evidence())
        self.logger.record_mean("train/regularizer_loss", teacher_coef * out.divergence.item())
        self.logger.record("train/teacher_coef", teacher_coef)
        for key, value in (
            ("train/imm_kl", out.imm_kl),
            ("train/naive_kl", out.naive_kl),
            ("train/induction_ess", out.ess),
            ("train/neighbour_distance", out.distance),
            ("train/own_episode_share", out.own_episode),
            ("train/induction_fallback", out.fallback),
            ("train/own_policy_kl", out.own_kl),
            ("train/hidden_left", out.hidden_left),
        ):
            if value == value:  # not nan: computed on this minibatch
                self.logger.record_mean(key, value)
        return out.divergence

    #: Whether the trust signal comes from the algorithm's critic after each loss call (SAC).
    off_policy_trust: bool = False

    def observe_trust(self, evidence: Any) -> None:
        """Fold one update's trust evidence in (``lambda_schedule: trust``) and log the rule's state."""
        trust = trust_of(self.teacher_coef)
        if trust is None:
            return
        returns = episode_returns(self.ep_info_buffer or ())
        trust.observe(evidence, returns, self._current_progress_remaining, self.regularizer)
        record_trust(self.logger, trust)

    # --- TensorBoard ----------------------------------------------------------------------------------------

    def learn(self, total_timesteps: int, *args: Any, tb_log_name: str | None = None, **kwargs: Any) -> Any:
        """SB3's ``learn``; TensorBoard runs are named ``<Algo>_<regularizer>`` unless given."""
        name = tb_log_name or f"{type(self).__name__}_{self.regularizer}"
        return super().learn(total_timesteps, *args, tb_log_name=name, **kwargs)

    def _setup_learn(self, *args: Any, **kwargs: Any) -> Any:
        out = super()._setup_learn(*args, **kwargs)
        self._record_hparams()
        return out

    def hparams(self) -> dict[str, str | float | int | bool]:
        """The hyperparameters shown in TensorBoard's HPARAMS tab."""
        coef = self.teacher_coef
        lr = self.learning_rate
        return {
            "algorithm": type(self).__name__,
            "regularizer": self.regularizer,
            "teacher_coef": float(coef) if isinstance(coef, (int, float)) else repr(coef),
            "teacher": self.teacher.name if self.teacher is not None else "",
            "restriction": self.restriction.describe() if self.restriction is not None else "",
            "induction": self.teacher_regularizer.method or "",
            "learning_rate": lr if isinstance(lr, (int, float)) else "schedule",
            "n_steps": int(self.n_steps),
            "gamma": float(self.gamma),
            "seed": -1 if self.seed is None else int(self.seed),
        }

    def _record_hparams(self) -> None:
        logger = self.logger
        if not any(isinstance(f, TensorBoardOutputFormat) for f in logger.output_formats):
            return
        metrics = {"rollout/ep_rew_mean": 0.0, "train/imm_kl": 0.0, "train/naive_kl": 0.0}
        logger.record("hparams", HParam(self.hparams(), metrics), exclude=("stdout", "log", "json", "csv"))
