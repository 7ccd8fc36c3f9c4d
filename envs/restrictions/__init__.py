"""Restrictions: which part of an observation a restricted model (the teacher) sees.

One module per kind, all implementing :class:`~rlimm.envs.restrictions.base.Restriction`:

- :mod:`~rlimm.envs.restrictions.factored`: ``Discrete`` observations, partitioned into contexts
  (:class:`PartitionRestriction`) or read as named factors (:class:`FactoredRestriction`): exact;
- :mod:`~rlimm.envs.restrictions.coordinates`: a 1-D ``Box``, some coordinates visible (sampled);
- :mod:`~rlimm.envs.restrictions.keys`: a ``Dict``, some keys visible (sampled);
- :mod:`~rlimm.envs.restrictions.identity`: nothing hidden, any space.

:func:`restriction_for` (:mod:`~rlimm.envs.restrictions.names`) builds the right one from an environment
and a list of visible names or indices; the names known per env id are in
:mod:`~rlimm.envs.restrictions.known`, the numpy/torch helpers all kinds share in
:mod:`~rlimm.envs.restrictions.arrays`.
"""

from rlimm.envs.restrictions.base import Restriction
from rlimm.envs.restrictions.coordinates import CoordinateRestriction
from rlimm.envs.restrictions.factored import DEFAULT_MAX_HIDDEN, FactoredRestriction, PartitionRestriction
from rlimm.envs.restrictions.identity import DiscreteIdentityRestriction, IdentityRestriction
from rlimm.envs.restrictions.keys import KeyRestriction
from rlimm.envs.restrictions.names import ALL, restriction_for

__all__ = [
    "ALL",
    "DEFAULT_MAX_HIDDEN",
    "CoordinateRestriction",
    "DiscreteIdentityRestriction",
    "FactoredRestriction",
    "IdentityRestriction",
    "KeyRestriction",
    "PartitionRestriction",
    "Restriction",
    "restriction_for",
]
