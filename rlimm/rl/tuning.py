"""λ search per budget with Optuna (``rlimm tune``), and the data-size rule fitted to its optima.

Each budget is one Optuna study (``<name>/<method>/b<budget>``) in one storage: a local SQLite file
by default, or any database URL Optuna accepts, so several machines can work on the same studies.
A trial draws a λ-ratio and scores it by the mean score over the same ``tune.seeds`` seeds (paired
across trials, which makes differences between ratios less noisy). Rerunning continues each study
up to ``tune.trials`` complete trials.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rlimm.agents.teachers import TabularTeacher
from rlimm.common.files import atomic_write_csv, atomic_write_text
from rlimm.errors import RlimmError
from rlimm.rl.config import CompareConfig, LinearRatioRule, RunSpec
from rlimm.rl.matrix import IDENTITY_KEYS, init_worker, preflight, work


@dataclass(frozen=True)
class BudgetBest:
    """The best λ-ratio found at one budget."""

    budget: int
    lambda_ratio: float
    score: float
    trials: int


@dataclass(frozen=True)
class TuneOutcome:
    best: list[BudgetBest]
    rule: LinearRatioRule
    trials_csv: Path
    rule_yaml: Path


def study_name(config: CompareConfig, budget: int) -> str:
    return f"{config.name}/{config.tune.method}/b{budget}"


def fit_rule(best: list[BudgetBest], low: float, high: float) -> LinearRatioRule:
    """Least-squares line ``ratio = intercept + slope · budget`` through the optima (a constant for
    one budget), clipped to the searched range when used."""
    budgets = np.array([b.budget for b in best], dtype=float)
    ratios = np.array([b.lambda_ratio for b in best])
    if len(best) == 1:
        intercept, slope = float(ratios[0]), 0.0
    else:
        slope, intercept = (float(v) for v in np.polyfit(budgets, ratios, 1))
    return LinearRatioRule(intercept=round(intercept, 6), slope=round(slope, 9), low=low, high=high)


@contextmanager
def _runner(jobs: int):
    """A function running a list of (config, spec, tb, teacher) jobs, in ``jobs`` processes."""
    if jobs == 1:
        init_worker()
        yield lambda payload: list(map(work, payload))
        return
    with mp.get_context("spawn").Pool(jobs, initializer=init_worker) as pool:
        yield lambda payload: pool.map(work, payload)


def _identity(config: CompareConfig) -> str:
    # Everything that changes what a trial measures; the number of trials may grow on resume.
    keys = {*IDENTITY_KEYS, "seed_offset"}
    return json.dumps(
        {
            **json.loads(config.model_dump_json(include=keys)),
            "tune": config.tune.model_dump(exclude={"trials"}),
        },
        sort_keys=True,
    )


def _complete(study) -> int:  # noqa: ANN001
    import optuna

    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def _load_study(config: CompareConfig, budget: int, storage: str, sampler_seed: int):  # noqa: ANN202
    import optuna

    name = study_name(config, budget)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
    identity = _identity(config)
    saved = study.user_attrs.get("identity")
    if saved is None:
        study.set_user_attr("identity", identity)
    elif saved != identity:
        raise RlimmError(
            f"study '{name}' in {storage} was made with another setting (env, teacher, algo, evaluation, "
            "seeds or tune section); use another --out or --storage, or rename the config"
        )
    # Seeded by the trials already there: a resumed study draws new ratios instead of repeating
    # the first ones, and a given history always leads to the same next draws.
    seed = sampler_seed + 100_003 * len(study.trials)
    return optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.TPESampler(seed=seed))


def tune(
    config: CompareConfig,
    out: str | Path,
    storage: str | None = None,
    jobs: int = 1,
    progress: bool = True,
) -> TuneOutcome:
    """Run (or continue) the λ search of ``config`` at every budget; write ``trials.csv`` and
    ``tuned.yaml`` into ``out``."""
    import optuna
    import yaml

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t = config.tune
    if jobs < 1:
        raise RlimmError(f"jobs must be at least 1, got {jobs}")
    teacher: TabularTeacher | None = preflight(config.model_copy(update={"methods": [t.method]}))
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RlimmError(f"output folder {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / 'optuna.db').resolve()}"
    seeds = range(config.seed_offset, config.seed_offset + t.seeds)

    studies = [_load_study(config, b, storage, t.sampler_seed + i) for i, b in enumerate(config.budgets)]
    todo = [max(t.trials - _complete(study), 0) for study in studies]
    bar = tqdm(total=sum(todo), desc=f"tune {config.name}", unit="trial", disable=not progress)
    best: list[BudgetBest] = []
    rows: list[dict[str, Any]] = []
    with _runner(jobs) as run_all:
        for budget, study, n_todo in zip(config.budgets, studies, todo, strict=True):

            def objective(trial: optuna.Trial, budget: int = budget) -> float:
                ratio = trial.suggest_float("lambda_ratio", t.low, t.high)
                specs = [RunSpec(t.method, budget, seed, ratio) for seed in seeds]
                scores = [row["score"] for row in run_all([(config, s, None, teacher) for s in specs])]
                trial.set_user_attr("scores", scores)
                return float(np.mean(scores))

            for _ in range(n_todo):
                study.optimize(objective, n_trials=1)
                bar.update()
            complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            best.append(
                BudgetBest(budget, study.best_params["lambda_ratio"], study.best_value, len(complete))
            )
            rows += [
                {
                    "budget": budget,
                    "trial": tr.number,
                    "lambda_ratio": tr.params["lambda_ratio"],
                    "score": tr.value,
                }
                for tr in complete
            ]

    bar.close()
    trials_csv = atomic_write_csv(out / "trials.csv", rows, ["budget", "trial", "lambda_ratio", "score"])
    rule = fit_rule(best, t.low, t.high)
    rule_yaml = out / "tuned.yaml"
    atomic_write_text(
        rule_yaml,
        f"# λ-ratio rule fitted by `rlimm tune` to the best ratio of {t.method} per {config.budget_unit} "
        f"budget;\n# paste into a compare config. Best per budget: "
        + "; ".join(
            f"{b.budget} → {b.lambda_ratio:.3f} (score {b.score:.2f}, {b.trials} trials)" for b in best
        )
        + "\n"
        + yaml.safe_dump({"lambda_ratio": rule.model_dump(mode="json")}, sort_keys=False),
    )
    return TuneOutcome(best, rule, trials_csv, rule_yaml)
