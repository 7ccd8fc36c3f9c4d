"""The logistic-regression experiment's configuration: YAML validated by pydantic.

Same rules as every experiment's config (:mod:`rlimm.common.config`): unknown keys, wrong types and
impossible values are refused with the key's dotted name and what is accepted
(:class:`rlimm.errors.ConfigError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from rlimm.coefficients import check_ratio
from rlimm.common.config import Ratio, StrictModel, load_config, parse_mapping
from rlimm.errors import RlimmError
from rlimm.logreg.train import METHODS, TrainSettings

Method = Literal["baseline", "imm", "noising", "interpolation"]


def _distinct_positive(value: list[int]) -> list[int]:
    if not value:
        raise ValueError("give at least one value")
    if len(set(value)) != len(value):
        raise ValueError(f"entries must be distinct, got {value}")
    if any(v <= 0 for v in value):
        raise ValueError(f"entries must be positive, got {value}")
    return sorted(value)


def _distinct_ratios(value: list[float]) -> list[float]:
    if not value:
        raise ValueError("give at least one ratio")
    for v in value:
        try:
            check_ratio(v)
        except RlimmError as err:  # pydantic reports ValueErrors with the key's name
            raise ValueError(str(err)) from None
    if len(set(value)) != len(value):
        raise ValueError(f"entries must be distinct, got {value}")
    return sorted(value)


class ModelConfig(StrictModel):
    """The true model P(y=1|x) = σ(bias + weights·x), x uniform in [-1, 1]³; x1 is the visible feature."""

    weights: tuple[float, float, float] = (4.0, 4.0, 4.0)
    bias: float = 0.0


class TrainConfig(StrictModel):
    """Full-batch SGD with momentum from θ = 0; the learning rate is divided by (1 + λ)."""

    steps: int = Field(default=200, gt=0)
    lr: float = Field(default=1.0, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    #: At most this many training contexts enter the IMM term per step (a sliding window); every
    #: context is always averaged over all n hidden parts of the sample.
    imm_contexts: int = Field(default=32, gt=0)

    def settings(self) -> TrainSettings:
        return TrainSettings(self.steps, self.lr, self.momentum, self.imm_contexts)


class SweepConfig(StrictModel):
    """λ sweep: every regularised method at every ratio, at a few dataset sizes."""

    sizes: list[int]
    lambda_ratios: list[float]

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: list[int]) -> list[int]:
        return _distinct_positive(value)

    @field_validator("lambda_ratios")
    @classmethod
    def _ratios(cls, value: list[float]) -> list[float]:
        return _distinct_ratios(value)


class TeacherQualityConfig(StrictModel):
    """Teachers of lower quality: one-feature logistic fits to restricted samples of these sizes."""

    sizes: list[int]
    restricted_samples: list[int]

    @field_validator("sizes", "restricted_samples")
    @classmethod
    def _sizes(cls, value: list[int]) -> list[int]:
        return _distinct_positive(value)


class LogregConfig(StrictModel):
    """The whole experiment: accuracy against dataset size, the λ sweep, the teacher-quality variants."""

    name: str
    #: Seed of everything random (training sets, test set, restricted samples).
    seed: int = Field(default=0, ge=0)
    #: Independent training sets per dataset size; run r's training set of size n is the first n
    #: examples of its own stream, so sizes are nested within a run.
    runs: int = Field(default=300, ge=2)
    sizes: list[int]
    methods: list[Method] = Field(default_factory=lambda: list(METHODS))
    #: λ of the regularised methods as the ratio λ/(1+λ) (also the mixing weight of interpolation).
    lambda_ratio: Ratio = 0.5
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    #: Test points drawn from the true distribution (labels integrated out exactly).
    test_size: int = Field(default=20000, gt=0)
    #: Gauss–Legendre nodes per hidden dimension for the exact restricted model.
    quadrature_nodes: int = Field(default=64, ge=4)
    sweep: SweepConfig | None = None
    teacher_quality: TeacherQualityConfig | None = None

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: list[int]) -> list[int]:
        return _distinct_positive(value)

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        if "baseline" not in value:
            raise ValueError("must include baseline (every comparison is against it)")
        if len(set(value)) != len(value):
            raise ValueError(f"entries must be distinct, got {value}")
        return [m for m in METHODS if m in value]


def parse_config(data: Any, source: str = "<config>") -> LogregConfig:
    """Validate a mapping as a :class:`LogregConfig`, raising :class:`ConfigError`."""
    return parse_mapping(LogregConfig, data, source)


def load_logreg_config(path: str | Path, overrides: dict[str, Any] | None = None) -> LogregConfig:
    """Read a YAML file, merge ``overrides`` into it (nested mappings key by key, ``None`` values
    skipped), and validate it."""
    return load_config(LogregConfig, path, overrides)
