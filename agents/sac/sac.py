"""SAC with a restricted-teacher regulariser (``none``, ``naive`` or ``imm``).

``train()`` is SB3's ``SAC.train`` (stable-baselines3 2.9) with two changes marked ``# rlimm:``: the
actor's distribution at the sampled states is kept (the next-state pass replaces it), and
``λ · regulariser`` is added to the actor loss:

    actor_loss = (α · log π(ã|x) − min_i Q_i(x, ã)).mean() + λ · R

R compares the teacher's Gaussian with the actor's Gaussian *before* the tanh squash (a KL is unchanged
by an invertible map of the action, :mod:`rlimm.agents.imm.families`): pointwise (``naive``), or with
the induced Gaussian mixture (``imm``). Only the actor is regularised; the critics and the entropy
coefficient are SB3's.

The teacher's view of each transition is computed from the stored raw observation at the start of
``train()``, for the transitions collected since the last update, and stored in the replay buffer
(:mod:`rlimm.agents.common.replay_buffers`), which hands it out with the samples. Sampled induction
(``knn``, ``marginal``) draws its hidden parts from the sampled minibatch itself and, with
``induction.pool`` > 1, from more rows drawn from the replay buffer (with the induction's own
generator), passed to the loss as its pool; exact induction enumerates the hidden part, as for PPO.
With ``regularizer="none"`` (or λ = 0) training is bit-identical to SB3's SAC.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3 import SAC as SB3SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule, TrainFreq
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.sac.policies import SACPolicy
from torch.distributions import Normal
from torch.nn import functional as F

from rlimm.agents.common.off_policy import OffPolicyRegularizedMixin
from rlimm.agents.imm.observations import per_key
from rlimm.agents.imm.settings import InductionSettings
from rlimm.agents.sac.policies import FROM_STOCK, POLICY_ALIASES, ParamsReturningSACPolicy
from rlimm.agents.teachers.base import Teacher
from rlimm.coefficients import TeacherCoef
from rlimm.envs.restrictions import Restriction
from rlimm.errors import RlimmError
from rlimm.trust import critic_evidence


class SAC(OffPolicyRegularizedMixin, SB3SAC):
    """SB3's SAC plus a restricted-teacher regulariser on the actor.

    :param policy: ``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"`` or a SAC policy class (with a
        teacher, one of :mod:`rlimm.agents.sac.policies`: the regulariser reads the actor's Gaussian).
    :param env: the environment to learn from (or its registered id).
    :param learning_rate: learning rate of the actor, critics and entropy coefficient, a number or a
        schedule of ``progress_remaining``.
    :param buffer_size: replay buffer size.
    :param learning_starts: steps collected (with uniform random actions) before learning starts.
    :param batch_size: minibatch size of each gradient step; with sampled induction it is also the
        pool of hidden parts.
    :param tau: soft (Polyak) update coefficient of the target critics.
    :param gamma: discount factor.
    :param train_freq: update every ``train_freq`` steps, or a tuple such as ``(5, "step")`` or
        ``(2, "episode")``.
    :param gradient_steps: gradient steps per update (-1: as many as steps collected).
    :param action_noise: action noise added for exploration (``None``: none).
    :param replay_buffer_class: the replay buffer; with a restriction it must be one of SB3's
        ``ReplayBuffer``, ``DictReplayBuffer``, ``NStepReplayBuffer`` (replaced by its
        :mod:`rlimm.agents.common.replay_buffers` counterpart) or a
        :class:`~rlimm.agents.common.replay_buffers.TeacherReplayViewMixin` subclass (``None``: chosen as SB3
        does).
    :param replay_buffer_kwargs: its keyword arguments.
    :param optimize_memory_usage: SB3's memory-efficient replay buffer.
    :param n_steps: n-step returns for the critics (1: one-step TD targets).
    :param ent_coef: entropy coefficient α, a number or ``"auto"`` (``"auto_0.1"``: learned from 0.1).
    :param target_update_interval: gradient steps between target-critic updates.
    :param target_entropy: target entropy when α is learned (``"auto"``: −dim(actions)).
    :param use_sde: generalised state-dependent exploration (not with a teacher).
    :param sde_sample_freq: resample the gSDE noise every n steps (-1: once per rollout).
    :param use_sde_at_warmup: gSDE instead of uniform actions before learning starts.
    :param stats_window_size: episodes averaged in the rollout logs.
    :param regularizer: ``"none"``, ``"naive"`` or ``"imm"``.
    :param teacher: the restricted teacher (required unless ``regularizer="none"``); for Box actions a
        Gaussian teacher over SAC's pre-squash action (``squashed=True``, e.g. a SAC policy trained on
        the visible part).
    :param restriction: what the teacher sees of an observation.
    :param teacher_coef: λ, a number or a callable of ``progress_remaining`` (1 → 0), as
        ``learning_rate``; see :mod:`rlimm.coefficients`.
    :param induction: how the IMM term averages the policy over the hidden part:
        :class:`~rlimm.agents.imm.settings.InductionSettings` or a dict with some of its keys
        (``method``, ``k``, ``estimator``, ``samples``, ``exclude``, ``pool``); ``None``: the defaults.
        ``pool`` counts minibatches' worth of replay rows here (default 1: the minibatch alone);
        ``belief: on_policy`` is refused (it weighs by a rollout's visits).
    :param imm_batch_size: ``imm``: the term is evaluated on this many rows of each minibatch (its first
        ones; the minibatch is a random draw, so the estimate stays unbiased), their hidden parts still
        drawn from the whole minibatch; ``None``: on every row. Each row costs k actor evaluations,
        against one for SAC's own actor loss, and SAC takes a gradient step per environment step.
        ``lambda_schedule: trust`` takes its critic signal on these rows too, for naive as for imm.
    :param tensorboard_log: TensorBoard folder (``None``: none).
    :param policy_kwargs: keyword arguments of the policy.
    :param verbose: 0 silent, 1 info, 2 debug.
    :param seed: random seed.
    :param device: torch device (``"auto"``: CUDA when available).
    :param _init_setup_model: build the networks now (SB3's ``load`` passes ``False``).
    """

    def __init__(
        self,
        policy: str | type[SACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        ent_coef: str | float = "auto",
        target_update_interval: int = 1,
        target_entropy: str | float = "auto",
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        stats_window_size: int = 100,
        regularizer: str = "none",
        teacher: Teacher | None = None,
        restriction: Restriction | None = None,
        teacher_coef: TeacherCoef = 0.0,
        induction: InductionSettings | dict[str, Any] | None = None,
        imm_batch_size: int | None = 32,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            action_noise=action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            ent_coef=ent_coef,
            target_update_interval=target_update_interval,
            target_entropy=target_entropy,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            use_sde_at_warmup=use_sde_at_warmup,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        if imm_batch_size is not None and (
            isinstance(imm_batch_size, bool) or not isinstance(imm_batch_size, int) or imm_batch_size < 1
        ):
            raise RlimmError(f"imm_batch_size must be a whole number >= 1 or None, got {imm_batch_size!r}")
        self.imm_batch_size = imm_batch_size
        # The teacher is set before the model, whose buffer and regulariser depend on it.
        self._init_teacher(regularizer, teacher, restriction, teacher_coef, induction)
        if self.induction.belief == "on_policy":
            raise RlimmError(
                "'induction.belief: on_policy' weighs the hidden values by a rollout's visits: it is for "
                "reinforce, ppo and a2c; SAC takes belief 'fixed'"
            )
        if _init_setup_model:
            self._setup_model()

    # --- the model: rlimm's policies (the teacher-view replay buffer is the off-policy glue's) ----------

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = POLICY_ALIASES
    #: SAC's Gaussian is before its tanh squash: it takes squashed Gaussian teachers.
    squashed_actions = True
    #: ``lambda_schedule: trust``: the signal comes from SAC's critic (:meth:`_critic_values`).
    off_policy_trust = True

    def _setup_model(self) -> None:
        # rlimm's policies (with action_params) in place of SB3's own: a model saved by SB3, or by an
        # rlimm before SAC had its policies, holds SB3's classes.
        self.policy_class = FROM_STOCK.get(self.policy_class, self.policy_class)
        super()._setup_model()
        if self.teacher is not None and not isinstance(self.policy, ParamsReturningSACPolicy):
            raise RlimmError(
                f"policy {type(self.policy).__name__} cannot give the actor's Gaussian to the teacher "
                "regulariser; use 'MlpPolicy', 'CnnPolicy', 'MultiInputPolicy' or a policy of "
                "rlimm.agents.sac.policies"
            )

    def _imm_rows(self, batch: Any, distribution: Any) -> tuple[Any, Any]:
        """The minibatch (and the actor's distribution) the regulariser sees: for ``imm`` its first
        ``imm_batch_size`` rows; the whole minibatch stays the pool of hidden parts."""
        m = self.imm_batch_size
        if self.teacher is None or self.regularizer != "imm" or m is None or m >= len(batch.indices):
            return batch, distribution

        def head(values: Any) -> Any:
            if values is None:
                return None
            return {k: v[:m] for k, v in values.items()} if isinstance(values, dict) else values[:m]

        rows = batch._replace(
            observations=head(batch.observations),
            indices=batch.indices[:m],
            env_indices=head(batch.env_indices),
            contexts=head(batch.contexts),
            teacher_params=head(batch.teacher_params),
        )
        normal = distribution.distribution
        head_distribution = copy.copy(distribution)
        head_distribution.distribution = Normal(normal.loc[:m], normal.scale[:m])
        return rows, head_distribution

    @th.no_grad()
    def _critic_values(
        self, rows: Any, out: Any, min_qf_pi: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """The trust signal's action values on the regulariser's rows: min_i Q_i(x, a) of an action drawn
        from the teacher, and of one from the distribution the regulariser pulls (naive: the policy's
        own sampled action, whose value SAC's actor loss already has; imm: the induced mixture), with
        the policy's values (the signal's scale). Actions are drawn before the squash, then squashed.
        naive's term covers the whole minibatch; its signal is taken on the first ``imm_batch_size``
        rows, as imm's is: one extra critic forward on those rows, not on the minibatch."""
        family = self.teacher_regularizer.family
        generator = self.teacher_regularizer.trust_generator
        m = len(rows.indices)
        observations, teacher = rows.observations, out.teacher
        if self.regularizer == "naive" and self.imm_batch_size is not None and self.imm_batch_size < m:
            m = self.imm_batch_size
            observations = per_key(observations, lambda v: v[:m])
            teacher = tuple(p[:m] for p in teacher)
        own = min_qf_pi[:m].reshape(-1)

        def value(pre_squash: th.Tensor) -> th.Tensor:
            q = th.cat(self.critic(observations, th.tanh(pre_squash)), dim=1)
            return q.min(dim=1).values

        q_teacher = value(family.sample_teacher(teacher, generator))
        if self.regularizer == "imm" and out.induced is not None:
            (means, log_stds), weights, index = out.induced
            log_stds = log_stds.expand_as(means)
            if index is not None:  # exact induction: one row of components per distinct context
                means, log_stds, weights = means[index], log_stds[index], weights[index]
            q_compared = value(family.sample_induced((means, log_stds), weights, generator))
        else:
            q_compared = own
        return q_teacher, q_compared, own

    def hparams(self) -> dict[str, str | float | int | bool]:
        """The hyperparameters shown in TensorBoard's HPARAMS tab (``n_steps``: SAC's n-step returns)."""
        freq = self.train_freq
        assert isinstance(freq, TrainFreq)  # converted by _setup_model
        ent_coef = self.ent_coef
        return {
            **super().hparams(),
            "buffer_size": int(self.buffer_size),
            "batch_size": int(self.batch_size),
            "learning_starts": int(self.learning_starts),
            "train_freq": f"{freq.frequency} {freq.unit.value}",
            "gradient_steps": int(self.gradient_steps),
            "tau": float(self.tau),
            "ent_coef": ent_coef if isinstance(ent_coef, str) else float(ent_coef),
        }

    # --- training ---------------------------------------------------------------------------------------

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update optimizers learning rate
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]

        # Update learning rate according to lr schedule
        self._update_learning_rate(optimizers)
        # rlimm: the teacher's view of the transitions collected since the last update
        self.update_teacher_view()

        ent_coef_losses, ent_coefs = [], []
        actor_losses, critic_losses = [], []
        trust_values: list[tuple[th.Tensor, th.Tensor, th.Tensor]] = []  # rlimm: the trust signal

        for gradient_step in range(gradient_steps):
            # Sample replay buffer
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            # We need to sample because `log_std` may have changed between two gradient steps
            if self.use_sde:
                self.actor.reset_noise()

            # Action by the current actor for the sampled state
            actions_pi, log_prob = self.actor.action_log_prob(replay_data.observations)
            log_prob = log_prob.reshape(-1, 1)
            # rlimm: the actor's distribution at the sampled states (its pre-squash Normal), kept
            # before the next-state pass below replaces it
            distribution = copy.copy(self.actor.action_dist)

            ent_coef_loss = None
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                # Important: detach the variable from the graph
                # so we don't change it with other losses
                # see https://github.com/rail-berkeley/softlearning/issues/60
                ent_coef = th.exp(self.log_ent_coef.detach())
                assert isinstance(self.target_entropy, float)
                ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
                ent_coef_losses.append(ent_coef_loss.item())
            else:
                ent_coef = self.ent_coef_tensor

            ent_coefs.append(ent_coef.item())

            # Optimize entropy coefficient, also called
            # entropy temperature or alpha in the paper
            if ent_coef_loss is not None and self.ent_coef_optimizer is not None:
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()

            with th.no_grad():
                # Select action according to policy
                next_actions, next_log_prob = self.actor.action_log_prob(replay_data.next_observations)
                # Compute the next Q values: min over all critics targets
                next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
                next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
                # add entropy term
                next_q_values = next_q_values - ent_coef * next_log_prob.reshape(-1, 1)
                # td error + entropy term
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            # Get current Q-values estimates for each critic network
            # using action from the replay buffer
            current_q_values = self.critic(replay_data.observations, replay_data.actions)

            # Compute critic loss
            critic_loss = 0.5 * sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)  # for type checker
            critic_losses.append(critic_loss.item())  # type: ignore[union-attr]

            # Optimize the critic
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            # Compute actor loss
            # Alternative: actor_loss = th.mean(log_prob - qf1_pi)
            # Min over all critic networks
            q_values_pi = th.cat(self.critic(replay_data.observations, actions_pi), dim=1)
            min_qf_pi, _ = th.min(q_values_pi, dim=1, keepdim=True)
            actor_loss = (ent_coef * log_prob - min_qf_pi).mean()
            # rlimm: λ · R, λ = teacher_coef now (a number, a schedule or the trust rule); imm: R on the
            # minibatch's first imm_batch_size rows, the whole minibatch is the pool of sampled induction
            teacher_coef = self.current_teacher_coef()
            rows, rows_distribution = self._imm_rows(replay_data, distribution)
            evaluated = None if rows is replay_data else len(rows.indices)  # draws for these rows only
            pool = self.induction_pool(replay_data, evaluated)
            reg = self._teacher_term(rows, rows_distribution, teacher_coef, pool)
            actor_loss = actor_loss + teacher_coef * reg
            actor_losses.append(actor_loss.item())
            # rlimm: lambda_schedule trust — the critic's values of the teacher's and the pulled actions
            if self._kept_output is not None:
                trust_values.append(self._critic_values(rows, self._kept_output, min_qf_pi))

            # Optimize the actor
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            # Update target networks
            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                # Copy running stats, see GH issue #996
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps
        if trust_values:  # rlimm: one trust update per train() call
            self.observe_trust(critic_evidence(*(th.cat(v) for v in zip(*trust_values, strict=True))))

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", np.mean(ent_coefs))
        self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        if len(ent_coef_losses) > 0:
            self.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))
