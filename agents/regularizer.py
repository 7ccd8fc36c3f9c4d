"""The teacher regulariser shared by every rlimm algorithm.

``loss = algorithm loss + λ · R`` where R is

- ``none``:  0 (the plain algorithm);
- ``naive``: mean over the batch of KL(P̄(·|x̄) ‖ π(·|x))    — pointwise, at each visited state;
- ``imm``:   mean over the batch of KL(P̄(·|x̄) ‖ π̄(·|x̄))  — π̄ is the policy induced over the
  hidden part: exactly (``induction="exact"``: one batched forward over the members of the contexts
  that occur in the batch, with the restriction's belief), or from k hidden parts drawn from the
  rollout (``"knn"``, ``"marginal"``: :mod:`rlimm.agents.neighbours`; one batched forward over
  batch × k synthetic states).

The teacher's probabilities are recorded with each observation at collection time
(:mod:`rlimm.agents.buffers`). The divergences are the core's — :mod:`rlimm.losses` for Discrete
actions, :mod:`rlimm.gaussian_kl` for Box actions, chosen by the action space
(:mod:`rlimm.agents.action_families`); this module only gathers their inputs from a batch. Both KLs are
computed as diagnostics whichever one is optimised, so IMM and naive runs can be compared on one
TensorBoard view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.logger import HParam, TensorBoardOutputFormat

from rlimm.agents import neighbours
from rlimm.agents.action_families import family_for
from rlimm.agents.buffers import DictTeacherRolloutBuffer, TeacherRolloutBuffer, TeacherViewMixin
from rlimm.agents.policies import DistributionEvaluationMixin
from rlimm.agents.teachers import Teacher
from rlimm.coefficients import TeacherCoef, as_coefficient, lambda_at
from rlimm.errors import RlimmError
from rlimm.gaussian_kl import DEFAULT_SAMPLES

REGULARIZERS = ("none", "naive", "imm")


@dataclass
class RegularizerOutput:
    """What one evaluation of the regulariser gives.

    :param loss: ``λ · R`` with gradient (a zero tensor for ``none``).
    :param lam: the λ used.
    :param imm_kl: batch mean of KL(teacher ‖ induced policy), no gradient (``nan`` if not computed).
    :param naive_kl: batch mean of KL(teacher ‖ policy at the full state), no gradient.
    :param ess: sampled induction: mean effective sample size of the weights (``nan`` otherwise).
    :param distance: sampled induction: mean standardised distance to the neighbours (``nan`` otherwise).
    """

    loss: torch.Tensor
    lam: float
    imm_kl: float
    naive_kl: float
    ess: float = float("nan")
    distance: float = float("nan")


def check_regularizer(kind: str) -> str:
    if kind not in REGULARIZERS:
        raise RlimmError(f"unknown regularizer '{kind}'; accepted: {', '.join(REGULARIZERS)}")
    return kind


def _rows(obs: torch.Tensor | dict, index: torch.Tensor) -> torch.Tensor | dict:
    if isinstance(obs, dict):
        return {k: v[index] for k, v in obs.items()}
    return obs[index]


def _repeat(obs: torch.Tensor | dict, k: int) -> torch.Tensor | dict:
    if isinstance(obs, dict):
        return {key: v.repeat_interleave(k, dim=0) for key, v in obs.items()}
    return obs.repeat_interleave(k, dim=0)


class TeacherRegularizer:
    """λ times the divergence between a restricted teacher and the policy.

    :param kind: ``none``, ``naive`` or ``imm``.
    :param teacher: the restricted teacher (required unless ``kind == "none"``).
    :param restriction: what the teacher sees of an observation (required with a teacher).
    :param coef: λ as a number or a callable of SB3's ``progress_remaining``
        (see :mod:`rlimm.coefficients`).
    :param device: where the lookup tables live (the policy's device).
    :param induction: ``exact`` (enumerate the hidden part with the restriction's belief), ``knn`` or
        ``marginal`` (draw k hidden parts from the rollout), or ``auto``: exact when the restriction
        can enumerate its hidden part, else knn.
    :param k: hidden parts per state for sampled induction.
    :param seed: seed of the ``marginal`` draws and the ``mc`` actions (their own generator: the
        draws never move SB3's random stream).
    :param action_space: decides the divergence (:mod:`rlimm.agents.action_families`): categorical for
        ``Discrete`` (also when ``None``), diagonal Gaussian for ``Box``.
    :param estimator: Box actions: how KL(teacher ‖ induced Gaussian mixture) is estimated, ``mc``,
        ``quadrature`` or ``moment`` (:mod:`rlimm.gaussian_kl`).
    :param samples: Box actions, ``mc``: actions drawn from the teacher per state.
    """

    def __init__(
        self,
        kind: str,
        teacher: Teacher | None,
        restriction: Any,
        coef: TeacherCoef,
        device: torch.device | str = "cpu",
        induction: str = "auto",
        k: int = 16,
        seed: int | None = None,
        action_space: spaces.Space | None = None,
        estimator: str = "mc",
        samples: int = DEFAULT_SAMPLES,
    ) -> None:
        self.kind = check_regularizer(kind)
        self.coef: Callable[[float], float] = as_coefficient(coef)
        self.teacher = teacher
        self.restriction = restriction
        exact_possible = restriction is not None and getattr(restriction, "exact", True)
        method = ("exact" if exact_possible else "knn") if induction == "auto" else induction
        neighbours.check_induction(method, k)
        if method == "exact" and restriction is not None and not exact_possible:
            raise RlimmError(
                f"'induction: exact' needs a restriction whose hidden part can be enumerated; "
                f"{restriction.describe()} cannot: use knn or marginal"
            )
        self.induction, self.k = method, k
        dev = torch.device(device)
        self._generator = torch.Generator(device=dev).manual_seed(0 if seed is None else int(seed))
        self.family = (
            family_for(action_space, estimator, samples, self._generator) if teacher is not None else None
        )
        if teacher is not None:
            if restriction is None:
                raise RlimmError("a teacher needs a restriction that says what it sees")
            self._tables = method == "exact" and hasattr(restriction, "members")
            if self._tables:
                self._members = torch.as_tensor(restriction.members, device=dev)
                self._belief = torch.as_tensor(restriction.belief, dtype=torch.float32, device=dev)
            else:
                self._discrete = torch.as_tensor(restriction.discrete_features, dtype=torch.bool, device=dev)

    @property
    def enabled(self) -> bool:
        """Whether training computes this regulariser at all: it has a teacher (for the loss or, with
        ``none``, for the diagnostics) or is asked for one. Off, training is the plain algorithm."""
        return self.teacher is not None or self.kind != "none"

    def compute(
        self,
        policy: torch.nn.Module,
        batch: Any,
        distribution: Distribution,
        progress_remaining: float,
        pool: Any = None,
        diagnostics: bool = True,
    ) -> RegularizerOutput:
        """Evaluate the regulariser on a batch.

        :param policy: the SB3 policy being trained.
        :param batch: the buffer's samples: ``teacher_probs`` (recorded at collection time),
            ``contexts`` (exact induction), ``observations`` and ``indices`` (sampled induction).
        :param distribution: the policy's action distribution at the batch's observations (already
            computed for the algorithm's own loss).
        :param progress_remaining: SB3's training progress (1 → 0), for λ schedules.
        :param pool: sampled induction: every observation of the rollout (the batch's ``indices`` are
            rows of it).
        :param diagnostics: also compute the KL that is not optimised (without gradient) and, for
            sampled induction, the draws' statistics; ``nan`` otherwise.
        """
        lam = lambda_at(self.coef, progress_remaining)
        if self.teacher is None:
            if self.kind != "none":
                raise RlimmError(
                    f"regularizer '{self.kind}' has no teacher: pass teacher=... to the "
                    "constructor or to load()"
                )
            return RegularizerOutput(torch.zeros(()), lam, float("nan"), float("nan"))

        family = self.family
        params = family.of_distribution(distribution)
        device = (params[0] if family.continuous else params).device
        teacher = family.teacher(batch, device)
        use_imm = self.kind == "imm" and lam > 0
        use_naive = self.kind == "naive" and lam > 0

        naive = None
        if use_naive or diagnostics:
            with torch.set_grad_enabled(torch.is_grad_enabled() and use_naive):
                naive = family.naive(teacher, params)
        imm, ess, distance = None, float("nan"), float("nan")
        if use_imm or diagnostics:
            with torch.set_grad_enabled(torch.is_grad_enabled() and use_imm):
                if self.induction == "exact" and self._tables:
                    imm = self._exact_imm(policy, batch.contexts, teacher)
                elif self.induction == "exact":
                    imm = self._enumerated_imm(policy, batch.observations, teacher)
                else:
                    imm, draw = self._sampled_imm(policy, batch, teacher, pool, params)
                    if diagnostics:
                        ess, distance = draw.effective_sample_size().item(), draw.mean_distance().item()

        loss = torch.zeros((), device=device)
        if use_imm:
            loss = lam * imm
        elif use_naive:
            loss = lam * naive
        imm_kl = float("nan") if imm is None else imm.item()
        naive_kl = float("nan") if naive is None else naive.item()
        return RegularizerOutput(loss, lam, imm_kl, naive_kl, ess, distance)

    def _exact_imm(self, policy: torch.nn.Module, contexts: torch.Tensor, teacher: Any) -> torch.Tensor:
        # Induce once per distinct context in the batch: one forward over its members.
        contexts = contexts.long().reshape(-1).to(self._members.device)
        unique, rows = torch.unique(contexts, return_inverse=True)
        members = self._members[unique]  # (U, H) observations
        params = self.family.at(policy, members.reshape(-1).to(torch.float32))
        components = self.family.reshape(params, members.shape[0], members.shape[1])
        return self.family.imm(teacher, components, self._belief[unique], rows=rows)

    def _enumerated_imm(self, policy: torch.nn.Module, obs: Any, teacher: Any) -> torch.Tensor:
        # An exact restriction without lookup tables enumerates each state's hidden values itself.
        candidates, belief = self.restriction.enumerate_hidden(obs)
        params = self.family.at(policy, candidates)
        return self.family.imm(teacher, self.family.reshape(params, belief.shape[0], belief.shape[1]), belief)

    def _sampled_imm(
        self, policy: torch.nn.Module, batch: Any, teacher: Any, pool: Any, params: Any
    ) -> tuple[torch.Tensor, neighbours.Draw]:
        if pool is None:
            raise RlimmError("sampled induction needs the rollout's observations (pool)")
        family = self.family
        cached = self._rollout_draws(pool)
        if self.induction == "knn":
            rows = batch.indices.to(cached.draws.index.device)
            draw = cached.draws.rows(rows)
            # knn's first hidden part is the state's own: that synthetic state is the state itself,
            # whose distribution the algorithm's forward already gave. Only the k − 1 others are evaluated.
            b, k = draw.index.shape[0], draw.index.shape[1] - 1
            own = family.own(params)
            synthetic = _rows(cached.synthetic, rows) if cached.synthetic is not None else None
            if synthetic is None and k:
                synthetic = self._synthetic(pool, batch.observations, draw.index[:, 1:])
        else:
            # The batch's rows of the pool: their visible features were computed with the pool's.
            features = cached.features[batch.indices.to(cached.features.device)]
            draw = neighbours.marginal(features, cached.features, self.k, self._discrete, self._generator)
            (b, k), own = draw.index.shape, None
            synthetic = self._synthetic(pool, batch.observations, draw.index)
        # One forward over the batch × k synthetic states (x̄_i, h_j).
        others = (
            family.reshape(family.at(policy, _flatten2(synthetic), normalised=False), b, k) if k else None
        )
        components = others if own is None else family.stack(own, others)
        return family.imm(teacher, components, draw.weights), draw

    def _synthetic(self, pool: Any, observations: Any, index: torch.Tensor) -> Any:
        """(B, k, …) synthetic states: each observation's visible part with the hidden parts of the
        pool rows ``index`` (B, k)."""
        b, k = index.shape
        states = self.restriction.combine(_repeat(observations, k), _rows(pool, index.reshape(-1)))
        return _unflatten2(states, b, k)

    def _rollout_draws(self, pool: Any) -> _RolloutDraws:
        """Computed once per rollout (a row's neighbours depend on the rollout only, not on the
        minibatch it falls in): the pool's visible features; for knn every row's draw and, when they
        fit in :data:`SYNTHETIC_CACHE_BYTES`, its synthetic states (which depend on no parameter)."""
        cached = getattr(self, "_draw_cache", None)
        if cached is not None and cached.pool is pool:
            return cached
        features = self.restriction.visible_features(pool)
        draws = synthetic = None
        if self.induction == "knn":
            draws = neighbours.knn_all(features, self.k, self._discrete)
            n, k = draws.index.shape
            if k > 1 and _nbytes(pool) * (k - 1) <= SYNTHETIC_CACHE_BYTES:
                synthetic = self._synthetic(pool, pool, draws.index[:, 1:])
        self._draw_cache = _RolloutDraws(pool, features, draws, synthetic)
        return self._draw_cache


#: Largest rollout's synthetic states (N × (k − 1) observations) kept for the whole rollout.
SYNTHETIC_CACHE_BYTES = 64 * 2**20


@dataclass
class _RolloutDraws:
    pool: Any
    features: torch.Tensor
    draws: neighbours.Draw | None
    synthetic: Any


def _nbytes(obs: torch.Tensor | dict) -> int:
    if isinstance(obs, dict):
        return sum(v.element_size() * v.numel() for v in obs.values())
    return obs.element_size() * obs.numel()


def _flatten2(obs: torch.Tensor | dict) -> torch.Tensor | dict:
    if isinstance(obs, dict):
        return {key: v.reshape(-1, *v.shape[2:]) for key, v in obs.items()}
    return obs.reshape(-1, *obs.shape[2:])


def _unflatten2(obs: torch.Tensor | dict, b: int, k: int) -> torch.Tensor | dict:
    if isinstance(obs, dict):
        return {key: v.reshape(b, k, *v.shape[1:]) for key, v in obs.items()}
    return obs.reshape(b, k, *obs.shape[1:])


class RegularizedMixin:
    """What every rlimm algorithm adds to its SB3 base (put it first in the bases):

    - the constructor arguments ``regularizer``, ``teacher``, ``restriction``, ``teacher_coef``
      (all with defaults, so SB3's ``load`` can rebuild the object), stored by :meth:`_init_teacher`
      before the model is set up;
    - a :class:`~rlimm.agents.buffers.TeacherRolloutBuffer` when there is a restriction, so the
      teacher's view of each observation is recorded at collection time;
    - the shared :class:`TeacherRegularizer` (:meth:`_teacher_loss`, the one call each algorithm's
      ``train()`` adds) and its fixed TensorBoard keys (``train/…``), the hyperparameters in
      TensorBoard's HPARAMS tab, and run folders named ``<Algo>_<regularizer>``;
    - save/load that keeps the teacher out of the zip: ``Algo.load(path, teacher=t)`` re-attaches
      one (SB3's ``load`` sets keyword arguments on the model before ``_setup_model``); a model
      loaded without one predicts normally and refuses to train with an active regulariser.
    """

    regularizer_kind: str
    teacher: Teacher | None
    restriction: Any
    teacher_coef: TeacherCoef
    induction: str
    induction_k: int
    kl_estimator: str
    kl_samples: int
    regularizer: TeacherRegularizer

    def _init_teacher(
        self,
        regularizer: str,
        teacher: Teacher | None,
        restriction: Any,
        teacher_coef: TeacherCoef,
        induction: str = "auto",
        induction_k: int = 16,
        kl_estimator: str = "mc",
        kl_samples: int = DEFAULT_SAMPLES,
    ) -> None:
        self.regularizer_kind = check_regularizer(regularizer)
        as_coefficient(teacher_coef)  # validate early, with a clear message
        if regularizer != "none" and teacher is None:
            raise RlimmError(f"regularizer '{regularizer}' needs a teacher")
        self.teacher = teacher
        self.restriction = restriction
        self.teacher_coef = teacher_coef
        self.induction = induction
        self.induction_k = induction_k
        self.kl_estimator = kl_estimator
        self.kl_samples = kl_samples

    def _setup_model(self) -> None:
        if self.restriction is not None:
            dict_obs = isinstance(self.observation_space, spaces.Dict)  # type: ignore[attr-defined]
            buffer = DictTeacherRolloutBuffer if dict_obs else TeacherRolloutBuffer
            custom = self.rollout_buffer_class  # type: ignore[attr-defined]
            if custom is not None and not issubclass(custom, TeacherViewMixin):
                raise RlimmError(
                    f"rollout_buffer_class {custom.__name__} cannot record what the teacher sees; "
                    f"leave it unset (rlimm uses {buffer.__name__})"
                )
            self.rollout_buffer_class = custom or buffer
            # The buffer gets the view for its construction only: the saved kwargs stay the user's
            # (a bound method of the model would drag the model, logger and all, into the zip).
            user_kwargs = self.rollout_buffer_kwargs  # type: ignore[attr-defined]
            self.rollout_buffer_kwargs = {
                **user_kwargs,
                "view": self._teacher_view,
                "columns": self._teacher_view_columns(),
                "raw_observations": self._raw_observations,
            }
            try:
                super()._setup_model()  # type: ignore[misc]
            finally:
                self.rollout_buffer_kwargs = user_kwargs
        else:
            super()._setup_model()  # type: ignore[misc]
        if not isinstance(self.policy, DistributionEvaluationMixin):  # type: ignore[attr-defined]
            raise RlimmError(
                f"policy {type(self.policy).__name__} cannot return its action distribution; use "  # type: ignore[attr-defined]
                "'MlpPolicy', 'CnnPolicy', 'MultiInputPolicy' or a policy of rlimm.agents.policies"
            )
        self._setup_regularizer()

    def _teacher_view_columns(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        columns: dict[str, tuple[tuple[int, ...], Any]] = {}
        if hasattr(self.restriction, "context_of"):
            columns["contexts"] = ((), np.int64)
        teacher = getattr(self, "teacher", None)
        if teacher is not None and hasattr(teacher, "gaussian"):
            columns["teacher_gaussian"] = ((2 * teacher.action_dim,), np.float32)  # mean, then log-std
        elif teacher is not None:
            columns["teacher_probs"] = ((teacher.n_actions,), np.float32)
        return columns

    def _teacher_view(self, raw_obs: Any) -> dict[str, np.ndarray]:
        """The buffer's columns for a batch of raw observations (rows of a rollout)."""
        visible = self.restriction.visible(raw_obs)
        out = {}
        if hasattr(self.restriction, "context_of"):
            out["contexts"] = np.asarray(visible, dtype=np.int64).reshape(-1)
        teacher = getattr(self, "teacher", None)
        if teacher is not None and hasattr(teacher, "gaussian"):
            mean, log_std = teacher.gaussian(visible)
            out["teacher_gaussian"] = np.concatenate([mean, log_std], axis=-1).astype(np.float32)
        elif teacher is not None:
            out["teacher_probs"] = np.asarray(teacher.probs(visible), dtype=np.float32)
        return out

    def _raw_observations(self) -> Any:
        """The raw version of the observation the buffer is adding (``VecNormalize``'s original), or
        ``None`` without ``VecNormalize``. Called once per added step, after the env stepped: the raw
        observation acted on is the one kept from the previous call (or from the reset)."""
        vec_normalize = self._vec_normalize_env  # type: ignore[attr-defined]
        if vec_normalize is None:
            return None
        raw, self._raw_last_obs = self._raw_last_obs, vec_normalize.get_original_obs()
        return raw

    def _setup_regularizer(self) -> None:
        teacher = getattr(self, "teacher", None)
        if teacher is not None:
            if self.restriction is None:  # checked here, before the spaces are compared
                raise RlimmError("a teacher needs a restriction that says what it sees")
            self.restriction.check_space(self.observation_space)  # type: ignore[attr-defined]
            teacher.check_compatible(self.restriction, self.action_space)  # type: ignore[attr-defined]
            if getattr(teacher, "squashed", False) and not self._squashed_actions():
                raise RlimmError(
                    f"teacher '{teacher.name}' is a squashed (SAC) Gaussian but {type(self).__name__}'s "
                    "Gaussian acts on the raw action: train the teacher with ppo or a2c"
                )
        self.regularizer = TeacherRegularizer(
            self.regularizer_kind,
            teacher,
            self.restriction,
            self.teacher_coef,
            self.device,  # type: ignore[attr-defined]
            getattr(self, "induction", "auto"),
            getattr(self, "induction_k", 16),
            self.seed,  # type: ignore[attr-defined]
            self.action_space,  # type: ignore[attr-defined]
            getattr(self, "kl_estimator", "mc"),
            getattr(self, "kl_samples", DEFAULT_SAMPLES),
        )

    def _squashed_actions(self) -> bool:
        """Whether the policy's Gaussian is squashed by tanh (SAC overrides this)."""
        return False

    def _excluded_save_params(self) -> list[str]:
        # The teacher can be large or live elsewhere (another model): never pickled with the agent.
        return [*super()._excluded_save_params(), "teacher", "regularizer", "_raw_last_obs", "_diagnosed_at"]  # type: ignore[misc]

    def learn(self, total_timesteps: int, *args: Any, tb_log_name: str | None = None, **kwargs: Any) -> Any:
        """SB3's ``learn``; TensorBoard runs are named ``<Algo>_<regularizer>`` unless given."""
        name = tb_log_name or f"{type(self).__name__}_{self.regularizer_kind}"
        return super().learn(total_timesteps, *args, tb_log_name=name, **kwargs)  # type: ignore[misc]

    def _setup_learn(self, *args: Any, **kwargs: Any) -> Any:
        before = getattr(self, "_last_obs", None)
        out = super()._setup_learn(*args, **kwargs)  # type: ignore[misc]
        vec_normalize = self._vec_normalize_env  # type: ignore[attr-defined]
        if vec_normalize is not None and (
            self._last_obs is not before or getattr(self, "_raw_last_obs", None) is None
        ):  # type: ignore[attr-defined]
            self._raw_last_obs = vec_normalize.get_original_obs()  # the env was reset
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
            "induction": self.regularizer.induction if self.regularizer.teacher is not None else "",
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

    #: Sampled induction: the diagnostics are computed once per this many updates (see ``_teacher_loss``).
    diagnostic_period: int = 1

    def _induction_pool(self, batch: Any) -> Any:
        """Sampled induction: the observations hidden parts are drawn from, of which the batch's
        ``indices`` are rows. On-policy algorithms: the whole rollout (off-policy ones override this)."""
        return self.rollout_buffer.rollout_observations()  # type: ignore[attr-defined]

    def _teacher_loss(self, batch: Any, distribution: Distribution) -> torch.Tensor:
        """``λ · R`` on a (mini)batch of the buffer, recorded under the fixed ``train/`` keys (averaged
        over the minibatches of an update); exactly zero when the regulariser is off.

        :param batch: the buffer's samples (what the teacher saw is read only when the regulariser is on).
        :param distribution: the policy's action distribution at the batch's observations.
        """
        if not self.regularizer.enabled:
            return torch.zeros(())
        pool = None
        sampled = self.regularizer.induction != "exact"
        if sampled:
            pool = self._induction_pool(batch)
        # The KL that is not optimised and the draws' statistics are diagnostics: with sampled
        # induction (a batch × k forward) they are computed on the first minibatch of a pass only, and
        # at most once per `diagnostic_period` updates (off-policy algorithms update every step).
        bucket = self._n_updates // self.diagnostic_period  # type: ignore[attr-defined]
        diagnose = not sampled or getattr(self, "_diagnosed_at", None) != bucket
        self._diagnosed_at = bucket
        out = self.regularizer.compute(
            self.policy,  # type: ignore[attr-defined]
            batch,
            distribution,
            self._current_progress_remaining,  # type: ignore[attr-defined]
            pool,
            diagnostics=diagnose,
        )
        logger = self.logger  # type: ignore[attr-defined]
        logger.record_mean("train/regularizer_loss", out.loss.item())
        logger.record("train/lambda", out.lam)
        for key, value in (
            ("train/imm_kl", out.imm_kl),
            ("train/naive_kl", out.naive_kl),
            ("train/induction_ess", out.ess),
            ("train/neighbour_distance", out.distance),
        ):
            if value == value:  # not nan: computed on this minibatch
                logger.record_mean(key, value)
        return out.loss
