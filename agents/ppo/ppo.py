"""PPO with a restricted-teacher regulariser (``none``, ``naive`` or ``imm``).

``train()`` is SB3's ``PPO.train`` (stable-baselines3 2.9) with two changes marked ``# rlimm:``: the
minibatch's action distribution comes out of the same forward pass as the log-probabilities
(``evaluate_actions(…, return_distribution=True)``), and ``λ · regulariser`` is added to the loss.
The IMM term induces the policy exactly, over all hidden values of each minibatch state's context
(never by grouping the random minibatch), so its estimate does not depend on the minibatch size.
With ``regularizer="none"`` (or λ = 0) training is bit-identical to SB3's PPO.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO as SB3PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from rlimm.agents.common.on_policy import OnPolicyRegularizedMixin
from rlimm.agents.common.policies import POLICY_ALIASES, DistributionReturningPolicy
from rlimm.agents.imm.settings import InductionSettings
from rlimm.agents.teachers.base import Teacher
from rlimm.coefficients import TeacherCoef
from rlimm.envs.restrictions import Restriction


class PPO(OnPolicyRegularizedMixin, SB3PPO):
    """SB3's PPO plus a restricted-teacher regulariser.

    :param policy: ``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"`` or a policy class from
        :mod:`rlimm.agents.common.policies` (their ``evaluate_actions`` can return the action distribution).
    :param env: the environment to learn from (or its registered id).
    :param learning_rate: learning rate, a number or a schedule of ``progress_remaining``.
    :param n_steps: steps collected per environment before each update.
    :param batch_size: minibatch size.
    :param n_epochs: passes over the rollout per update.
    :param gamma: discount factor.
    :param gae_lambda: GAE's bias/variance trade-off.
    :param clip_range: PPO's clipping parameter, a number or a schedule.
    :param clip_range_vf: clipping of the value function (``None``: no clipping).
    :param normalize_advantage: standardise the advantages per minibatch.
    :param ent_coef: entropy coefficient.
    :param vf_coef: value-function coefficient.
    :param max_grad_norm: gradient-norm clip.
    :param use_sde: generalised state-dependent exploration (continuous actions).
    :param sde_sample_freq: resample the gSDE noise every n steps (-1: once per rollout).
    :param rollout_buffer_class: the rollout buffer; with a restriction it must be a
        :class:`~rlimm.agents.common.rollout_buffers.TeacherRolloutBuffer` (the default then).
    :param rollout_buffer_kwargs: its keyword arguments.
    :param target_kl: stop an update's epochs early beyond this approximate KL (``None``: never).
    :param stats_window_size: episodes averaged in the rollout logs.
    :param regularizer: ``"none"``, ``"naive"`` or ``"imm"``.
    :param teacher: the restricted teacher (required unless ``regularizer="none"``).
    :param restriction: what the teacher sees of an observation.
    :param teacher_coef: λ, a number or a callable of ``progress_remaining`` (1 → 0), as
        ``learning_rate``; see :mod:`rlimm.coefficients`.
    :param induction: how the IMM term averages the policy over the hidden part:
        :class:`~rlimm.agents.imm.settings.InductionSettings` or a dict with some of its keys
        (``method``, ``k``, ``estimator``, ``samples``); ``None``: the defaults.
    :param tensorboard_log: TensorBoard folder (``None``: none).
    :param policy_kwargs: keyword arguments of the policy.
    :param verbose: 0 silent, 1 info, 2 debug.
    :param seed: random seed.
    :param device: torch device (``"auto"``: CUDA when available).
    :param _init_setup_model: build the networks now (SB3's ``load`` passes ``False``).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = POLICY_ALIASES

    def __init__(
        self,
        policy: str | type[DistributionReturningPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 2048,
        batch_size: int = 64,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        regularizer: str = "none",
        teacher: Teacher | None = None,
        restriction: Restriction | None = None,
        teacher_coef: TeacherCoef = 0.0,
        induction: InductionSettings | dict[str, Any] | None = None,
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
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            normalize_advantage=normalize_advantage,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        # The teacher is set before the model, whose buffer and regulariser depend on it.
        self._init_teacher(regularizer, teacher, restriction, teacher_coef, induction)
        if _init_setup_model:
            self._setup_model()

    def train(self) -> None:
        """Update policy using the currently gathered rollout buffer."""
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update optimizer learning rate
        self._update_learning_rate(self.policy.optimizer)
        # Compute current clip range
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        # Optional: clip range for the value function
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]

        entropy_losses = []
        pg_losses, value_losses = [], []
        clip_fractions = []

        continue_training = True
        # train for n_epochs epochs
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            # Do a complete pass on the rollout buffer
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    # Convert discrete action from float to long
                    actions = rollout_data.actions.long().flatten()

                # rlimm: the same forward pass, keeping the action distribution
                values, log_prob, entropy, distribution = self.policy.evaluate_actions(
                    rollout_data.observations, actions, return_distribution=True
                )
                values = values.flatten()
                # Normalize advantage
                advantages = rollout_data.advantages
                # Normalization does not make sense if mini batchsize == 1, see GH issue #325
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                # ratio between old and new policy, should be one at the first iteration
                ratio = th.exp(log_prob - rollout_data.old_log_prob)

                # clipped surrogate loss
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -th.min(policy_loss_1, policy_loss_2).mean()

                # Logging
                pg_losses.append(policy_loss.item())
                clip_fraction = th.mean((th.abs(ratio - 1) > clip_range).float()).item()
                clip_fractions.append(clip_fraction)

                if self.clip_range_vf is None:
                    # No clipping
                    values_pred = values
                else:
                    # Clip the difference between old and new value
                    # NOTE: this depends on the reward scaling
                    values_pred = rollout_data.old_values + th.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                # Value loss using the TD(gae_lambda) target
                value_loss = F.mse_loss(rollout_data.returns, values_pred)
                value_losses.append(value_loss.item())

                # Entropy loss favor exploration
                if entropy is None:
                    # Approximate entropy when no analytical form
                    entropy_loss = -th.mean(-log_prob)
                else:
                    entropy_loss = -th.mean(entropy)

                entropy_losses.append(entropy_loss.item())

                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                # rlimm: λ · R, λ = teacher_coef now (a number, a schedule or the trust rule)
                teacher_coef = self.current_teacher_coef()
                loss = loss + teacher_coef * self._teacher_term(rollout_data, distribution, teacher_coef)

                # Calculate approximate form of reverse KL Divergence for early stopping
                # see issue #417: https://github.com/DLR-RM/stable-baselines3/issues/417
                with th.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = th.mean((th.exp(log_ratio) - 1) - log_ratio).cpu().numpy()
                    approx_kl_divs.append(approx_kl_div)

                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div:.2f}")
                    break

                # Optimization step
                self.policy.optimizer.zero_grad()
                loss.backward()
                # Clip grad norm
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()

            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(
            self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
        )

        # Logs
        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if self.clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
