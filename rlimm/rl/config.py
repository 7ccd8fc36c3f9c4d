"""The RL experiment's configuration (``rlimm compare``, ``train``, ``teacher``, ``tune``): YAML
validated by pydantic. The sections both configs share (``env``, ``teacher``, ``algo``, …) are in
:mod:`rlimm.rl.config_sections`; the matrix of runs a comparison describes, with each run's λ, is
:mod:`rlimm.rl.matrix`'s (``CompareConfig.runs`` and ``run_groups`` hand over to it).

Every key is checked when the file is loaded: unknown keys, wrong types and impossible values are
refused with the key's dotted name and what is accepted (:class:`rlimm.errors.ConfigError`). Loading
a file imports neither stable-baselines3 nor torch (of the agents, only the induction settings,
:mod:`rlimm.agents.imm.settings`); ``algo.kwargs`` are checked against the
algorithm's constructor when the agent is built (:func:`rlimm.agents.registry.check_kwargs`), before
anything is written.

λ is resolved once per run, where its budget is known (:func:`rlimm.rl.matrix.runs`,
:attr:`~rlimm.rl.matrix.RunSpec.teacher_coef`); the agent's constructor receives it as ``teacher_coef``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rlimm.coefficients import check_ratio, ratio_to_lambda
from rlimm.common.config import Ratio, StrictModel, distinct_entries, load_config
from rlimm.common.device import DeviceName
from rlimm.errors import RlimmError
from rlimm.rl import matrix
from rlimm.rl.config_sections import (
    AlgoConfig,
    EnvConfig,
    EvalConfig,
    InductionConfig,
    LambdaSchedule,
    LinearRatioRule,
    RestrictionConfig,
    TeacherConfig,
    TrustConfig,
    TuneConfig,
    algo_with_zoo,
    scheduled_coef,
)
from rlimm.rl.matrix import RunSpec


class CompareConfig(StrictModel):
    """A comparison: every (method, budget, seed[, λ-ratio]) is one run."""

    name: str
    env: EnvConfig = Field(default_factory=EnvConfig)
    #: What the teacher sees; needed unless ``methods`` is ``[none]``.
    restriction: RestrictionConfig | None = None
    induction: InductionConfig = Field(default_factory=InductionConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    methods: list[Literal["none", "naive", "imm"]] = Field(min_length=1)
    #: Training budgets, in ``budget_unit``; with ``algo.hyperparams: zoo`` and none given, the RL Zoo's
    #: ``n_timesteps`` (in timesteps).
    budgets: list[int] = Field(default_factory=list)
    #: ``updates`` (gradient updates; the paper's "epochs") or ``timesteps`` (environment steps).
    budget_unit: Literal["updates", "timesteps"] = "updates"
    #: Number of seeds; runs use seeds ``seed_offset … seed_offset + seeds - 1``.
    seeds: int = Field(default=30, gt=0)
    seed_offset: int = Field(default=0, ge=0)
    #: λ as the ratio λ/(1+λ): one number, a list (a sweep), ``paper_grid`` (the paper's rule
    #: r = round(-0.0002·epochs + 0.1891, 1)) or a linear rule in the budget (see ``rlimm tune``).
    lambda_ratio: float | list[float] | Literal["paper_grid"] | LinearRatioRule = "paper_grid"
    #: ``constant``: λ throughout training; ``linear_decay``: λ at the start falling linearly to 0 at
    #: the fraction ``lambda_until`` of the budget (as kickstarting anneals its teacher: a teacher weaker
    #: than the learner stops pulling); ``trust``: λ follows the trust rule (``trust``, rlimm.trust).
    lambda_schedule: LambdaSchedule = "constant"
    #: ``linear_decay``: the fraction of the budget at which λ reaches 0, in (0, 1].
    lambda_until: float = Field(default=1.0, gt=0, le=1)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    evaluation: EvalConfig = Field(default_factory=EvalConfig)
    #: The score that ``rlimm report`` normalises to 1 (a random policy scores 0); ``null``: the env's
    #: ``reward_threshold`` in gymnasium's registry, where it registers one.
    reference_score: float | None = None
    #: The search of ``rlimm tune`` (ignored by ``compare``).
    tune: TuneConfig = Field(default_factory=TuneConfig)

    @model_validator(mode="wrap")
    @classmethod
    def _zoo_budgets(cls, data: Any, handler: Any) -> CompareConfig:
        # The RL Zoo's n_timesteps is the budget when the config gives none.
        config = handler(data)
        if config.budgets:
            return config
        n_timesteps = None
        # An explicit budget_unit: updates asks for budgets in updates, which the Zoo does not give.
        in_timesteps = config.budget_unit == "timesteps" or "budget_unit" not in config.model_fields_set
        if config.algo.hyperparams == "zoo" and in_timesteps:
            from rlimm.rl.zoo import zoo_hyperparams

            n_timesteps = zoo_hyperparams(config.algo.name, config.env.id).n_timesteps
        if n_timesteps is None:
            raise ValueError(
                "'budgets': give at least one training budget (with algo.hyperparams: zoo and "
                "budget_unit: timesteps, the RL Zoo's n_timesteps is the default)"
            )
        return handler(
            {**config.model_dump(exclude_unset=True), "budgets": [n_timesteps], "budget_unit": "timesteps"}
        )

    @model_validator(mode="after")
    def _teacher_needs_restriction(self) -> CompareConfig:
        if self.restriction is None and set(self.methods) - {"none"}:
            raise ValueError(
                "methods naive and imm need restriction.visible: the observation parts the teacher sees"
            )
        return self

    #: Torch device of every run's agent: ``cpu`` (the default: the grid's networks are tiny MLPs, one
    #: run per process), ``auto`` (CUDA when available), ``cuda`` or ``cuda:N``; ``--device`` overrides it.
    device: DeviceName = "cpu"

    _zoo = field_validator("algo")(algo_with_zoo)

    _distinct = field_validator("methods", "budgets")(distinct_entries)

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

    def updates_and_timesteps(self, budget: int) -> tuple[int, int]:
        """Gradient updates and environment steps of a run with ``budget`` (in ``budget_unit``)."""
        per = self.algo.steps_per_update()
        if self.budget_unit == "updates":
            return budget, budget * per
        return max(budget // per, 1), budget

    def teacher_coef(self, spec: RunSpec, teacher_score: float | None = None) -> Any:
        """The agent's ``teacher_coef`` for ``spec``: its λ, a schedule falling from it to 0, or the
        trust rule from it (:func:`scheduled_coef`; ``teacher_score``: the runner's measurement)."""
        return scheduled_coef(
            spec.teacher_coef, self.lambda_schedule, self.lambda_until, self.trust, teacher_score
        )

    def runs(self) -> list[RunSpec]:
        """Every run of the comparison, with its λ (:func:`rlimm.rl.matrix.runs`)."""
        return matrix.runs(self)

    def run_groups(self, specs: list[RunSpec]) -> list[list[RunSpec]]:
        """``specs`` in the groups one training run gives (:func:`rlimm.rl.matrix.run_groups`)."""
        return matrix.run_groups(self, specs)


class TrainConfig(StrictModel):
    """One agent (``rlimm train``): what to train, on what, with which teacher and regulariser, for
    how long. It shares its parts with :class:`CompareConfig`, so a setting tried with ``train`` moves
    to ``compare`` unchanged."""

    env: EnvConfig = Field(default_factory=EnvConfig)
    #: What the teacher sees; needed unless ``regularizer`` is ``none``.
    restriction: RestrictionConfig | None = None
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    algo: AlgoConfig = Field(default_factory=lambda: AlgoConfig(name="ppo"))
    regularizer: Literal["none", "naive", "imm"] = "none"
    #: λ as the ratio λ/(1+λ) in [0, 1).
    lambda_ratio: Ratio = 0.2
    #: λ over training, as in compare configs: ``constant``, ``linear_decay`` (to 0 at the fraction
    #: ``lambda_until`` of the budget) or ``trust`` (the ``trust`` rule).
    lambda_schedule: LambdaSchedule = "constant"
    lambda_until: float = Field(default=1.0, gt=0, le=1)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    n_timesteps: int = Field(default=20_000, gt=0)
    seed: int = Field(default=0, ge=0)
    #: Evaluate every ``eval_freq`` environment steps (0: only at the end).
    eval_freq: int = Field(default=0, ge=0)
    evaluation: EvalConfig = Field(default_factory=EvalConfig)
    #: Save a checkpoint every ``save_freq`` environment steps (0: only the final model).
    save_freq: int = Field(default=0, ge=0)
    induction: InductionConfig = Field(default_factory=InductionConfig)
    #: Torch device of the agent: ``cpu`` (default), ``auto`` (CUDA when available), ``cuda[:N]``.
    device: DeviceName = "cpu"

    @field_validator("algo", mode="before")
    @classmethod
    def _ppo_by_default(cls, value: Any) -> Any:
        # ``rlimm train`` defaults to PPO (as the RL Zoo), also when only algo.kwargs are given.
        if isinstance(value, dict) and "name" not in value:
            return {"name": "ppo", **value}
        return value

    _zoo = field_validator("algo")(algo_with_zoo)

    @model_validator(mode="wrap")
    @classmethod
    def _zoo_budget(cls, data: Any, handler: Any) -> TrainConfig:
        # The RL Zoo's n_timesteps is the budget when the config gives none.
        config = handler(data)
        if config.algo.hyperparams != "zoo" or "n_timesteps" in config.model_fields_set:
            return config
        from rlimm.rl.zoo import zoo_hyperparams

        n_timesteps = zoo_hyperparams(config.algo.name, config.env.id).n_timesteps
        if n_timesteps is None:
            return config
        return handler({**config.model_dump(exclude_unset=True), "n_timesteps": n_timesteps})

    @model_validator(mode="after")
    def _teacher_needs_restriction(self) -> TrainConfig:
        if self.regularizer != "none" and self.restriction is None:
            raise ValueError(
                f"regularizer '{self.regularizer}' needs restriction.visible (or --visible): the "
                "observation fields the teacher sees"
            )
        return self

    @property
    def teacher_coef(self) -> float:
        """λ of the run (0 without a regulariser); the agent's ``teacher_coef`` is
        :meth:`scheduled_teacher_coef`."""
        return ratio_to_lambda(self.lambda_ratio) if self.regularizer != "none" else 0.0

    def scheduled_teacher_coef(self, teacher_score: float | None = None) -> Any:
        """The agent's ``teacher_coef``: λ under ``lambda_schedule`` (:func:`scheduled_coef`)."""
        return scheduled_coef(
            self.teacher_coef, self.lambda_schedule, self.lambda_until, self.trust, teacher_score
        )


def load_compare_config(path: str | Path, overrides: dict[str, Any] | None = None) -> CompareConfig:
    """Read a compare config, with ``overrides`` merged in (``None`` values skipped), and validate it."""
    return load_config(CompareConfig, path, overrides)


def load_train_config(
    path: str | Path | None,
    overrides: dict[str, Any] | None = None,
    replace: dict[str, Any] | None = None,
) -> TrainConfig:
    """Read a train config (the defaults when ``path`` is ``None``), merge ``overrides``, put
    ``replace``'s sections in place of the file's (a teacher given on the command line replaces the
    file's teacher as a whole) and validate it."""
    return load_config(TrainConfig, path, overrides, replace)
