"""A2C with a restricted-teacher regulariser (its policies are the shared
:mod:`rlimm.agents.common.policies`)."""

from rlimm.agents.a2c.a2c import A2C

__all__ = ["A2C"]
