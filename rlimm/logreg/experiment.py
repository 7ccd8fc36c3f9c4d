"""The logistic-regression experiment: dataset sizes × runs, the λ sweep, the teacher-quality variants.

Three *parts* share one setting (true model, exact teacher, test set) and one stream of training data
per run (run r's training set of size n is the first n examples of its stream, so the parts and the
sizes are paired run by run):

- ``size``:    every method at the configured λ, at every dataset size;
- ``sweep``:   the regularised methods at every λ ratio of the sweep, at a few sizes;
- ``teacher``: the regularised methods with teachers estimated from restricted samples of a few sizes
  (one teacher per run, the same for every dataset size), next to the exact teacher.

All training happens in *jobs*, one per (size, objective, λ, teacher): a job trains all runs (and, in
the sweep, all λ at once) as one batched tensor problem. A table of *population* minimisers (unlimited
data, by quadrature) shows where each method ends up as n → ∞.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from rlimm.coefficients import ratio_to_lambda
from rlimm.logreg.config import LogregConfig
from rlimm.logreg.data import TrueModel, bayes_accuracy, expected_accuracy, sample_features
from rlimm.logreg.population import population_minimiser
from rlimm.logreg.restricted import ExactTeacher, Teacher, fit_logistic_teacher
from rlimm.logreg.train import OBJECTIVE, predict_positive, train

COLUMNS = ["part", "n", "run", "method", "lambda_ratio", "teacher", "accuracy"]
#: ``teacher`` column value of the exact (quadrature) restricted model; other values are the size of
#: the restricted sample the teacher was fitted to.
EXACT = 0
#: ``method`` value of rows that evaluate a teacher alone (predict 1 when P̄(y=1|x1) > 1/2).
RESTRICTED = "restricted"


@dataclass(frozen=True)
class Row:
    """One evaluated configuration (``runs`` lines of ``results.csv``)."""

    part: str
    n: int
    method: str
    ratio: float
    teacher: int = EXACT


@dataclass(frozen=True)
class Job:
    """One training problem, batched over runs: the baseline ignores λ and the teacher."""

    n: int
    objective: str
    ratio: float
    teacher: int

    @classmethod
    def of(cls, row: Row) -> Job:
        objective = OBJECTIVE[row.method]
        if objective == "baseline":
            return cls(row.n, "baseline", 0.0, EXACT)
        return cls(row.n, objective, row.ratio, row.teacher)


@dataclass
class Setting:
    """What every run shares: the true model, the exact teacher, and the test set."""

    model: TrueModel
    exact: ExactTeacher
    x_test: torch.Tensor  # (T, 3) float32
    p_test: torch.Tensor  # (T,) float64: true P(y=1|x)
    bayes_accuracy: float
    restricted_accuracy: float  # of the exact teacher used alone as a classifier


@dataclass
class Outcome:
    results: pd.DataFrame
    population: pd.DataFrame
    setting: Setting
    seconds: dict[str, float] = field(default_factory=dict)


def plan(config: LogregConfig) -> list[Row]:
    """Every evaluated configuration, in order."""
    r = config.lambda_ratio
    rows = [Row("size", n, m, 0.0 if m == "baseline" else r) for n in config.sizes for m in config.methods]
    regularised = [m for m in config.methods if m != "baseline"]
    if config.sweep:
        for n in config.sweep.sizes:
            rows.append(Row("sweep", n, "baseline", 0.0))
            rows += [Row("sweep", n, m, ratio) for ratio in config.sweep.lambda_ratios for m in regularised]
    if config.teacher_quality:
        samples = [*config.teacher_quality.restricted_samples, EXACT]
        # The teachers alone, as classifiers of x1 (they see no training set: n = 0).
        rows += [Row("teacher", 0, RESTRICTED, 0.0, s) for s in samples]
        for n in config.teacher_quality.sizes:
            rows.append(Row("teacher", n, "baseline", 0.0))
            rows += [Row("teacher", n, m, r, s) for s in samples for m in regularised]
    return rows


def jobs(rows: list[Row]) -> list[Job]:
    """The distinct training problems behind ``rows``, in first-use order."""
    return list(dict.fromkeys(Job.of(row) for row in rows if row.method != RESTRICTED))


def build_setting(config: LogregConfig) -> Setting:
    """The true model, its exact restricted model and the test set (from ``[seed, 0]``)."""
    model = TrueModel(tuple(config.model.weights), config.model.bias)
    exact = ExactTeacher.build(model, config.quadrature_nodes)
    x = sample_features(np.random.default_rng([config.seed, 0]), (config.test_size,))
    p = model.prob(x)
    p_t = torch.from_numpy(p)
    restricted = expected_accuracy(torch.from_numpy(exact.prob(x[:, 0]) > 0.5), p_t).item()
    return Setting(model, exact, torch.from_numpy(x.astype(np.float32)), p_t, bayes_accuracy(p), restricted)


def training_streams(
    config: LogregConfig, setting: Setting, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each run's stream of ``length`` training examples (from ``[seed, 1]``): features
    ``(runs, length, 3)`` and labels ``(runs, length)``."""
    rng = np.random.default_rng([config.seed, 1])
    x = sample_features(rng, (config.runs, length))
    y = (rng.random((config.runs, length)) < setting.model.prob(x)).astype(np.float32)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)


