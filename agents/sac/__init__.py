"""SAC with a restricted-teacher regulariser on the actor: the algorithm and its policies."""

from rlimm.agents.sac.policies import ParamsReturningSACPolicy
from rlimm.agents.sac.sac import SAC

__all__ = ["SAC", "ParamsReturningSACPolicy"]
