"""λ search per budget with Optuna (``rlimm tune``), and the data-size rule fitted to its optima.

Each budget is one Optuna study (``<name>/<method>/b<budget>``) in one storage: a local SQLite file
by default, any database URL Optuna accepts, or an Optuna journal file (``journal:PATH``), so several
processes and machines can work on the same studies. A trial draws a λ-ratio and scores it by the
mean score over the same ``tune.seeds`` seeds (paired across trials, which makes differences between
ratios less noisy).

Every process counts the study's complete trials before it starts another one and stops once there
are ``tune.trials``: rerunning continues each study, and processes sharing a storage share the work.
As each process may start a trial while another finishes the last one, a study may end with up to
one extra complete trial per process.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rlimm.agents.teachers import TabularTeacher
from rlimm.common.device import describe, resolve_device
from rlimm.common.files import atomic_write_csv, atomic_write_text
from rlimm.errors import RlimmError
from rlimm.rl.comparison import IDENTITY_KEYS, init_worker, preflight, work
from rlimm.rl.config import CompareConfig, LinearRatioRule
from rlimm.rl.matrix import RunSpec


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
    """A function running a list of (config, [spec], tb, teacher) jobs, in ``jobs`` processes."""
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


JOURNAL_PREFIX = "journal:"
#: ``host:pid`` of this process, recorded with each trial it runs.
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def _database(url: str):  # noqa: ANN202 - an optuna RDBStorage
    from optuna.storages import RDBStorage
    from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

    for attempt in range(10):
        try:
            return RDBStorage(url)
        except (IntegrityError, OperationalError) as err:
            # Processes that open a new database at once race to create its tables (SQLite: "UNIQUE
            # constraint failed: alembic_version", "table … already exists", "database is locked"):
            # the tables are there by the next attempt. Anything else is the user's to fix.
            text = str(err)
            if not isinstance(err, IntegrityError) and not ("locked" in text or "already exists" in text):
                raise RlimmError(f"--storage {url}: cannot open it: {text.splitlines()[0]}") from None
            time.sleep(0.1 * (attempt + 1))
        except (SQLAlchemyError, ImportError, ValueError) as err:
            raise RlimmError(f"--storage {url}: cannot open it: {str(err).splitlines()[0]}") from None
    return RDBStorage(url)


def open_storage(storage: str):  # noqa: ANN201 - an optuna RDBStorage or JournalStorage
    """What Optuna takes as ``storage``: a database URL (``sqlite:///…``, ``postgresql://…``,
    ``mysql://…``), or ``journal:PATH``, an append-only journal file that several processes (and
    machines, on a shared disk) may write at once."""
    if not storage.startswith(JOURNAL_PREFIX):
        return _database(storage)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(storage.removeprefix(JOURNAL_PREFIX)).expanduser()
    if not path.name:
        raise RlimmError(f"--storage {storage}: give the journal file, e.g. journal:/shared/tune.log")
    if not path.parent.is_dir():
        raise RlimmError(f"--storage {storage}: folder {path.parent} does not exist")
    return JournalStorage(JournalFileBackend(str(path)))


def _load_study(config: CompareConfig, budget: int, storage: Any, label: str):  # noqa: ANN202
    import optuna

    name = study_name(config, budget)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
    identity = _identity(config)
    saved = study.user_attrs.get("identity")
    if saved is None:
        study.set_user_attr("identity", identity)
    elif saved != identity:
        raise RlimmError(
            f"study '{name}' in {label} was made with another setting (env, teacher, algo, evaluation, "
            "seeds or tune section); use another --out or --storage, or rename the config"
        )
    return study


def _run_trial(study, objective: Callable, sampler_seed: int | None) -> None:  # noqa: ANN001
    """Ask the study for a trial, score it, tell the score. With ``sampler_seed``, first give the study
    a TPE sampler seeded by the new trial's number: a resumed study draws new ratios instead of
    repeating the first ones, a given history always leads to the same draws, and processes sharing
    a study (whose trial numbers differ) draw different ones."""
    import optuna

    trial = study.ask()
    if sampler_seed is not None:
        study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + 100_003 * trial.number)
    try:
        value = objective(trial)
    except BaseException:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    study.tell(trial, value)


def tune(
    config: CompareConfig,
    out: str | Path,
    storage: str | None = None,
    jobs: int = 1,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TuneOutcome:
    """Run (or continue) the λ search of ``config`` at every budget; write ``trials.csv`` and
    ``tuned.yaml`` into ``out``.

    :param storage: an Optuna database URL or ``journal:PATH`` (default: ``OUT/optuna.db``).
    :param log: receives one line before the trials start: where the results go.
    """
    import optuna
    import yaml

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t = config.tune
    if jobs < 1:
        raise RlimmError(f"jobs must be at least 1, got {jobs}")
    teacher: TabularTeacher | None = preflight(config.model_copy(update={"methods": [t.method]}))
    device = resolve_device(config.device)  # the runs' device, checked before anything is written
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RlimmError(f"output folder {out} exists and is not a folder")
    label = storage or f"sqlite:///{(out / 'optuna.db').resolve()}"
    if storage is None:
        out.mkdir(parents=True, exist_ok=True)  # the default database lives there
    backend = open_storage(label)  # a --storage that cannot be opened writes nothing
    out.mkdir(parents=True, exist_ok=True)
    seeds = range(config.seed_offset, config.seed_offset + t.seeds)

    studies = [_load_study(config, b, backend, label) for b in config.budgets]

    def remaining(from_budget: int = 0) -> int:
        return sum(max(t.trials - _complete(study), 0) for study in studies[from_budget:])

    if log is not None:
        log(
            f"writing {out / 'trials.csv'} and {out / 'tuned.yaml'} (studies in {label}; TensorBoard: "
            f"none, trials are scored only); {remaining()} trials to do, {jobs} worker processes on "
            f"{describe(device)}"
        )
    bar = tqdm(total=remaining(), desc=f"tune {config.name}", unit="trial", disable=not progress)
    best: list[BudgetBest] = []
    rows: list[dict[str, Any]] = []
    with _runner(jobs) as run_all:
        for i, (budget, study) in enumerate(zip(config.budgets, studies, strict=True)):

            def objective(trial: optuna.Trial, budget: int = budget) -> float:
                ratio = trial.suggest_float("lambda_ratio", t.low, t.high)
                specs = [RunSpec(t.method, budget, seed, ratio) for seed in seeds]
                # One run per seed (a trial has one budget): work() takes a group of runs, here of one.
                scores = [rows[0]["score"] for rows in run_all([(config, [s], None, teacher) for s in specs])]
                trial.set_user_attr("scores", scores)
                trial.set_user_attr("worker", WORKER)  # which process (of which machine) ran it
                return float(np.mean(scores))

            # Complete trials are counted before each new one: other processes sharing the storage
            # may have added some meanwhile.
            sampler_seed: int | None = t.sampler_seed + i
            while _complete(study) < t.trials:
                _run_trial(study, objective, sampler_seed)
                sampler_seed = None  # seeded once per process and study; the sampler goes on from there
                bar.update()
                bar.total = bar.n + remaining(i)
                bar.refresh()
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
