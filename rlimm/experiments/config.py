"""Experiment configuration files: YAML validated by pydantic.

Every key is checked when the file is loaded: unknown keys, wrong types and impossible values are
refused with the key's dotted name and what is accepted (:class:`rlimm.errors.ConfigError`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rlimm.coefficients import check_ratio, paper_grid_ratio
from rlimm.config_files import load_yaml_config, parse_mapping
from rlimm.errors import RlimmError

ALGOS = ("reinforce",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvConfig(_Strict):
    """The environment to train on."""

    id: str = "rlimm/ToroidalGrid-v0"
    #: Keyword arguments of the environment's constructor.
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: Time limit of a training episode. REINFORCE on the continuing grid uses ``n_steps`` so each
    #: update sees one fresh trajectory from a uniform start (the paper's protocol).
    episode_steps: int | None = Field(default=None, gt=0)


class RestrictionConfig(_Strict):
    """What the restricted teacher sees: the names of the visible observation fields."""

    visible: list[str] = Field(min_length=1)


class TeacherConfig(_Strict):
    """The restricted teacher.

    ``fib``, ``qmdp`` and ``induced_optimal`` are solved exactly for the training environment;
    ``trained`` trains an SB3 policy (``algo``, ``timesteps``, ``kwargs``) on the visible part only;
    ``model`` loads a saved SB3 model (``path``) that acts on the visible part;
    ``file`` loads a teacher file (``path``, ``.npz``) written by ``rlimm teacher``.
    """

    solver: Literal["fib", "qmdp", "induced_optimal", "trained", "model", "file"] = "fib"
    policy: Literal["argmax", "softmax"] = "argmax"
    temperature: float = Field(default=1.0, gt=0)
    discount: float = Field(default=0.9, ge=0, lt=1)
    path: str | None = None
    algo: Literal["ppo", "a2c", "dqn"] = "ppo"
    timesteps: int = Field(default=20_000, gt=0)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> TeacherConfig:
        only = {
            "path": "saved",
            "algo": "trained",
            "timesteps": "trained",
            "kwargs": "trained",
            "seed": "trained",
            "discount": "exact",
        }
        groups = {"exact": ("fib", "qmdp", "induced_optimal"), "saved": ("model", "file")}
        # A key counts as given when set to something else than its default, so that a resolved
        # config (every key written out, as ``rlimm train`` saves it) loads again.
        given = {
            k
            for k in self.model_fields_set
            if getattr(self, k) != type(self).model_fields[k].get_default(call_default_factory=True)
        }
        for key, owner in only.items():
            applies = self.solver in groups.get(owner, (owner,))
            if key in given and not applies:
                raise ValueError(f"'{key}' does not apply to solver '{self.solver}'")
        # A saved teacher's table is fixed: policy/temperature would be silently ignored.
        if self.solver == "file" and {"policy", "temperature"} & given:
            raise ValueError("'policy' and 'temperature' do not apply to solver 'file' (its table is fixed)")
        if self.solver == "model" and not self.path:
            raise ValueError("solver 'model' needs 'path', the saved SB3 model acting on the visible part")
        if self.solver == "file" and not self.path:
            raise ValueError("solver 'file' needs 'path', a teacher file written by `rlimm teacher`")
        return self


ALGO_RESERVED = {"policy", "env", "regularizer", "teacher", "restriction", "teacher_coef", "seed"}


def accepted_algo_kwargs(cls: type) -> list[str]:
    """Constructor arguments of an rlimm algorithm, including those of its SB3 base class."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return sorted(names - ALGO_RESERVED - {"self", "_init_setup_model"})


class AlgoConfig(_Strict):
    """The learning algorithm and its constructor keyword arguments."""

    name: Literal["reinforce", "ppo", "a2c"] = "reinforce"
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_kwargs(self) -> AlgoConfig:
        from rlimm.experiments.runs import algo_class

        accepted = accepted_algo_kwargs(algo_class(self.name))
        for key in self.kwargs:
            if key not in accepted:
                raise ValueError(f"unknown {self.name} argument '{key}'; accepted: {', '.join(accepted)}")
        return self


class EvalConfig(_Strict):
    """The evaluation protocol: ``episodes`` rollouts of ``steps`` steps from the env's start
    distribution; a run's score is the mean undiscounted return."""

    episodes: int = Field(default=10, gt=0)
    steps: int = Field(default=22, gt=0)
    deterministic: bool = False


