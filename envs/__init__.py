"""Environments and restrictions for rlimm (installed as ``rlimm.envs``).

Importing this package registers ``rlimm/ToroidalGrid-v0`` with gymnasium.
"""

from gymnasium.envs.registration import register, registry

from rlimm.envs.restrictions import (
    CoordinateRestriction,
    FactoredRestriction,
    IdentityRestriction,
    KeyRestriction,
    PartitionRestriction,
    Restriction,
    restriction_for,
)
from rlimm.envs.toroidal_grid import ACTION_NAMES, ToroidalGridEnv
from rlimm.envs.wrappers import VisibleObservation

GRID_ID = "rlimm/ToroidalGrid-v0"

if GRID_ID not in registry:
    register(id=GRID_ID, entry_point="rlimm.envs.toroidal_grid:ToroidalGridEnv")

__all__ = [
    "ACTION_NAMES",
    "GRID_ID",
    "CoordinateRestriction",
    "FactoredRestriction",
    "IdentityRestriction",
    "KeyRestriction",
    "PartitionRestriction",
    "Restriction",
    "ToroidalGridEnv",
    "VisibleObservation",
    "restriction_for",
]
