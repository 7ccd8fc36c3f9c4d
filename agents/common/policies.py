"""Actor-critic policies whose ``evaluate_actions`` can also return the action distribution.

The regulariser needs the whole action distribution at the batch's states (its logits for discrete
actions, its parameters for continuous ones). SB3's ``evaluate_actions`` computes that distribution
and drops it; these subclasses return it on request, from the same forward pass, so the teacher term
costs no extra actor pass (as sb3-contrib's maskable policies extend ``evaluate_actions`` with
``action_masks=``). Without ``return_distribution`` they are SB3's policies, number for number.
"""

from __future__ import annotations

import torch as th
from stable_baselines3.common.distributions import DiagGaussianDistribution, Distribution
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    BasePolicy,
    MultiInputActorCriticPolicy,
)
from stable_baselines3.common.type_aliases import PyTorchObs


class DistributionReturningPolicy(ActorCriticPolicy):
    """SB3's ``MlpPolicy`` whose :meth:`evaluate_actions` can also return the action distribution."""

    def evaluate_actions(  # type: ignore[override]
        self,
        obs: PyTorchObs,
        actions: th.Tensor,
        return_distribution: bool = False,
    ) -> (
        tuple[th.Tensor, th.Tensor, th.Tensor | None]
        | tuple[th.Tensor, th.Tensor, th.Tensor | None, Distribution]
    ):
        """Values, log-probabilities of ``actions`` and entropy, as SB3's method; with
        ``return_distribution`` also the action distribution they come from."""
        features = self.extract_features(obs)
        if self.share_features_extractor:
            latent_pi, latent_vf = self.mlp_extractor(features)
        else:
            pi_features, vf_features = features
            latent_pi = self.mlp_extractor.forward_actor(pi_features)
            latent_vf = self.mlp_extractor.forward_critic(vf_features)
        distribution = self._get_action_dist_from_latent(latent_pi)
        log_prob = distribution.log_prob(actions)
        values = self.value_net(latent_vf)
        entropy = distribution.entropy()
        if return_distribution:
            return values, log_prob, entropy, distribution
        return values, log_prob, entropy

    def actor_output(self, obs: PyTorchObs) -> th.Tensor:
        """The action net's output at ``obs`` (logits for discrete actions, the mean for Gaussian
        ones): the actor alone, without building a distribution object. The regulariser evaluates
        the policy at batch × k synthetic states, where that object's construction is a fifth of
        the cost."""
        features = self.extract_features(obs, self.pi_features_extractor)
        return self.action_net(self.mlp_extractor.forward_actor(features))

    def action_params(self, obs: PyTorchObs) -> th.Tensor | tuple[th.Tensor, th.Tensor]:
        """The action distribution's parameters at ``obs`` from :meth:`actor_output`: raw logits
        (categorical and multi-categorical), or ``(mean, log_std)`` broadcast to the mean (Gaussian)."""
        out = self.actor_output(obs)
        if isinstance(self.action_dist, DiagGaussianDistribution):
            return out, self.log_std.expand_as(out)
        return out


class DistributionReturningCnnPolicy(DistributionReturningPolicy, ActorCriticCnnPolicy):
    """SB3's ``CnnPolicy`` with :meth:`evaluate_actions` (``return_distribution=``)."""


class DistributionReturningMultiInputPolicy(DistributionReturningPolicy, MultiInputActorCriticPolicy):
    """SB3's ``MultiInputPolicy`` with :meth:`evaluate_actions` (``return_distribution=``)."""


#: The aliases PPO and A2C accept, as SB3's.
POLICY_ALIASES: dict[str, type[BasePolicy]] = {
    "MlpPolicy": DistributionReturningPolicy,
    "CnnPolicy": DistributionReturningCnnPolicy,
    "MultiInputPolicy": DistributionReturningMultiInputPolicy,
}
