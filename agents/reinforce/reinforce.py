"""REINFORCE (vanilla policy gradient with discounted reward-to-go) as an SB3 algorithm.

SB3 has no REINFORCE (A2C always bootstraps a critic). This one follows the IMM paper's grid
experiment (Spinning Up's ``2_rtg_pg``): each update collects ``n_steps`` transitions with the
current policy, weights each log-probability by the discounted reward-to-go *within its episode*
(no baseline, no bootstrap where the rollout is cut), and takes one optimiser step on
``-(log π(a|s) · G_t).mean() + λ · regulariser``.

To reproduce the paper exactly, wrap the continuing grid in a time limit equal to ``n_steps``
(``gym.make(id, max_episode_steps=50)``; the configs' ``env.episode_steps``) so that each update uses
one fresh trajectory from a uniform start.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch as th
from gymnasium import spaces
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from torch import nn

from rlimm.agents.common.on_policy import OnPolicyRegularizedMixin
from rlimm.agents.imm.settings import InductionSettings
from rlimm.agents.reinforce.policies import ActorOnlyPolicy
from rlimm.agents.teachers.base import Teacher
from rlimm.coefficients import TeacherCoef
from rlimm.envs.restrictions import Restriction

# The paper's learner: one hidden layer of 32 tanh units, PyTorch's default initialisation
# (SB3's orthogonal init would start from a near-uniform policy), Adam with torch's default eps.
DEFAULT_POLICY_KWARGS: dict[str, Any] = {
    "net_arch": {"pi": [32], "vf": []},
    "activation_fn": nn.Tanh,
    "ortho_init": False,
    "optimizer_kwargs": {},
}


class REINFORCE(OnPolicyRegularizedMixin, OnPolicyAlgorithm):
    """REINFORCE with discounted reward-to-go and an optional restricted-teacher regulariser.

    :param policy: ``"MlpPolicy"`` or an :class:`ActorOnlyPolicy` subclass.
    :param env: the environment (or its registered id).
    :param learning_rate: Adam learning rate (constant or SB3 schedule).
    :param n_steps: transitions per update (per environment).
    :param gamma: discount of the reward-to-go.
    :param ent_coef: entropy bonus coefficient (0 in the paper).
    :param normalize_advantage: standardise the reward-to-go within each batch (off in the paper).
    :param max_grad_norm: gradient-norm clip, ``None`` for none (the paper's setting).
    :param regularizer: ``"none"``, ``"naive"`` or ``"imm"``.
    :param teacher: the restricted teacher (required unless ``regularizer="none"``).
    :param restriction: what the teacher sees of an observation.
    :param teacher_coef: λ, a number or a callable of ``progress_remaining`` (1 → 0), as
        ``learning_rate``; see :mod:`rlimm.coefficients`.
    :param induction: how the IMM term averages the policy over the hidden part:
        :class:`~rlimm.agents.imm.settings.InductionSettings` or a dict with some of its keys
        (``method``, ``k``, ``estimator``, ``samples``); ``None``: the defaults.
    :param stats_window_size: episodes averaged in the rollout logs.
    :param tensorboard_log: TensorBoard folder, ``None`` for none.
    :param policy_kwargs: merged over :data:`DEFAULT_POLICY_KWARGS`.
    :param verbose: SB3 verbosity.
    :param seed: random seed.
    :param device: torch device (the CPU is right for these small networks).
    :param _init_setup_model: build the networks now (SB3's ``load`` passes ``False``).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": ActorOnlyPolicy}

    def __init__(
        self,
        policy: str | type[ActorOnlyPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-2,
        n_steps: int = 50,
        gamma: float = 0.9,
        ent_coef: float = 0.0,
        normalize_advantage: bool = False,
        max_grad_norm: float | None = None,
        regularizer: str = "none",
        teacher: Teacher | None = None,
        restriction: Restriction | None = None,
        teacher_coef: TeacherCoef = 0.0,
        induction: InductionSettings | dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "cpu",
        _init_setup_model: bool = True,
    ) -> None:
        self.normalize_advantage = normalize_advantage
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=1.0,
            ent_coef=ent_coef,
            vf_coef=0.0,
            max_grad_norm=max_grad_norm,  # type: ignore[arg-type]
            use_sde=False,
            sde_sample_freq=-1,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs={**DEFAULT_POLICY_KWARGS, **(policy_kwargs or {})},
            verbose=verbose,
            seed=seed,
            device=device,
            supported_action_spaces=(spaces.Discrete, spaces.Box, spaces.MultiDiscrete),
            _init_setup_model=False,
        )
        # The teacher is set before the model, whose buffer and regulariser depend on it.
        self._init_teacher(regularizer, teacher, restriction, teacher_coef, induction)
        if _init_setup_model:
            self._setup_model()

    def train(self) -> None:
        """One gradient step on the whole rollout."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        data = next(self.rollout_buffer.get(batch_size=None))
        actions = data.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.long().flatten()

        distribution = self.policy.get_distribution(data.observations)
        log_prob = distribution.log_prob(actions)
        weights = data.advantages  # discounted reward-to-go (values are zero)
        if self.normalize_advantage and len(weights) > 1:
            weights = (weights - weights.mean()) / (weights.std() + 1e-8)
        pg_loss = -(log_prob * weights).mean()
        entropy = distribution.entropy()
        entropy_loss = -entropy.mean() if entropy is not None else th.zeros(())

        loss = pg_loss + self.ent_coef * entropy_loss
        # rlimm: λ · R, λ = teacher_coef now (a number, a schedule or the trust rule)
        teacher_coef = self.current_teacher_coef()
        loss = loss + teacher_coef * self._teacher_term(data, distribution, teacher_coef)

        self.policy.optimizer.zero_grad()
        loss.backward()
        if self.max_grad_norm is not None:
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()
        self._n_updates += 1

        self.logger.record("train/policy_gradient_loss", pg_loss.item())
        self.logger.record("train/entropy_loss", entropy_loss.item())
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
