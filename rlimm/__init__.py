"""rlimm: Induced Model Matching (IMM) as a practical tool.

The domain-free core lives here (:mod:`rlimm.induction`, :mod:`rlimm.losses`,
:mod:`rlimm.coefficients`); environments and restrictions in :mod:`rlimm.envs`; SB3 algorithms and
teachers in :mod:`rlimm.agents`; the RL experiment (compare, train, teacher, tune) in
:mod:`rlimm.rl`; the scaffold every experiment shares in :mod:`rlimm.common`.
"""

from rlimm.errors import ConfigError, RlimmError

__version__ = "0.1.0"
__all__ = ["ConfigError", "RlimmError", "__version__"]
