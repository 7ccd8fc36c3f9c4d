"""What the teacher regulariser needs to know about an action distribution, by action space.

The regulariser (:mod:`rlimm.agents.imm.regularizer`) gathers the teacher's distribution and the policy's
at a batch of states, and at batch × k synthetic states for the induced policy; the divergences
themselves live in the core (:mod:`rlimm.losses` for categorical actions, :mod:`rlimm.gaussian_kl`
for diagonal Gaussians). A family says how to read the policy's parameters from its torch
distribution, how to read the teacher's parameters (one ``teacher_params`` row per state: probabilities,
or mean ‖ log-std), how to stack them over hidden parts, and which divergence to call. The action space
decides the family, not the algorithm:

- ``Discrete`` → :class:`CategoricalFamily` (logits; the induced policy is the belief-weighted
  average of probabilities, averaged before the log);
- ``MultiDiscrete`` → :class:`MultiCategoricalFamily` (independent categoricals per dimension,
  logits concatenated; each term is the sum over dimensions of the categorical one, so IMM matches
  the teacher to each dimension's induced marginal — the joint induced policy, a mixture of products,
  is not a product itself and a product teacher can only match its marginals);
- ``Box`` → :class:`GaussianFamily` (mean and log-std of a diagonal Gaussian — for SAC the Gaussian
  *before* the tanh squash, since a KL is unchanged by a bijection of the action; the induced policy is
  a Gaussian mixture, whose KL from the teacher is estimated by ``mc``, ``quadrature`` or ``moment``).

Nothing here imports stable-baselines3: the policy's parameters arrive as torch distributions (what an
SB3 ``Distribution`` holds in ``.distribution``) or as tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch.distributions import Categorical, Normal

from rlimm import gaussian_kl
from rlimm.agents.imm.settings import DEFAULT_INDUCTION, InductionSettings
from rlimm.errors import RlimmError
from rlimm.induction import induced_log_probs
from rlimm.losses import imm_loss, naive_loss

#: Parameters of a batch of action distributions: logits ``(B, A)``, or ``(mean, log_std)`` ``(B, d)``.
Params = Any


class CategoricalFamily:
    """Discrete actions: the parameters are normalised logits."""

    continuous = False

    def params_of(self, distribution: Any) -> torch.Tensor:
        """The normalised logits of a torch ``Categorical``."""
        if not isinstance(distribution, Categorical):
            raise RlimmError(
                f"a Discrete action space needs a categorical policy, got {type(distribution).__name__}"
            )
        return distribution.logits

    def normalise(self, logits: torch.Tensor) -> torch.Tensor:
        """Raw logits normalised as torch's ``Categorical`` does (log-probabilities)."""
        return logits - logits.logsumexp(dim=-1, keepdim=True)

    @staticmethod
    def teacher(teacher_params: torch.Tensor) -> torch.Tensor:
        """The teacher's probabilities (its ``teacher_params`` as they are)."""
        return teacher_params

    @staticmethod
    def as_teacher(params: torch.Tensor) -> torch.Tensor:
        """The policy's own distribution in the teacher's form (probabilities), without gradient."""
        return params.detach().exp()

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

    # --- log-probabilities of actions (the trust signal, :mod:`rlimm.trust`) ---

    @staticmethod
    def teacher_log_prob(teacher: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(B,)`` log P̄(a|x̄) of the batch's actions (``-inf`` where the teacher gives 0)."""
        a = actions.long().reshape(-1, 1)
        return torch.log(teacher.gather(1, a).squeeze(1))

    @staticmethod
    def induced_log_prob(
        components: torch.Tensor,
        weights: torch.Tensor | None,
        rows: torch.Tensor | None,
        actions: torch.Tensor,
    ) -> torch.Tensor:
        """``(B,)`` log Q̄(a|x̄) of the batch's actions under the induced policy of ``components``."""
        log_induced = induced_log_probs(components, weights)
        if rows is not None:
            log_induced = log_induced[rows]
        return log_induced.gather(1, actions.long().reshape(-1, 1)).squeeze(1)


class MultiCategoricalFamily(CategoricalFamily):
    """MultiDiscrete actions: one categorical per dimension, their normalised logits concatenated
    ``(B, Σ nvec)`` (SB3's layout); the teacher's probabilities are concatenated the same way.

    :param nvec: the number of actions of each dimension.
    """

    def __init__(self, nvec: Any) -> None:
        self.nvec = [int(n) for n in nvec]
        ends = np.cumsum(self.nvec).tolist()
        self.slices = [slice(end - n, end) for n, end in zip(self.nvec, ends, strict=True)]

    def normalise(self, logits: torch.Tensor) -> torch.Tensor:
        """Raw logits normalised per dimension."""
        return torch.cat(
            [logits[..., s] - logits[..., s].logsumexp(dim=-1, keepdim=True) for s in self.slices], -1
        )

    def params_of(self, distribution: Any) -> torch.Tensor:
        """The concatenated normalised logits of a list of torch ``Categorical`` (one per dimension)."""
        if not isinstance(distribution, list) or not all(isinstance(d, Categorical) for d in distribution):
            raise RlimmError(
                "a MultiDiscrete action space needs a multi-categorical policy, got "
                f"{type(distribution).__name__}"
            )
        return torch.cat([d.logits for d in distribution], dim=-1)

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

    def teacher_log_prob(self, teacher: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(B,)`` log P̄(a|x̄): the sum over dimensions of each one's log-probability."""
        a = actions.long().reshape(actions.shape[0], -1)
        return sum(
            CategoricalFamily.teacher_log_prob(teacher[:, s], a[:, i]) for i, s in enumerate(self.slices)
        )

    def induced_log_prob(
        self,
        components: torch.Tensor,
        weights: torch.Tensor | None,
        rows: torch.Tensor | None,
        actions: torch.Tensor,
    ) -> torch.Tensor:
        """``(B,)`` the sum over dimensions of the log-probability under each one's induced marginal
        (the product of the marginals that IMM's term matches)."""
        a = actions.long().reshape(actions.shape[0], -1)
        return sum(
            CategoricalFamily.induced_log_prob(components[..., s], weights, rows, a[:, i])
            for i, s in enumerate(self.slices)
        )


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

    def params_of(self, distribution: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_std)`` of a torch ``Normal`` (SAC: the Normal before the squash)."""
        if not isinstance(distribution, Normal):
            raise RlimmError(
                f"a Box action space needs a diagonal Gaussian policy, got {type(distribution).__name__}"
            )
        return distribution.loc, torch.log(distribution.scale)

    @staticmethod
    def normalise(params: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """A Gaussian's parameters need no normalisation."""
        return params

    def teacher(self, teacher_params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's ``(mean, log_std)`` from its ``teacher_params`` (mean ‖ log-std)."""
        return teacher_params[:, : self.action_dim], teacher_params[:, self.action_dim :]

    @staticmethod
    def as_teacher(params: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's own ``(mean, log_std)`` in the teacher's form, without gradient."""
        mean, log_std = params
        return mean.detach(), log_std.detach().expand_as(mean)

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
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """KL(teacher ‖ mixture of the components), estimated with the family's estimator; ``mc`` draws
        with ``generator`` (default: the family's own)."""
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
            generator=self.generator if generator is None else generator,
        )

    @staticmethod
    def teacher_log_prob(teacher: tuple, actions: torch.Tensor) -> torch.Tensor:
        """``(B,)`` log-density of the batch's actions under the teacher's Gaussian."""
        mean, log_std = teacher
        return Normal(mean, log_std.exp()).log_prob(actions.reshape(mean.shape)).sum(dim=-1)

    @staticmethod
    def induced_log_prob(
        components: tuple, weights: torch.Tensor | None, rows: torch.Tensor | None, actions: torch.Tensor
    ) -> torch.Tensor:
        """``(B,)`` log-density of the batch's actions under the induced Gaussian mixture."""
        means, log_stds = components
        if rows is not None:
            means, log_stds = means[rows], log_stds[rows]
            weights = None if weights is None else weights[rows]
        a = actions.reshape(means.shape[0], 1, means.shape[2])
        return gaussian_kl.mixture_log_prob(a, means, log_stds, weights)[:, 0]

    @staticmethod
    def sample_teacher(teacher: tuple, generator: torch.Generator) -> torch.Tensor:
        """``(B, d)`` one action per state from the teacher's Gaussian."""
        mean, log_std = teacher
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + log_std.exp() * noise

    @staticmethod
    def sample_induced(
        components: tuple, weights: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        """``(B, d)`` one action per state from the induced mixture: a component by its weight, then
        an action from its Gaussian."""
        means, log_stds = components
        b, k, _ = means.shape
        log_stds = log_stds.expand_as(means)
        if weights is None:
            weights = torch.full((b, k), 1.0 / k, device=means.device)
        j = torch.multinomial(weights, 1, generator=generator).squeeze(1)
        rows = torch.arange(b, device=means.device)
        mean, log_std = means[rows, j], log_stds[rows, j]
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + log_std.exp() * noise


def family_for(
    action_space: spaces.Space | None,
    induction: InductionSettings = DEFAULT_INDUCTION,
    generator: torch.Generator | None = None,
) -> CategoricalFamily | MultiCategoricalFamily | GaussianFamily:
    """The family of an action space (``None``: categorical); Box actions estimate the KL with
    ``induction.estimator`` and ``induction.samples``, drawing with ``generator``."""
    if action_space is None or isinstance(action_space, spaces.Discrete):
        return CategoricalFamily()
    if isinstance(action_space, spaces.MultiDiscrete) and np.ndim(action_space.nvec) == 1:
        return MultiCategoricalFamily(action_space.nvec)
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        return GaussianFamily(
            int(action_space.shape[0]), induction.estimator, induction.samples, generator or torch.Generator()
        )
    raise RlimmError(
        "the teacher regulariser supports Discrete, 1-D MultiDiscrete and 1-D Box action spaces, got "
        f"{action_space} (use regularizer 'none')"
    )


#: Any of the families.
Family = CategoricalFamily | MultiCategoricalFamily | GaussianFamily