class LinearRatioRule(_Strict):
    """λ-ratio linear in the budget (the paper's kind of data-size rule, e.g. fitted by ``rlimm tune``):
    ``r = clip(intercept + slope · budget, low, high)``, rounded to ``round_to`` when given."""

    rule: Literal["linear"] = "linear"
    intercept: float
    slope: float
    low: float = Field(default=0.0, ge=0, lt=1)
    high: float = Field(default=0.95, ge=0, lt=1)
    round_to: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LinearRatioRule:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self

    def ratio(self, budget: int) -> float:
        """The λ-ratio at ``budget`` (in the config's budget unit)."""
        r = self.intercept + self.slope * budget
        if self.round_to is not None:
            r = round(r / self.round_to) * self.round_to
        return float(min(max(r, self.low), self.high))


class TuneConfig(_Strict):
    """What ``rlimm tune`` searches: the λ-ratio of ``method`` in ``[low, high]`` at every budget,
    ``trials`` Optuna trials per budget, each scored by the mean over ``seeds`` seeds."""

    method: Literal["naive", "imm"] = "imm"
    trials: int = Field(default=20, gt=0)
    seeds: int = Field(default=5, gt=0)
    low: float = Field(default=0.0, ge=0, lt=1)
    high: float = Field(default=0.9, ge=0, lt=1)
    sampler_seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> TuneConfig:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class CompareConfig(_Strict):
    """A comparison: every (method, budget, seed[, λ-ratio]) is one run."""

    name: str
    env: EnvConfig = Field(default_factory=EnvConfig)
    restriction: RestrictionConfig
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    methods: list[Literal["none", "naive", "imm"]] = Field(min_length=1)
    #: Training budgets, in ``budget_unit``.
    budgets: list[int] = Field(min_length=1)
    #: ``updates`` (gradient updates; the paper's "epochs") or ``timesteps`` (environment steps).
    budget_unit: Literal["updates", "timesteps"] = "updates"
    #: Number of seeds; runs use seeds ``seed_offset … seed_offset + seeds - 1``.
    seeds: int = Field(default=30, gt=0)
    seed_offset: int = Field(default=0, ge=0)
    #: λ as the ratio λ/(1+λ): one number, a list (a sweep), ``paper_grid`` (the paper's rule
    #: r = round(-0.0002·epochs + 0.1891, 1)) or a linear rule in the budget (see ``rlimm tune``).
    lambda_ratio: float | list[float] | Literal["paper_grid"] | LinearRatioRule = "paper_grid"
    evaluation: EvalConfig = Field(default_factory=EvalConfig)
    #: The search of ``rlimm tune`` (ignored by ``compare``).
    tune: TuneConfig = Field(default_factory=TuneConfig)

    @field_validator("methods", "budgets")
    @classmethod
    def _distinct(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError(f"entries must be distinct, got {value}")
        return value

    @field_validator("budgets")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(b <= 0 for b in value):
            raise ValueError(f"budgets must be positive, got {value}")
        return value

    @field_validator("lambda_ratio")
    @classmethod
    def _ratios(cls, value: Any) -> Any:
        values = value if isinstance(value, list) else [value] if isinstance(value, float | int) else []
        for v in values:
            try:
                check_ratio(v)
            except RlimmError as err:
                raise ValueError(str(err)) from None
        if isinstance(value, list) and not value:
            raise ValueError("give at least one ratio")
        return value

    def lambda_ratios(self) -> list[float] | None:
        """The ratios to sweep, or ``None`` for a data-size rule (see :meth:`ratio_at`)."""
        if self.lambda_ratio == "paper_grid" or isinstance(self.lambda_ratio, LinearRatioRule):
            return None
        return list(self.lambda_ratio) if isinstance(self.lambda_ratio, list) else [self.lambda_ratio]

    def ratio_at(self, budget: int, updates: int) -> float:
        """The rule's λ-ratio at ``budget`` (``updates`` gradient updates)."""
        if isinstance(self.lambda_ratio, LinearRatioRule):
            return self.lambda_ratio.ratio(budget)
        if self.lambda_ratio == "paper_grid":
            return paper_grid_ratio(updates)
        raise RlimmError("lambda_ratio is not a rule")


def parse_config(data: Any, source: str = "<config>") -> CompareConfig:
    """Validate a mapping as a :class:`CompareConfig`, raising :class:`ConfigError`."""
    return parse_mapping(CompareConfig, data, source)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> CompareConfig:
    """Read, merge top-level ``overrides`` into (``None`` values skipped), and validate a YAML file."""
    return load_yaml_config(CompareConfig, path, overrides)
