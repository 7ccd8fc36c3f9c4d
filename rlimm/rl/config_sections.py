"""The sections of the RL experiment's configs (``env``, ``restriction``, ``induction``, ``teacher``,
``algo``, ``evaluation``, ``trust``, a ``lambda_ratio`` rule, ``tune``), shared by
:class:`rlimm.rl.config.CompareConfig` and :class:`rlimm.rl.config.TrainConfig`.

Each is a strict pydantic model (unknown keys refused, errors under the dotted key,
:mod:`rlimm.common.config`); loading one imports neither stable-baselines3 nor torch.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, create_model, field_validator, model_validator

from rlimm.agents.imm.settings import CHECKS as INDUCTION_CHECKS
from rlimm.agents.imm.settings import InductionSettings
from rlimm.coefficients import Linear
from rlimm.common.config import StrictModel
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


def algo_with_zoo(algo: AlgoConfig, info: ValidationInfo) -> AlgoConfig:
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
