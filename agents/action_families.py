"""What the teacher regulariser needs to know about an action distribution, by action space.

The regulariser (:mod:`rlimm.agents.regularizer`) gathers the teacher's distribution and the policy's
at a batch of states, and at batch × k synthetic states for the induced policy; the divergences
themselves live in the core (:mod:`rlimm.losses` for categorical actions, :mod:`rlimm.gaussian_kl`
for diagonal Gaussians). A family says how to read the policy's parameters, how to stack them over
hidden parts, and which divergence to call. The action space decides the family, not the algorithm:

- ``Discrete`` → :class:`CategoricalFamily` (logits; the induced policy is the belief-weighted
  average of probabilities, averaged before the log);
- ``MultiDiscrete`` → :class:`MultiCategoricalFamily` (SB3's independent categorical per dimension,
  logits concatenated; each term is the sum over dimensions of the categorical one, so IMM matches
  the teacher to each dimension's induced marginal — the joint induced policy, a mixture of products,
  is not a product itself and a product teacher can only match its marginals);
- ``Box`` → :class:`GaussianFamily` (mean and log-std of SB3's diagonal Gaussian — for SAC the
  Gaussian *before* the tanh squash, since a KL is unchanged by a bijection of the action; the induced
  policy is a Gaussian mixture, whose KL from the teacher is estimated by ``mc``, ``quadrature`` or
  ``moment``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
    SquashedDiagGaussianDistribution,
)

from rlimm import gaussian_kl
from rlimm.errors import RlimmError
from rlimm.losses import imm_loss, naive_loss

#: Parameters of a batch of action distributions: logits ``(B, A)``, or ``(mean, log_std)`` ``(B, d)``.
Params = Any


class CategoricalFamily:
    """Discrete actions: the parameters are normalised logits."""

    continuous = False

    def of_distribution(self, distribution: Distribution) -> torch.Tensor:
        if not isinstance(distribution, CategoricalDistribution):
            raise RlimmError(
                f"a Discrete action space needs a categorical policy, got {type(distribution).__name__}"
            )
        return distribution.distribution.logits

    def at(self, policy: torch.nn.Module, obs: Any, normalised: bool = True) -> torch.Tensor:
        """The policy's logits at a batch of observations (the actor alone when it can).

        :param normalised: normalise them as torch's ``Categorical`` does (log-probabilities), so
            that both paths give the same numbers; the losses' log-softmax makes that optional.
        """
        from rlimm.agents.policies import DistributionEvaluationMixin

        if isinstance(policy, DistributionEvaluationMixin) and isinstance(
            policy.action_dist, CategoricalDistribution
        ):
            logits = policy.actor_output(obs)
            return logits - logits.logsumexp(dim=-1, keepdim=True) if normalised else logits
        return self.of_distribution(policy.get_distribution(obs))

    @staticmethod
    def teacher(batch: Any, device: torch.device) -> torch.Tensor:
        return batch.teacher_probs.to(device)

    @staticmethod
    def reshape(params: torch.Tensor, b: int, k: int) -> torch.Tensor:
        return params.reshape(b, k, -1)

    @staticmethod
    def own(params: torch.Tensor) -> torch.Tensor:
        return params.unsqueeze(1)

    @staticmethod
    def stack(own: torch.Tensor, others: torch.Tensor | None) -> torch.Tensor:
        return own if others is None else torch.cat([own, others], dim=1)

    @staticmethod
    def naive(teacher: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return naive_loss(teacher, params)

    @staticmethod
    def imm(
        teacher: torch.Tensor,
        components: torch.Tensor,
        weights: torch.Tensor | None,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return imm_loss(teacher, components, weights, rows=rows)


class MultiCategoricalFamily(CategoricalFamily):
    """MultiDiscrete actions: one categorical per dimension, their normalised logits concatenated
    ``(B, Σ nvec)`` (SB3's layout); the teacher's probabilities are concatenated the same way.

    :param nvec: the number of actions of each dimension.
    """

    def __init__(self, nvec: Any) -> None:
        self.nvec = [int(n) for n in nvec]
        ends = np.cumsum(self.nvec).tolist()
        self.slices = [slice(end - n, end) for n, end in zip(self.nvec, ends, strict=True)]

    def _normalised(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [logits[..., s] - logits[..., s].logsumexp(dim=-1, keepdim=True) for s in self.slices], -1
        )

    def of_distribution(self, distribution: Distribution) -> torch.Tensor:
        if not isinstance(distribution, MultiCategoricalDistribution):
            raise RlimmError(
                "a MultiDiscrete action space needs a multi-categorical policy, got "
                f"{type(distribution).__name__}"
            )
        return torch.cat([d.logits for d in distribution.distribution], dim=-1)

    def at(self, policy: torch.nn.Module, obs: Any, normalised: bool = True) -> torch.Tensor:
        from rlimm.agents.policies import DistributionEvaluationMixin

        if isinstance(policy, DistributionEvaluationMixin) and isinstance(
            policy.action_dist, MultiCategoricalDistribution
        ):
            logits = policy.actor_output(obs)
            return self._normalised(logits) if normalised else logits
        return self.of_distribution(policy.get_distribution(obs))

    def naive(self, teacher: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return sum(naive_loss(teacher[:, s], params[:, s]) for s in self.slices)

    def imm(
        self,
        teacher: torch.Tensor,
        components: torch.Tensor,
        weights: torch.Tensor | None,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # Each dimension's induced marginal: the components' logits must be normalised per dimension
        # before they are averaged (imm_loss normalises over its last axis, here one dimension's).
        return sum(imm_loss(teacher[:, s], components[..., s], weights, rows=rows) for s in self.slices)


class GaussianFamily:
    """Box actions: the parameters are the diagonal Gaussian's ``(mean, log_std)``.

    :param estimator: ``mc``, ``quadrature`` or ``moment`` (:mod:`rlimm.gaussian_kl`).
    :param samples: draws from the teacher per state (``mc``).
    :param generator: the ``mc`` draws' own generator (they never move SB3's random stream).
    """

    continuous = True

    def __init__(self, action_dim: int, estimator: str, samples: int, generator: torch.Generator) -> None:
        gaussian_kl.check_estimator(estimator, samples, action_dim)
        self.action_dim, self.estimator, self.samples, self.generator = (
            action_dim,
            estimator,
            samples,
            generator,
        )

    def of_distribution(self, distribution: Distribution) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(distribution, (DiagGaussianDistribution, SquashedDiagGaussianDistribution)):
            raise RlimmError(
                f"a Box action space needs a diagonal Gaussian policy, got {type(distribution).__name__} "
                "(gSDE policies are not supported: use_sde=False)"
            )
        normal = distribution.distribution  # SAC: the Normal before the squash
        return normal.loc, torch.log(normal.scale)

    def at(
        self, policy: torch.nn.Module, obs: Any, normalised: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's Gaussian at a batch of observations (the actor alone)."""
        from rlimm.agents.policies import DistributionEvaluationMixin

        actor = getattr(policy, "actor", None)
        if actor is not None and hasattr(actor, "get_action_dist_params"):  # SAC: pre-squash parameters
            mean, log_std, _ = actor.get_action_dist_params(obs)
            return mean, log_std
        if isinstance(policy, DistributionEvaluationMixin) and isinstance(
            policy.action_dist, DiagGaussianDistribution
        ):
            mean = policy.actor_output(obs)
            return mean, policy.log_std.expand_as(mean)
        return self.of_distribution(policy.get_distribution(obs))

    def teacher(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        values = batch.teacher_gaussian.to(device)
        return values[:, : self.action_dim], values[:, self.action_dim :]

    @staticmethod
    def reshape(
        params: tuple[torch.Tensor, torch.Tensor], b: int, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = params
        return mean.reshape(b, k, -1), log_std.expand_as(mean).reshape(b, k, -1)

    @staticmethod
    def own(params: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = params
        return mean.unsqueeze(1), log_std.expand_as(mean).unsqueeze(1)

    @staticmethod
    def stack(own: tuple, others: tuple | None) -> tuple[torch.Tensor, torch.Tensor]:
        if others is None:
            return own
        return torch.cat([own[0], others[0]], dim=1), torch.cat([own[1], others[1]], dim=1)

    @staticmethod
    def naive(teacher: tuple, params: tuple) -> torch.Tensor:
        return gaussian_kl.naive_gaussian_loss(teacher[0], teacher[1], params[0], params[1])

    def imm(
        self,
        teacher: tuple,
        components: tuple,
        weights: torch.Tensor | None,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        means, log_stds = components
        if rows is not None:
            means, log_stds = means[rows], log_stds[rows]
            weights = None if weights is None else weights[rows]
        return gaussian_kl.imm_gaussian_loss(
            teacher[0],
            teacher[1],
            means,
            log_stds,
            weights,
            estimator=self.estimator,
            samples=self.samples,
            generator=self.generator,
        )


def family_for(
    action_space: spaces.Space | None,
    estimator: str = "mc",
    samples: int = gaussian_kl.DEFAULT_SAMPLES,
    generator: torch.Generator | None = None,
) -> CategoricalFamily | MultiCategoricalFamily | GaussianFamily:
    """The family of an action space (``None``: categorical, as before action spaces were passed)."""
    if action_space is None or isinstance(action_space, spaces.Discrete):
        return CategoricalFamily()
    if isinstance(action_space, spaces.MultiDiscrete) and np.ndim(action_space.nvec) == 1:
        return MultiCategoricalFamily(action_space.nvec)
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        return GaussianFamily(int(action_space.shape[0]), estimator, samples, generator or torch.Generator())
    raise RlimmError(
        "the teacher regulariser supports Discrete, 1-D MultiDiscrete and 1-D Box action spaces, got "
        f"{action_space} (use regularizer 'none')"
    )