def make_teacher(config: LogregConfig, setting: Setting, samples: int) -> Teacher:
    """The exact teacher (``samples == EXACT``) or one logistic teacher per run fitted to its own
    restricted sample of ``samples`` examples (from ``[seed, 2, samples]``: the same teacher for a run
    at every dataset size)."""
    if samples == EXACT:
        return setting.exact
    rng = np.random.default_rng([config.seed, 2, samples])
    return fit_logistic_teacher(setting.model, config.runs, samples, rng)


def teacher_at(teacher: Teacher, x1: torch.Tensor) -> torch.Tensor:
    """P̄(y=1|x1) as a float32 tensor broadcast against ``x1``'s run dimension."""
    return torch.from_numpy(np.asarray(teacher.prob(x1.numpy().astype(np.float64)), dtype=np.float32))


def run_experiment(config: LogregConfig, log: Callable[[str], None] | None = None) -> Outcome:
    """Train and evaluate every configuration of ``config``.

    :param config: the validated configuration.
    :param log: called with one line per finished group of jobs (progress), or ``None``.
    """
    say = log or (lambda _msg: None)
    start = time.perf_counter()
    setting = build_setting(config)
    rows = plan(config)
    todo = jobs(rows)
    x_all, y_all = training_streams(config, setting, max(job.n for job in todo))
    teachers: dict[int, Teacher] = {
        row.teacher: make_teacher(config, setting, row.teacher) for row in rows if row.method == RESTRICTED
    }
    thetas: dict[Job, torch.Tensor] = {}
    settings = config.train.settings()

    # One batched problem per (n, objective, teacher): its λ values are stacked along the run axis.
    groups: dict[tuple[int, str, int], list[float]] = {}
    for job in todo:
        groups.setdefault((job.n, job.objective, job.teacher), []).append(job.ratio)
    for (n, objective, samples), ratios in groups.items():
        tick = time.perf_counter()
        if samples not in teachers:
            teachers[samples] = make_teacher(config, setting, samples)
        x, y = x_all[:, :n], y_all[:, :n]
        tp = teacher_at(teachers[samples], x[..., 0])
        k = len(ratios)
        lam = torch.tensor([ratio_to_lambda(r) for r in ratios]).repeat_interleave(config.runs)
        theta = train(x.repeat(k, 1, 1), y.repeat(k, 1), tp.repeat(k, 1), objective, lam, settings)
        for i, ratio in enumerate(ratios):
            thetas[Job(n, objective, ratio, samples)] = theta[i * config.runs : (i + 1) * config.runs]
        what = "exact teacher" if samples == EXACT else f"teacher from {samples} samples"
        say(f"n={n:<5} {objective:<9} {what}, {k} λ: {time.perf_counter() - tick:.1f}s")
    train_seconds = time.perf_counter() - start

    tick = time.perf_counter()
    teacher_test = {s: teacher_at(t, setting.x_test[:, 0]) for s, t in teachers.items()}
    frames = []
    runs = np.arange(config.runs)
    for row in rows:
        if row.method == RESTRICTED:
            decisions = (teacher_test[row.teacher] > 0.5).expand(config.runs, -1)
        else:
            decisions = predict_positive(
                thetas[Job.of(row)], setting.x_test, row.method, row.ratio, teacher_test.get(row.teacher)
            )
        acc = expected_accuracy(decisions, setting.p_test).numpy()
        frames.append(
            pd.DataFrame(
                {
                    "part": row.part,
                    "n": row.n,
                    "run": runs,
                    "method": row.method,
                    "lambda_ratio": row.ratio,
                    "teacher": row.teacher,
                    "accuracy": acc,
                }
            )
        )
    results = pd.concat(frames, ignore_index=True)[COLUMNS]
    eval_seconds = time.perf_counter() - tick

    tick = time.perf_counter()
    population = population_table(config, setting)
    say(f"population minimisers: {time.perf_counter() - tick:.1f}s")
    seconds = {
        "train": train_seconds,
        "evaluate": eval_seconds,
        "population": time.perf_counter() - tick,
        "total": time.perf_counter() - start,
    }
    return Outcome(results, population, setting, seconds)


def population_table(config: LogregConfig, setting: Setting) -> pd.DataFrame:
    """Population minimisers (n → ∞, exact teacher) of each method at the main ratio and every sweep
    ratio, with their test accuracy: where each method converges with unlimited data."""
    ratios = sorted({config.lambda_ratio, *(config.sweep.lambda_ratios if config.sweep else [])})
    exact_test = teacher_at(setting.exact, setting.x_test[:, 0])
    cache: dict[tuple[str, float], np.ndarray] = {}
    records = []
    for method in config.methods:
        for ratio in [0.0] if method == "baseline" else ratios:
            objective = OBJECTIVE[method]
            key = (objective, 0.0 if objective == "baseline" else ratio)
            if key not in cache:
                cache[key] = population_minimiser(setting.model, objective, ratio_to_lambda(key[1]))
            theta = cache[key]
            decisions = predict_positive(
                torch.tensor(theta[None, :], dtype=torch.float32), setting.x_test, method, ratio, exact_test
            )
            acc = expected_accuracy(decisions, setting.p_test).item()
            records.append(
                {
                    "method": method,
                    "lambda_ratio": ratio,
                    "bias": theta[0],
                    "w1": theta[1],
                    "w2": theta[2],
                    "w3": theta[3],
                    "accuracy": acc,
                }
            )
    return pd.DataFrame.from_records(records)
