"""REINFORCE's policy: the actor of :class:`~rlimm.agents.common.policies.DistributionReturningPolicy`
with a value that is identically zero (no critic)."""

from __future__ import annotations

import torch as th
from gymnasium import spaces

from rlimm.agents.common.policies import DistributionReturningPolicy


class ActorOnlyPolicy(DistributionReturningPolicy):
    """An actor-critic policy whose value is identically zero.

    With zero values and ``gae_lambda = 1`` SB3's rollout buffer computes exactly the discounted
    reward-to-go as the advantage, and time-limit bootstrapping adds nothing.
    """

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        if not isinstance(self.action_space, spaces.Discrete):
            distribution = self.get_distribution(obs)
            actions = distribution.get_actions(deterministic=deterministic)
            log_prob = distribution.log_prob(actions)
            actions = actions.reshape((-1, *self.action_space.shape))  # type: ignore[misc]
        else:
            # Called once per environment step: skip building a torch Categorical (its argument
            # validation costs more than the network).
            actions, log_prob = self._sample_discrete(obs, deterministic)
        return actions, th.zeros((actions.shape[0], 1), device=actions.device), log_prob

    def _sample_discrete(self, obs: th.Tensor, deterministic: bool) -> tuple[th.Tensor, th.Tensor]:
        latent = self.mlp_extractor.forward_actor(self.extract_features(obs))
        log_p = th.log_softmax(self.action_net(latent), dim=-1)
        if deterministic:
            actions = log_p.argmax(dim=-1)
        else:
            # Inverse-CDF sampling: one uniform per row, cheaper than torch.multinomial here.
            cdf = log_p.exp().cumsum(dim=-1)
            u = th.rand(cdf.shape[:-1] + (1,), device=cdf.device) * cdf[..., -1:]
            actions = th.searchsorted(cdf, u).squeeze(-1).clamp_max(cdf.shape[-1] - 1)
        return actions, log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    def _predict(self, observation: th.Tensor, deterministic: bool = False) -> th.Tensor:
        if isinstance(self.action_space, spaces.Discrete):
            return self._sample_discrete(observation, deterministic)[0]
        return super()._predict(observation, deterministic)

    def predict_values(self, obs: th.Tensor) -> th.Tensor:
        return th.zeros((obs.shape[0], 1), device=self.device)
