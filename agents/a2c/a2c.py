"""A2C with a restricted-teacher regulariser (``none``, ``naive`` or ``imm``).

``train()`` is SB3's ``A2C.train`` (stable-baselines3 2.9) with the two changes marked ``# rlimm:``
(the action distribution from the same forward pass; ``λ · regulariser`` added to the loss). With
``regularizer="none"`` (or λ = 0) training is bit-identical to SB3's A2C.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C as SB3A2C
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


class A2C(OnPolicyRegularizedMixin, SB3A2C):
    """SB3's A2C plus a restricted-teacher regulariser.

    :param policy: ``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"`` or a policy class from
        :mod:`rlimm.agents.common.policies` (their ``evaluate_actions`` can return the action distribution).
    :param env: the environment to learn from (or its registered id).
    :param learning_rate: learning rate, a number or a schedule of ``progress_remaining``.
    :param n_steps: steps collected per environment before each update.
    :param gamma: discount factor.
    :param gae_lambda: GAE's bias/variance trade-off (1: classic advantage).
    :param ent_coef: entropy coefficient.
    :param vf_coef: value-function coefficient.
    :param max_grad_norm: gradient-norm clip.
    :param rms_prop_eps: RMSProp's epsilon.
    :param use_rms_prop: RMSProp (``True``) or Adam.
    :param use_sde: generalised state-dependent exploration (continuous actions).
    :param sde_sample_freq: resample the gSDE noise every n steps (-1: once per rollout).
    :param rollout_buffer_class: the rollout buffer; with a restriction it must be a
        :class:`~rlimm.agents.common.rollout_buffers.TeacherRolloutBuffer` (the default then).
    :param rollout_buffer_kwargs: its keyword arguments.
    :param normalize_advantage: standardise the advantages.
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
        learning_rate: float | Schedule = 7e-4,
        n_steps: int = 5,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        rms_prop_eps: float = 1e-5,
        use_rms_prop: bool = True,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        normalize_advantage: bool = False,
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
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            rms_prop_eps=rms_prop_eps,
            use_rms_prop=use_rms_prop,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            normalize_advantage=normalize_advantage,
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
        """Update policy using the currently gathered rollout buffer (one gradient step)."""
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)

        # Update optimizer learning rate
        self._update_learning_rate(self.policy.optimizer)

        # This will only loop once (get all data in one go)
        for rollout_data in self.rollout_buffer.get(batch_size=None):
            actions = rollout_data.actions
            if isinstance(self.action_space, spaces.Discrete):
                # Convert discrete action from float to long
                actions = actions.long().flatten()

            # rlimm: the same forward pass, keeping the action distribution
            values, log_prob, entropy, distribution = self.policy.evaluate_actions(
                rollout_data.observations, actions, return_distribution=True
            )
            values = values.flatten()

            # Normalize advantage (not present in the original implementation)
            advantages = rollout_data.advantages
            if self.normalize_advantage:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

            # Policy gradient loss
            policy_loss = -(advantages * log_prob).mean()

            # Value loss using the TD(gae_lambda) target
            value_loss = F.mse_loss(rollout_data.returns, values)

            # Entropy loss favor exploration
            if entropy is None:
                # Approximate entropy when no analytical form
                entropy_loss = -th.mean(-log_prob)
            else:
                entropy_loss = -th.mean(entropy)

            loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
            # rlimm: λ · R, λ = teacher_coef now (a number, a schedule or the trust rule)
            teacher_coef = self.current_teacher_coef()
            loss = loss + teacher_coef * self._teacher_term(rollout_data, distribution, teacher_coef)

            # Optimization step
            self.policy.optimizer.zero_grad()
            loss.backward()

            # Clip grad norm
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()

        explained_var = explained_variance(
            self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
        )

        self._n_updates += 1
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/entropy_loss", entropy_loss.item())
        self.logger.record("train/policy_loss", policy_loss.item())
        self.logger.record("train/value_loss", value_loss.item())
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
