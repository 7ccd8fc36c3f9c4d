"""SB3 algorithms with a restricted-teacher regulariser, and the teachers (installed as
``rlimm.agents``)."""

from rlimm.agents.a2c import A2C
from rlimm.agents.ppo import PPO
from rlimm.agents.reinforce import REINFORCE
from rlimm.agents.teacher_files import TeacherFile, load_teacher, save_teacher
from rlimm.agents.teachers import (
    TabularTeacher,
    alpha_teacher,
    load_model,
    policy_teacher,
    pomdp_teacher,
    train_restricted_teacher,
)

__all__ = [
    "A2C",
    "PPO",
    "REINFORCE",
    "TabularTeacher",
    "TeacherFile",
    "alpha_teacher",
    "load_model",
    "load_teacher",
    "policy_teacher",
    "pomdp_teacher",
    "save_teacher",
    "train_restricted_teacher",
]
