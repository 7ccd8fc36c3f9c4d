"""What every rlimm algorithm adds to its SB3 base: the thin glue around
:class:`~rlimm.agents.imm.regularizer.TeacherRegularizer`.

- the constructor arguments ``regularizer`` (``"none"``, ``"naive"``, ``"imm"``), ``teacher``,
  ``restriction``, ``teacher_coef`` and ``induction`` (all with defaults, so SB3's ``load`` can rebuild
  the object), stored by :meth:`RegularizedMixin._init_teacher` before the model is set up; the
  regulariser object is ``teacher_regularizer``;
- the teacher's view of the raw observations (:meth:`RegularizedMixin._teacher_view`), computed once
  per rollout: on-policy, right after ``collect_rollouts`` returns
  (:meth:`OnPolicyRegularizedMixin.collect_rollouts`); SAC, for the transitions collected since the
  last update, at the start of ``train()`` (:meth:`rlimm.agents.sac.SAC.update_teacher_view`);
- the loss line each algorithm's ``train()`` adds per minibatch,
  ``loss = loss + teacher_coef * self._teacher_term(batch, distribution, teacher_coef)`` with
  ``teacher_coef = self.current_teacher_coef()`` (λ now), its fixed TensorBoard keys (``train/…``), the
  hyperparameters in TensorBoard's HPARAMS tab, and run folders named ``<Algo>_<regularizer>``;
- save/load that keeps the teacher out of the zip: ``Algo.load(path, teacher=t)`` re-attaches one
  (SB3's ``load`` sets keyword arguments on the model before ``_setup_model``); a model loaded without
  one predicts normally and refuses to train with an active regulariser. The zip holds SB3's own
  classes and rlimm's settings as plain data (:mod:`rlimm.agents.common.saving`), so stock
  ``stable_baselines3.PPO.load`` (``A2C``, ``SAC``) loads it without importing rlimm.

One PPO update: ``collect_rollouts`` fills the rollout buffer (under ``VecNormalize`` an internal
callback hands it each step's raw observation) → :meth:`OnPolicyRegularizedMixin.collect_rollouts`
stores the teacher's view of the whole rollout in the buffer → ``train()`` reads minibatches carrying
``teacher_params`` (and ``contexts``, ``indices``) and adds ``λ · _teacher_term(minibatch, distribution, λ)``.
"""

from __future__ import annotations

import io
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any, Self

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
)
from stable_baselines3.common.logger import HParam, TensorBoardOutputFormat
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from rlimm.agents.common.hidden import rollout_hidden_left
from rlimm.agents.common.policies import DistributionReturningPolicy
from rlimm.agents.common.rollout_buffers import (
    DictTeacherRolloutBuffer,
    TeacherRolloutBuffer,
    TeacherViewMixin,
    ViewColumns,
)
from rlimm.agents.common.saving import SAVED_KEY, SETTINGS, read_extras, restored_attributes, saved_extras
from rlimm.agents.common.trust import RolloutEvidence, episode_returns, trust_of
from rlimm.agents.common.trust import record as record_trust
from rlimm.agents.imm.draws import Trajectories
from rlimm.agents.imm.families import Params
from rlimm.agents.imm.observations import cat_rows, n_rows, per_key
from rlimm.agents.imm.regularizer import REGULARIZERS, Pool, RegularizerOutput, TeacherRegularizer
from rlimm.agents.imm.settings import InductionSettings
from rlimm.agents.teachers.base import ActionFamily, Teacher
from rlimm.coefficients import TeacherCoef, as_coefficient, lambda_at
from rlimm.envs.restrictions import PartitionRestriction, Restriction
from rlimm.errors import RlimmError

#: Rows of a rollout the teacher's view is computed on at once (bounds the teacher's batch).
VIEW_CHUNK = 4096


