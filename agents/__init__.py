"""SB3 algorithms with a restricted-teacher regulariser, and the teachers (installed as
``rlimm.agents``).

Names are imported on first use (PEP 562), so that light modules such as
:mod:`rlimm.agents.registry` can be imported without stable-baselines3 and torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "A2C": "rlimm.agents.a2c",
    "PPO": "rlimm.agents.ppo",
    "REINFORCE": "rlimm.agents.reinforce",
    "SAC": "rlimm.agents.sac",
    "InductionSettings": "rlimm.agents.imm.settings",
    "ActionFamily": "rlimm.agents.teachers",
    "PolicyTeacher": "rlimm.agents.teachers",
    "Teacher": "rlimm.agents.teachers",
    "fit_induced_expert": "rlimm.agents.teachers",
    "gaussian_policy_teacher": "rlimm.agents.teachers",
    "train_restricted_gaussian_teacher": "rlimm.agents.teachers",
    "TeacherRegularizer": "rlimm.agents.imm.regularizer",
    "TeacherFile": "rlimm.agents.teachers",
    "load_teacher": "rlimm.agents.teachers",
    "save_teacher": "rlimm.agents.teachers",
    "TabularTeacher": "rlimm.agents.teachers",
    "alpha_teacher": "rlimm.agents.teachers",
    "load_model": "rlimm.agents.teachers",
    "policy_teacher": "rlimm.agents.teachers",
    "pomdp_teacher": "rlimm.agents.teachers",
    "train_restricted_teacher": "rlimm.agents.teachers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rlimm.agents' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
