"""A2C with a restricted-teacher regulariser (``none``, ``naive`` or ``imm``).

``train()`` is SB3's ``A2C.train`` (stable-baselines3 2.9) with the two changes marked ``# rlimm:``
(logits from the same forward pass; ``λ · regulariser`` added to the loss). With
``regularizer="none"`` (or λ = 0) training is bit-identical to SB3's A2C.
"""

from __future__ import annotations

import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C as SB3A2C
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from rlimm.agents.regularizer import RegularizedMixin, evaluate_actions_and_logits


class A2C(RegularizedMixin, SB3A2C):
    """SB3's A2C plus a restricted-teacher regulariser.

    :param regularizer: ``"none"``, ``"naive"`` or ``"imm"``.
    :param teacher: the restricted teacher (required unless ``regularizer="none"``).
    :param restriction: what the teacher sees of an observation.
    :param teacher_coef: λ, a number or a :class:`~rlimm.coefficients.Coefficient` of progress.
    All other parameters are those of :class:`stable_baselines3.A2C`.
    """

    def train(self) -> None:
        """Update policy using the currently gathered rollout buffer (one gradient step)."""
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)

        # Update optimizer learning rate
        self._update_learning_rate(self.policy.optimizer)
        regularize = self.regularizer.teacher is not None or self.regularizer.active  # rlimm

        # This will only loop once (get all data in one go)
        for rollout_data in self.rollout_buffer.get(batch_size=None):
            actions = rollout_data.actions
            if isinstance(self.action_space, spaces.Discrete):
                # Convert discrete action from float to long
                actions = actions.long().flatten()

            # rlimm: the same forward pass as evaluate_actions, keeping the logits
            values, log_prob, entropy, logits = evaluate_actions_and_logits(
                self.policy, rollout_data.observations, actions
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
            if regularize:  # rlimm: λ · regulariser
                loss = loss + self._regularize(rollout_data.contexts, logits).loss

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