class RegularizedMixin(BaseAlgorithm):
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
        ``(mean, log_std)`` (the regulariser's ``evaluate``: the actor alone, no distribution object)."""
        raise NotImplementedError

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
            pool = self.induction_pool()
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

    def induction_pool(self) -> Any:
        """Sampled induction's pool when the loss call gives none."""
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

    # --- save/load, TensorBoard -------------------------------------------------------------------------

    def _excluded_save_params(self) -> list[str]:
        # The teacher can be large or live elsewhere (another model): never pickled with the agent.
        # rlimm's settings are saved as plain extras instead (see save()).
        return [
            *super()._excluded_save_params(),
            "teacher",
            "teacher_regularizer",
            "_raw_last_obs",
            "_diagnosed_at",
            "_rollout_pool",
            "_pool_history",
            "_trust_evidence",
            "_kept_output",
            "_hidden_generator",
            *SETTINGS,
        ]

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """SB3's ``save``, in a form stock SB3 loads (``stable_baselines3.PPO.load``): SB3's own policy
        and buffer classes in place of rlimm's, and rlimm's classes and settings (restriction, λ,
        induction) as plain data under the ``rlimm`` key (:mod:`rlimm.agents.common.saving`), which
        :meth:`load` restores."""
        stock, extras = saved_extras(self.__dict__)
        own = {name: self.__dict__[name] for name in stock}
        # SB3's save copies the model's attributes: they hold the stock classes and the extras while it
        # runs, and rlimm's again afterwards.
        self.__dict__.update(stock)
        self.__dict__[SAVED_KEY] = extras
        try:
            super().save(path, exclude, include)
        finally:
            self.__dict__.update(own)
            del self.__dict__[SAVED_KEY]

    @classmethod
    def load(
        cls,
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> Self:
        """SB3's ``load``, restoring rlimm's policy and buffer classes and the regulariser's settings
        saved by :meth:`save`; ``teacher=`` re-attaches a teacher (it is never saved), and other
        keyword arguments override saved attributes, as in SB3."""
        extras = read_extras(path)
        restored = restored_attributes(extras) if extras is not None else {}
        return super().load(
            path, env, device, custom_objects, print_system_info, force_reset, **{**restored, **kwargs}
        )

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


class _RawObservationFeed(BaseCallback):
    """Hands the rollout buffer the raw observation of each collected step (under ``VecNormalize``):
    called by SB3's ``collect_rollouts`` after the env stepped and before the step is added."""

    def __init__(self, algorithm: OnPolicyRegularizedMixin) -> None:
        super().__init__()
        self.algorithm = algorithm

    def _on_step(self) -> bool:
        self.algorithm._feed_raw_observation()
        return True


#: The distributions the regulariser reads, by action space (gSDE and Bernoulli policies are not).
_SUPPORTED_DISTRIBUTIONS = (CategoricalDistribution, MultiCategoricalDistribution, DiagGaussianDistribution)


class OnPolicyRegularizedMixin(RegularizedMixin, OnPolicyAlgorithm):
    """The on-policy glue (REINFORCE, PPO, A2C): a rollout buffer that keeps the teacher's view, filled
    one way — collect (raw observations given to the buffer) → the teacher's view of the rollout,
    computed once right after ``collect_rollouts`` returns → minibatch losses; the pool of sampled
    induction is the rollout and the ``induction.pool`` − 1 rollouts before it."""

    _raw_last_obs: Any = None
    #: sampled induction: this rollout's pool (built at its first minibatch) and the earlier rollouts'
    #: observations, episodes and steps, newest first
    _rollout_pool: Pool | None = None
    _pool_history: list[tuple[Any, th.Tensor, th.Tensor]] = []  # noqa: RUF012 - replaced, never mutated

    def _setup_model(self) -> None:
        if self.restriction is not None:
            dict_obs = isinstance(self.observation_space, spaces.Dict)
            buffer = DictTeacherRolloutBuffer if dict_obs else TeacherRolloutBuffer
            custom = self.rollout_buffer_class
            if custom is not None and not issubclass(custom, TeacherViewMixin):
                raise RlimmError(
                    f"rollout_buffer_class {custom.__name__} cannot record what the teacher sees; "
                    f"leave it unset (rlimm uses {buffer.__name__})"
                )
            self.rollout_buffer_class = custom or buffer
        super()._setup_model()
        if not isinstance(self.policy, DistributionReturningPolicy):
            raise RlimmError(
                f"policy {type(self.policy).__name__} cannot return its action distribution; use "
                "'MlpPolicy', 'CnnPolicy', 'MultiInputPolicy' or a policy of rlimm.agents.common.policies"
            )
        if self.teacher is not None and not isinstance(self.policy.action_dist, _SUPPORTED_DISTRIBUTIONS):
            raise RlimmError(
                f"the teacher regulariser needs a categorical or diagonal Gaussian policy, got "
                f"{type(self.policy.action_dist).__name__}"
            )
        self._setup_regularizer()

    def action_params(self, obs: Any) -> Params:
        """The policy's :meth:`~rlimm.agents.common.policies.DistributionReturningPolicy.action_params`."""
        assert isinstance(self.policy, DistributionReturningPolicy)
        return self.policy.action_params(obs)

    def induction_pool(self) -> Pool:
        """Sampled induction's pool: the current rollout's observations first (the minibatches' rows),
        then those of the ``induction.pool`` − 1 rollouts before it (their observations only: the policy
        is evaluated now on whatever they combine into), with every row's episode and step. Built once
        per rollout, at its first minibatch (the buffer is flattened by then)."""
        if self._rollout_pool is not None:
            return self._rollout_pool
        buffer = self.rollout_buffer
        assert isinstance(buffer, TeacherViewMixin)
        current = (buffer.rollout_observations(), *buffer.rollout_trajectories())
        # Under VecNormalize the earlier rollouts are kept raw and normalised here with the current
        # statistics, as the policy would see those states now (their stored copies were normalised
        # with the statistics of their own time).
        vec_normalize = self._vec_normalize_env
        earlier = [(self._normalised(obs), *rest) for obs, *rest in self._pool_history]
        parts = [current, *earlier] if vec_normalize is not None else [current, *self._pool_history]
        observations = cat_rows([part[0] for part in parts])
        episode, step = th.cat([part[1] for part in parts]), th.cat([part[2] for part in parts])
        self._rollout_pool = Pool(observations, n_rows(current[0]), Trajectories(episode, step))
        keep = self.teacher_regularizer.induction.pool - 1
        if keep:
            raw = buffer.raw_rows() if vec_normalize is not None else None
            kept = current if raw is None else (raw, *current[1:])
            self._pool_history = [kept, *self._pool_history][:keep]
        return self._rollout_pool

    def _normalised(self, raw: Any) -> Any:
        """Raw observations as the policy sees them now: ``VecNormalize``'s current statistics applied
        (the identity without it, or where the history kept normalised copies), as float32 tensors."""
        vec_normalize = self._vec_normalize_env
        if (
            vec_normalize is None
            or isinstance(raw, th.Tensor)
            or (isinstance(raw, dict) and all(isinstance(v, th.Tensor) for v in raw.values()))
        ):
            return raw
        normalised = vec_normalize.normalize_obs(raw)
        return per_key(
            normalised, lambda v: th.as_tensor(np.asarray(v, dtype=np.float32), device=self.device)
        )

    # --- collection: raw observations in, the teacher's view once per rollout -----------------------

    def _setup_learn(self, *args: Any, **kwargs: Any) -> Any:
        before = self._last_obs
        out = super()._setup_learn(*args, **kwargs)
        vec_normalize = self._vec_normalize_env
        if vec_normalize is not None and (self._last_obs is not before or self._raw_last_obs is None):
            self._raw_last_obs = vec_normalize.get_original_obs()  # the env was reset
        return out

    def _init_callback(self, callback: MaybeCallback, progress_bar: bool = False) -> BaseCallback:
        if self.restriction is not None and self._vec_normalize_env is not None:
            feed = _RawObservationFeed(self)
            if callback is None:
                callback = [feed]
            elif isinstance(callback, list):
                callback = [feed, *callback]
            else:
                callback = [
                    feed,
                    callback if isinstance(callback, BaseCallback) else ConvertCallback(callback),
                ]
        return super()._init_callback(callback, progress_bar)

    def _feed_raw_observation(self) -> None:
        """Give the rollout buffer the raw observation acted on at this step (kept from the previous
        step or the reset) and keep the one the env just returned for the next step."""
        vec_normalize = self._vec_normalize_env
        buffer = self.rollout_buffer
        assert vec_normalize is not None and isinstance(buffer, TeacherViewMixin)
        raw, self._raw_last_obs = self._raw_last_obs, vec_normalize.get_original_obs()
        buffer.add_raw(raw)

    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        """SB3's ``collect_rollouts``; then, with a teacher, the teacher's view of the whole rollout,
        computed here once from the raw observations and stored in the buffer."""
        collected = super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)
        if collected and self.teacher is not None and isinstance(rollout_buffer, TeacherViewMixin):
            raw = rollout_buffer.raw_rollout()
            rollout_buffer.store_teacher_view(self._teacher_view(raw))
            self.teacher_regularizer.observe_rollout(raw)  # belief: on_policy (exact induction)
            self._rollout_pool = None  # the pool of the next minibatches is built from this rollout
            if self._trust_evidence is not None:  # an update that stopped early (target_kl): fold it in
                self.observe_trust(self._trust_evidence.evidence())
            if trust_of(self.teacher_coef) is not None and self.regularizer != "none":
                # The first pass over this rollout (before later epochs) is the trust rule's evidence.
                self._trust_evidence = RolloutEvidence(n_rows(raw), self.regularizer)
        if collected and self._logs_hidden_left():
            if self._hidden_generator is None:  # knn's tie-breaking: never SB3's random streams
                self._hidden_generator = th.Generator().manual_seed(
                    0 if self.seed is None else int(self.seed)
                )
            value = rollout_hidden_left(
                rollout_buffer, self.restriction, self.induction, self._hidden_generator
            )
            if value == value:  # not nan
                self.logger.record("train/hidden_left", value)
        return collected

    _hidden_generator: th.Generator | None = None

    def _logs_hidden_left(self) -> bool:
        """Whether this algorithm logs ``train/hidden_left`` per rollout (:mod:`agents.common.hidden`):
        with a restriction that is not a table of contexts, unless IMM's sampled induction logs it."""
        restriction = self.restriction
        if restriction is None or isinstance(restriction, PartitionRestriction):
            return False
        return not (self.regularizer == "imm" and self.teacher_regularizer.sampled)
