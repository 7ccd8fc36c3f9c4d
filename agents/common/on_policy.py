"""The on-policy glue (REINFORCE, PPO, A2C): :class:`OnPolicyRegularizedMixin`.

One update, one way: SB3's ``collect_rollouts`` fills the rollout buffer (under ``VecNormalize`` an
internal callback hands it each step's raw observation) → right after it returns, the teacher's view of
the whole rollout is computed once and stored in the buffer → ``train()`` reads minibatches carrying
``teacher_params`` (and ``contexts``, ``indices``) and adds ``λ · R`` on its loss line. Sampled induction's
pool, the rollout and the ``induction.pool`` − 1 rollouts before it, is built right after collection
too, in one object (:class:`~rlimm.agents.imm.draws.RolloutPools`), and its draws at its first use, kept
with it. The off-policy counterpart is :mod:`rlimm.agents.common.off_policy`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    MultiCategoricalDistribution,
)
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from rlimm.agents.common.hidden import rollout_hidden_left
from rlimm.agents.common.mixin import RegularizedMixin
from rlimm.agents.common.policies import DistributionReturningPolicy
from rlimm.agents.common.rollout_buffers import (
    DictTeacherRolloutBuffer,
    TeacherRolloutBuffer,
    TeacherViewMixin,
)
from rlimm.agents.common.trust import RolloutEvidence, trust_of
from rlimm.agents.imm.draws import Pool, RolloutPools, Trajectories
from rlimm.agents.imm.observations import n_rows, per_key
from rlimm.envs.restrictions import PartitionRestriction
from rlimm.errors import RlimmError


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
    #: sampled induction: this rollout's pool and the earlier rollouts it holds, built at collection
    _pools: RolloutPools | None = None

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

    def induction_pool(self, batch: Any = None) -> Pool:
        """Sampled induction's pool: the current rollout's observations first (the minibatches' rows),
        then those of the ``induction.pool`` − 1 rollouts before it, with every row's episode and step;
        built once per rollout, when it was collected (:meth:`collect_rollouts`)."""
        if self._pools is None or self._pools.current is None:
            raise RlimmError("sampled induction's pool is built when a rollout is collected: none was yet")
        return self._pools.current

    def _refill_pool(self, buffer: TeacherViewMixin) -> None:
        """This rollout's pool, from the buffer right after collection. Under ``VecNormalize`` the
        earlier rollouts are kept raw and normalised with the current statistics, as the policy would
        see those states now (their stored copies were normalised with the statistics of their time)."""
        if self._pools is None:
            self._pools = RolloutPools(self.teacher_regularizer.induction.pool - 1)
        vec_normalize = self._vec_normalize_env
        self._pools.refill(
            buffer.rollout_observations(),
            Trajectories(*buffer.rollout_trajectories()),
            kept=buffer.raw_rows() if vec_normalize is not None else None,
            now=self._normalised,
        )

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
            if self.teacher_regularizer.sampled:  # the pool of the next minibatches: this rollout's
                self._refill_pool(rollout_buffer)
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
