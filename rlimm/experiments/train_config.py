"""The configuration of one training run (``rlimm train``): a YAML file, command-line flags on top.

It shares its parts (env, restriction, teacher, algo, evaluation) with the comparison config, so a
setting tried with ``train`` moves to ``compare`` unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rlimm.config_files import Ratio, merge_nested, parse_mapping, read_yaml
from rlimm.experiments.config import (
    AlgoConfig,
    EnvConfig,
    EvalConfig,
    RestrictionConfig,
    TeacherConfig,
    _Strict,
)


class TrainConfig(_Strict):
    """One agent: what to train, on what, with which teacher and regulariser, for how long."""

    env: EnvConfig = Field(default_factory=EnvConfig)
    #: What the teacher sees; needed unless ``regularizer`` is ``none``.
    restriction: RestrictionConfig | None = None
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    algo: AlgoConfig = Field(default_factory=lambda: AlgoConfig(name="ppo"))
    regularizer: Literal["none", "naive", "imm"] = "none"
    #: λ as the ratio λ/(1+λ) in [0, 1).
    lambda_ratio: Ratio = 0.2
    n_timesteps: int = Field(default=20_000, gt=0)
    seed: int = Field(default=0, ge=0)
    #: Evaluate every ``eval_freq`` environment steps (0: only at the end).
    eval_freq: int = Field(default=0, ge=0)
    evaluation: EvalConfig = Field(default_factory=EvalConfig)
    #: Save a checkpoint every ``save_freq`` environment steps (0: only the final model).
    save_freq: int = Field(default=0, ge=0)

    @field_validator("algo", mode="before")
    @classmethod
    def _ppo_by_default(cls, value: Any) -> Any:
        # ``rlimm train`` defaults to PPO (as the RL Zoo), also when only algo.kwargs are given.
        if isinstance(value, dict) and "name" not in value:
            return {"name": "ppo", **value}
        return value

    @model_validator(mode="after")
    def _teacher_needs_restriction(self) -> TrainConfig:
        if self.regularizer != "none" and self.restriction is None:
            raise ValueError(
                f"regularizer '{self.regularizer}' needs restriction.visible (or --visible): the "
                "observation fields the teacher sees"
            )
        return self


def parse_train_config(data: Any, source: str = "<config>") -> TrainConfig:
    """Validate a mapping as a :class:`TrainConfig`, raising :class:`~rlimm.errors.ConfigError`."""
    return parse_mapping(TrainConfig, data, source)


def load_train_config(
    path: str | Path | None,
    overrides: dict[str, Any] | None = None,
    replace: dict[str, Any] | None = None,
) -> TrainConfig:
    """Read a YAML file (the defaults when ``path`` is ``None``), merge ``overrides`` into it (nested
    mappings key by key, ``None`` values skipped), put ``replace``'s sections in place of the file's
    (a teacher given on the command line replaces the file's teacher as a whole) and validate."""
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<command line>"
    if isinstance(data, dict):
        data = merge_nested(data, overrides or {})
        data.update({k: v for k, v in (replace or {}).items() if v is not None})
    return parse_train_config(data, source)
