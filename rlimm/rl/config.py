"""The RL experiment's configuration (``rlimm compare``, ``train``, ``teacher``, ``tune``): YAML
validated by pydantic, and the matrix of runs it describes with each run's λ.

Every key is checked when the file is loaded: unknown keys, wrong types and impossible values are
refused with the key's dotted name and what is accepted (:class:`rlimm.errors.ConfigError`). Loading
a file imports neither stable-baselines3 nor torch (of the agents, only the induction settings,
:mod:`rlimm.agents.imm.settings`); ``algo.kwargs`` are checked against the
algorithm's constructor when the agent is built (:func:`rlimm.agents.registry.check_kwargs`), before
anything is written.

λ is resolved here, once per run, where its budget is known (:meth:`CompareConfig.runs`,
:attr:`RunSpec.teacher_coef`); the agent's constructor receives it as ``teacher_coef``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, create_model, field_validator, model_validator

from rlimm.agents.imm.settings import CHECKS as INDUCTION_CHECKS
from rlimm.agents.imm.settings import InductionSettings
from rlimm.coefficients import Linear, check_ratio, paper_grid_ratio, ratio_to_lambda
from rlimm.common.config import Ratio, StrictModel, distinct_entries, load_config
from rlimm.common.device import DeviceName
from rlimm.errors import ConfigError, RlimmError


class EnvConfig(StrictModel):
    """The environment to train on."""

    id: str = "rlimm/ToroidalGrid-v0"
    #: Keyword arguments of the environment's constructor.
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: Time limit of a training episode. REINFORCE on the continuing grid uses ``n_steps`` so each
    #: update sees one fresh trajectory from a uniform start (the paper's protocol).
    episode_steps: int | None = Field(default=None, gt=0)


class RestrictionConfig(StrictModel):
    """What the restricted teacher sees (:func:`rlimm.envs.restriction_for`).

    ``visible``: factor names of a ``Discrete`` observation (the grid's ``x``; Taxi-v4's ``taxi_row,
    taxi_col, passenger``), coordinate indices or names of a 1-D ``Box`` (CartPole-v1's ``theta,
    theta_dot`` or ``2, 3``; ``novel`` for the RL Zoo's no-velocity view), keys of a ``Dict``, or
    ``all`` (nothing hidden: IMM and naive then coincide). ``factors`` names the factors of any
    other ``Discrete`` observation, ``{name: size}``, slowest first.
    """

    visible: list[str | int] = Field(min_length=1)
    factors: dict[str, int] | None = None


class _InductionSection(StrictModel):
    """How the IMM term averages the policy over the hidden part: the keys, defaults, meaning and checks
    of :class:`rlimm.agents.imm.settings.InductionSettings` (``method``: ``exact``, ``knn``, ``marginal``
    or ``auto``; ``k``; Box actions: the KL ``estimator`` and its ``samples``; knn: ``exclude`` steps
    of the state's own episode (``episode``: all of it, null: none); the ``pool`` of rollouts or replay
    minibatches hidden parts are drawn from; exact induction's ``belief``, ``fixed`` or ``on_policy``).
    :data:`InductionConfig` is derived from the settings' fields; each key is checked by the settings'
    own check (:data:`rlimm.agents.imm.settings.CHECKS`)."""

    #: What folders written before ``exclude`` and ``pool`` existed were run with (no exclusion, the
    #: current rollout or minibatch only): a resumed folder is compared with these, not the new defaults.
    LEGACY: ClassVar[dict[str, Any]] = {"exclude": None, "pool": 1}

    @field_validator("*", mode="before")
    @classmethod
    def _checked(cls, value: Any, info: ValidationInfo) -> Any:
        try:
            return INDUCTION_CHECKS[info.field_name](value)
        except RlimmError as err:  # pydantic reports ValueErrors with the key's name
            raise ValueError(str(err)) from None

    def describe(self) -> str:
        """One line naming the settings, for the tables of a report."""
        s = self.settings()
        if s.method == "exact":
            text = f"exact (belief {s.belief})"
        elif s.method == "marginal":
            text = "marginal (hidden parts drawn from the pool)"
        else:
            text = f"{s.method}, k = {s.k}"
        exclude = {None: "none", "episode": "the whole episode"}.get(s.exclude, f"{s.exclude} steps")  # type: ignore[arg-type]
        return (
            f"{text}; own-episode exclusion: {exclude}; pool: {s.pool} rollout(s) or minibatch(es); "
            f"Box actions: KL estimator {s.estimator}, {s.samples} samples"
        )

    def settings(self) -> InductionSettings:
        """These settings as the algorithms' ``induction`` argument."""
        return InductionSettings(**self.model_dump())


#: The config's ``induction:`` section: one key per field of ``InductionSettings``, with its default.
InductionConfig = create_model(
    "InductionConfig",
    __base__=_InductionSection,
    __module__=__name__,
    **{f.name: (Any, f.default) for f in dataclass_fields(InductionSettings)},  # type: ignore[call-overload]
)


class TeacherConfig(StrictModel):
    """The restricted teacher.

    ``fib``, ``qmdp`` and ``induced_optimal`` are solved exactly for the training environment;
    ``trained`` trains an SB3 policy (``algo``, ``timesteps``, ``kwargs``) on the visible part only;
    ``model`` loads a saved SB3 model (``path``) that acts on the visible part;
    ``file`` loads a teacher file (``path``, ``.npz`` or ``.pt``) written by ``rlimm teacher``;
    ``induced_expert`` distils a full-state expert (a saved SB3 model ``path``, or one trained with
    ``algo``, ``timesteps``, ``kwargs``) onto the visible part over ``samples`` states it visits;
    ``paper_alphas`` is the IMM paper's own grid teacher from its α-vectors (``path``, default
    ``$RLIMM_DATA_DIR/imm_reference/grid_fib_alphas.csv``), argmax with the paper's tie-breaking.
    """

    solver: Literal[
        "fib", "qmdp", "induced_optimal", "trained", "model", "file", "induced_expert", "paper_alphas"
    ] = "fib"
    policy: Literal["argmax", "softmax"] = "argmax"
    temperature: float = Field(default=1.0, gt=0)
    discount: float = Field(default=0.9, ge=0, lt=1)
    path: str | None = None
    algo: Literal["ppo", "a2c", "dqn", "sac"] = "ppo"
    timesteps: int = Field(default=20_000, gt=0)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(default=0, ge=0)
    #: ``induced_expert``: environment steps of the expert the visible policy is fitted on.
    samples: int = Field(default=20_000, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> TeacherConfig:
        only = {
            "path": "saved",
            "algo": "trained",
            "timesteps": "trained",
            "kwargs": "trained",
            "seed": "trained",
            "discount": "exact",
            "samples": "induced_expert",
        }
        groups = {
            "exact": ("fib", "qmdp", "induced_optimal"),
            "saved": ("model", "file", "induced_expert", "paper_alphas"),
            "trained": ("trained", "induced_expert"),
        }
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
        if self.solver == "induced_expert" and self.path and {"algo", "timesteps", "kwargs"} & given:
            raise ValueError(
                "solver 'induced_expert' takes a saved expert ('path') or one to train, not both"
            )
        if self.solver in ("file", "paper_alphas") and {"policy", "temperature"} & given:
            raise ValueError("'policy' and 'temperature' do not apply to solver 'file' (its table is fixed)")
        if self.solver == "model" and not self.path:
            raise ValueError("solver 'model' needs 'path', the saved SB3 model acting on the visible part")
        if self.solver == "file" and not self.path:
            raise ValueError("solver 'file' needs 'path', a teacher file written by `rlimm teacher`")
        return self


#: Algorithm arguments that may be schedules of ``progress_remaining`` (SB3's convention): given as
#: anything but a number, they make a run depend on its total budget.
SCHEDULE_KWARGS = ("learning_rate", "clip_range", "clip_range_vf")


#: The keyword arguments of SB3's ``VecNormalize`` that ``algo.normalize`` may set.
NORMALIZE_KEYS = (
    "training",
    "norm_obs",
    "norm_reward",
    "clip_obs",
    "clip_reward",
    "gamma",
    "epsilon",
    "norm_obs_keys",
)


class AlgoConfig(StrictModel):
    """The learning algorithm, its constructor keyword arguments and its training environments.

    ``hyperparams: zoo`` starts from the RL Zoo's tuned settings for the env and algorithm
    (:mod:`rlimm.rl.zoo`): they fill ``kwargs`` (the config's own ``kwargs`` win, key by key), and
    ``n_envs`` and ``normalize`` unless the config gives them. A resolved config holds the merged
    values, so it records what was used.
    """

    name: Literal["reinforce", "ppo", "a2c", "sac"] = "reinforce"
    #: Constructor arguments of the algorithm (checked against it when the agent is built). Learning
    #: rates and clip ranges may be ``lin_<x>`` (x falling linearly to 0), ``policy_kwargs`` a
    #: ``dict(...)`` string, as in the RL Zoo's files.
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: Environments stepped together (SB3's ``make_vec_env``); each update collects ``n_steps`` (SAC:
    #: ``train_freq``) steps from each.
    n_envs: int = Field(default=1, ge=1)
    #: ``dummy``: the envs step in the training process, one after the other; ``subproc``: one process each.
    vec_env: Literal["dummy", "subproc"] = "dummy"
    #: ``default``: the algorithm's defaults and ``kwargs``; ``zoo``: the RL Zoo's settings, then ``kwargs``.
    hyperparams: Literal["default", "zoo"] = "default"
    #: ``VecNormalize`` of the training env: ``false``, ``true`` or its keyword arguments (``norm_obs``,
    #: ``norm_reward``, …). The teacher still sees raw observations.
    normalize: bool | dict[str, Any] = False

    @field_validator("normalize")
    @classmethod
    def _normalize_keys(cls, value: bool | dict[str, Any]) -> bool | dict[str, Any]:
        unknown = sorted(set(value) - set(NORMALIZE_KEYS)) if isinstance(value, dict) else []
        if unknown:
            raise ValueError(
                f"unknown VecNormalize argument {unknown[0]!r}; accepted: {', '.join(NORMALIZE_KEYS)}"
            )
        return value

    def steps_per_update(self) -> int:
        """Environment steps per update, over all ``n_envs`` envs: ``n_steps`` from ``kwargs`` or the
        algorithm's default (SAC: ``train_freq``), times ``n_envs``."""
        from rlimm.agents.registry import steps_per_update

        return steps_per_update(self.name, self.kwargs) * self.n_envs

    def with_zoo(self, env_id: str) -> AlgoConfig:
        """This config with the RL Zoo's settings for ``env_id`` filled in (itself unless
        ``hyperparams`` is ``zoo``)."""
        if self.hyperparams != "zoo":
            return self
        from rlimm.rl.zoo import zoo_hyperparams

        zoo = zoo_hyperparams(self.name, env_id)
        given = self.model_fields_set
        update: dict[str, Any] = {"kwargs": {**zoo.kwargs, **self.kwargs}}
        if "n_envs" not in given and zoo.n_envs is not None:
            update["n_envs"] = zoo.n_envs
        if "normalize" not in given:
            update["normalize"] = zoo.normalize
        return self.model_validate({**self.model_dump(exclude_unset=True), **update})


def _algo_with_zoo(algo: AlgoConfig, info: ValidationInfo) -> AlgoConfig:
    """A config's ``algo`` with the RL Zoo's settings for its ``env`` (validated before ``algo``)."""
    env = info.data.get("env")
    return algo.with_zoo(env.id) if env is not None else algo


class EvalConfig(StrictModel):
    """The evaluation protocol: ``episodes`` episodes from the env's start distribution, each to the
    env's own end (termination or its time limit) or for at most ``steps`` steps when given (the
    grid's protocol: 22; an env without a time limit: 1000, the RL Zoo's cap); a run's score is the
    mean undiscounted episode return. ``every``: also evaluate every N environment steps during
    training, with the same protocol (the learning curve, ``curves.csv``)."""

    episodes: int = Field(default=10, gt=0)
    steps: int | None = Field(default=None, gt=0)
    deterministic: bool = False
    every: int | None = Field(default=None, gt=0)

    def check_every(self, timesteps: int) -> None:
        """Raise unless ``every`` (when set) fits in a run of ``timesteps`` environment steps."""
        if self.every is not None and self.every > timesteps:
            raise ConfigError(
                f"'evaluation.every': {self.every} is larger than the training budget ({timesteps} "
                "environment steps), so no evaluation would happen during training"
            )


#: λ over training: constant, falling linearly to 0 (by ``lambda_until``), or following the trust rule.
LambdaSchedule = Literal["constant", "linear_decay", "trust"]


class TrustConfig(StrictModel):
    """The trust rule of ``lambda_schedule: trust`` (:class:`rlimm.trust.Trust`, whose docstring has
    the maths): λ = the configured λ times a trust weight in [``floor``, 1]."""

    #: The teacher's own score in the units of the learner's training episodes; ``null``: measured by
    #: the runner before training (episodes of the teacher on the training env, sampled actions).
    teacher_score: float | None = None
    #: ``imm``: the score of the policy the teacher is the induced model of (an induced expert's
    #: expert); ``null``: that expert's score recorded with an induced teacher (``induced_expert``,
    #: ``induced_optimal``), else ``teacher_score``.
    source_score: float | None = None
    #: |z| beyond which the pooled signal counts as evidence.
    threshold: float = Field(default=2.0, ge=0)
    #: Fraction of the budget in which persistent evidence takes the weight from 1 to ``floor``.
    fall: float = Field(default=0.1, gt=0)
    #: The signal's memory, a fraction of the budget.
    memory: float = Field(default=0.05, gt=0)
    #: The least trust.
    floor: float = Field(default=0.01, gt=0, le=1)
    #: The learner's last training episodes whose mean return, less its standard error, is tested
    #: against the score.
    episodes: int = Field(default=20, gt=0)


def scheduled_coef(
    lam: float, schedule: str, until: float, trust: TrustConfig, teacher_score: float | None = None
) -> float | Linear | Any:
    """The agent's ``teacher_coef`` for λ = ``lam`` under ``schedule``: λ itself, a :class:`Linear`
    decay to 0 at the fraction ``until`` of the budget, or a new :class:`rlimm.trust.Trust` (whose
    ``teacher_score`` is ``trust.teacher_score``, else ``teacher_score``, the runner's measurement)."""
    if lam <= 0 or schedule == "constant":
        return lam
    if schedule == "linear_decay":
        return Linear(lam, 0.0, until)
    from rlimm.trust import Trust

    settings = trust.model_dump()
    score = settings.pop("teacher_score")
    return Trust(lam, teacher_score=score if score is not None else teacher_score, **settings)


class LinearRatioRule(StrictModel):
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


class TuneConfig(StrictModel):
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

    _zoo = field_validator("algo")(_algo_with_zoo)

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

    def lambda_ratios(self) -> list[float] | None:
        """The ratios to sweep, or ``None`` for a data-size rule."""
        if self.lambda_ratio == "paper_grid" or isinstance(self.lambda_ratio, LinearRatioRule):
            return None
        return list(self.lambda_ratio) if isinstance(self.lambda_ratio, list) else [self.lambda_ratio]

    def updates_and_timesteps(self, budget: int) -> tuple[int, int]:
        """Gradient updates and environment steps of a run with ``budget`` (in ``budget_unit``)."""
        per = self.algo.steps_per_update()
        if self.budget_unit == "updates":
            return budget, budget * per
        return max(budget // per, 1), budget

    def lambda_ratio_for(self, method: str, budget: int, ratio: float | None = None) -> float:
        """The λ-ratio of a run: 0 for ``none``, else ``ratio`` (one point of a sweep) or the config's
        data-size rule at ``budget``."""
        if method == "none":
            return 0.0
        if ratio is not None:
            return check_ratio(ratio)
        if isinstance(self.lambda_ratio, LinearRatioRule):
            return self.lambda_ratio.ratio(budget)
        if self.lambda_ratio == "paper_grid":
            return paper_grid_ratio(self.updates_and_timesteps(budget)[0])
        raise RlimmError("'lambda_ratio': a sweep needs a ratio per run")

    def teacher_coef(self, spec: RunSpec, teacher_score: float | None = None) -> Any:
        """The agent's ``teacher_coef`` for ``spec``: its λ, a schedule falling from it to 0, or the
        trust rule from it (:func:`scheduled_coef`; ``teacher_score``: the runner's measurement)."""
        return scheduled_coef(
            spec.teacher_coef, self.lambda_schedule, self.lambda_until, self.trust, teacher_score
        )

    def runs(self) -> list[RunSpec]:
        """Every run of the comparison, with its λ; ``none`` runs once per (budget, seed) whatever
        the λ sweep."""
        specs: dict[tuple, RunSpec] = {}
        for budget in self.budgets:
            for method in self.methods:
                for ratio in self.lambda_ratios() or [None]:
                    r = self.lambda_ratio_for(method, budget, ratio)
                    for seed in range(self.seed_offset, self.seed_offset + self.seeds):
                        spec = RunSpec(method, budget, seed, r)
                        specs.setdefault(spec.key(), spec)
        return list(specs.values())

    def budget_independent(self) -> bool:
        """Whether nothing in a run depends on its budget, so that one run for the longest budget
        gives every shorter one at its checkpoints: λ constant (a number or a sweep, not a rule in
        the budget) and not decayed, no algorithm schedule (a value of ``progress_remaining``, i.e.
        of the total) and no gSDE (it draws noise before a checkpoint could be evaluated)."""
        if self.lambda_ratios() is None or self.lambda_schedule != "constant":
            return False
        kwargs = self.algo.kwargs
        if kwargs.get("use_sde"):
            return False
        return all(kwargs.get(key) is None or isinstance(kwargs[key], int | float) for key in SCHEDULE_KWARGS)

    def run_groups(self, specs: list[RunSpec]) -> list[list[RunSpec]]:
        """``specs`` in groups that one training run gives: runs differing only in their budget, when
        the config is :meth:`budget_independent`, else one run per group. Each group is sorted by
        budget; groups come longest first (better balance across workers)."""
        groups: dict[tuple, list[RunSpec]] = {}
        reuse = self.budget_independent()
        for spec in specs:
            key = (spec.method, spec.seed, f"{spec.lambda_ratio:.4f}") + (() if reuse else (spec.budget,))
            groups.setdefault(key, []).append(spec)
        ordered = [sorted(g, key=lambda s: s.budget) for g in groups.values()]
        return sorted(ordered, key=lambda g: -g[-1].budget)


@dataclass(frozen=True)
class RunSpec:
    """One cell of the comparison matrix: a method trained for a budget from a seed, at a λ-ratio."""

    method: str
    budget: int
    seed: int
    lambda_ratio: float

    @property
    def teacher_coef(self) -> float:
        """λ of this run, as the agent's ``teacher_coef``."""
        return ratio_to_lambda(self.lambda_ratio)

    def key(self) -> tuple[str, int, int, str]:
        return (self.method, self.budget, self.seed, f"{self.lambda_ratio:.4f}")


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

    _zoo = field_validator("algo")(_algo_with_zoo)

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
