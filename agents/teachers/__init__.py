"""Restricted teachers: a distribution over actions for each visible part of an observation.

Every teacher is a :class:`Teacher` (:mod:`.base`) whose ``family`` (:class:`ActionFamily`) says what its
``params`` are. The modules:

- :mod:`.base`: the protocol, the action families and the shared helpers;
- :mod:`.tabular`: :class:`TabularTeacher` (one distribution per visible context), α-vector teachers;
- :mod:`.solvers`, :mod:`.exact`: exact POMDP/MDP solvers and the exact teachers built with them;
- :mod:`.policy`: :class:`PolicyTeacher`, an SB3 policy or a network on the visible part, any family;
- :mod:`.actions`: what a policy teacher's actions are (categorical or Gaussian), decided once;
- :mod:`.networks`, :mod:`.expert`: the visible-part network and the induced expert fitted with it;
- :mod:`.training`: teachers and experts trained with plain SB3 algorithms;
- :mod:`.files`: teacher files (save and load).
"""

from rlimm.agents.teachers.actions import policy_utilities, to_action
from rlimm.agents.teachers.base import ActionFamily, Teacher, action_sizes
from rlimm.agents.teachers.exact import SOLVERS, optimal_policy, pomdp_teacher, tabular_model
from rlimm.agents.teachers.expert import categorical_kl, fit_induced_expert
from rlimm.agents.teachers.files import (
    FILE_FORMAT,
    FILE_VERSION,
    TeacherFile,
    load_gaussian_teacher,
    load_teacher,
    save_gaussian_teacher,
    save_teacher,
    suffix_for,
)
from rlimm.agents.teachers.networks import VisibleMLP
from rlimm.agents.teachers.policy import PolicyTeacher, frozen_copy, gaussian_policy_teacher, policy_teacher
from rlimm.agents.teachers.solvers import TabularPOMDP, fib, q_value_iteration, qmdp
from rlimm.agents.teachers.tabular import (
    POLICY_MODES,
    TabularTeacher,
    alpha_teacher,
    paper_alpha_teacher,
    utilities_to_policy,
)
from rlimm.agents.teachers.training import (
    DISCRETE_ALGOS,
    GAUSSIAN_ALGOS,
    load_model,
    train_full_expert,
    train_restricted_gaussian_teacher,
    train_restricted_teacher,
)

__all__ = [
    "DISCRETE_ALGOS",
    "FILE_FORMAT",
    "FILE_VERSION",
    "GAUSSIAN_ALGOS",
    "POLICY_MODES",
    "SOLVERS",
    "ActionFamily",
    "PolicyTeacher",
    "TabularPOMDP",
    "TabularTeacher",
    "Teacher",
    "TeacherFile",
    "VisibleMLP",
    "action_sizes",
    "alpha_teacher",
    "categorical_kl",
    "fib",
    "fit_induced_expert",
    "frozen_copy",
    "gaussian_policy_teacher",
    "load_gaussian_teacher",
    "load_model",
    "load_teacher",
    "optimal_policy",
    "paper_alpha_teacher",
    "policy_teacher",
    "policy_utilities",
    "pomdp_teacher",
    "q_value_iteration",
    "qmdp",
    "save_gaussian_teacher",
    "save_teacher",
    "suffix_for",
    "tabular_model",
    "to_action",
    "train_full_expert",
    "train_restricted_gaussian_teacher",
    "train_restricted_teacher",
    "utilities_to_policy",
]
