"""REINFORCE with a restricted-teacher regulariser: the algorithm and its policy."""

from rlimm.agents.reinforce.policies import ActorOnlyPolicy
from rlimm.agents.reinforce.reinforce import REINFORCE

__all__ = ["REINFORCE", "ActorOnlyPolicy"]
