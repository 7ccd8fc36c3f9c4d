"""SAC's policies: SB3's, with :meth:`ParamsReturningSACPolicy.action_params`, the actor's Gaussian
before its tanh squash, as the on-policy policies' ``action_params``
(:class:`~rlimm.agents.common.policies.DistributionReturningPolicy`): the regulariser evaluates the
actor at batch × k synthetic states through it. Without the regulariser they are SB3's policies,
number for number; a saved model holds SB3's classes (:mod:`rlimm.agents.common.saving`)."""

from __future__ import annotations

import torch as th
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.sac import policies as sb3


class ParamsReturningSACPolicy(sb3.SACPolicy):
    """SB3's SAC ``MlpPolicy`` with :meth:`action_params`."""

    def action_params(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """``(mean, log_std)`` of the actor's Gaussian at ``obs``, before the tanh squash."""
        mean, log_std, _ = self.actor.get_action_dist_params(obs)
        return mean, log_std


class ParamsReturningSACCnnPolicy(ParamsReturningSACPolicy, sb3.CnnPolicy):
    """SB3's SAC ``CnnPolicy`` with :meth:`~ParamsReturningSACPolicy.action_params`."""


class ParamsReturningSACMultiInputPolicy(ParamsReturningSACPolicy, sb3.MultiInputPolicy):
    """SB3's SAC ``MultiInputPolicy`` with :meth:`~ParamsReturningSACPolicy.action_params`."""


#: The aliases SAC accepts, as SB3's.
POLICY_ALIASES: dict[str, type[BasePolicy]] = {
    "MlpPolicy": ParamsReturningSACPolicy,
    "CnnPolicy": ParamsReturningSACCnnPolicy,
    "MultiInputPolicy": ParamsReturningSACMultiInputPolicy,
}

#: SB3's own SAC policy classes → rlimm's (a model saved by rlimm, or by SB3, holds SB3's classes).
FROM_STOCK: dict[type[BasePolicy], type[BasePolicy]] = {
    sb3.SACPolicy: ParamsReturningSACPolicy,
    sb3.CnnPolicy: ParamsReturningSACCnnPolicy,
    sb3.MultiInputPolicy: ParamsReturningSACMultiInputPolicy,
}
