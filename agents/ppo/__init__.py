"""PPO with a restricted-teacher regulariser (its policies are the shared
:mod:`rlimm.agents.common.policies`)."""

from rlimm.agents.ppo.ppo import PPO

__all__ = ["PPO"]
